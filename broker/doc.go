// Package broker serves the Kafka API over an engine: it decodes requests
// that netio hands it, runs them against the engine and encodes the
// responses. One file per API key (NN_name.go) holds each handler and
// registers its versions in its init (regKey, apis.go), so ApiVersions, the
// dispatch and the handlers cannot disagree; errors.go holds the one table
// that maps Go errors to Kafka error codes; purgatory.go parks the requests
// that must wait.
//
//	eng, _ := engine.Open(dir, engine.Options{})
//	b := broker.New(eng, broker.Config{AutoCreateTopics: true, DataDir: dir})
//	srv, _ := netio.Listen(netio.Config{Addr: ":9092"}, b)
//	go srv.Serve()
//	...
//	b.Close() // answer parked requests at once
//	srv.Shutdown(ctx)
//	eng.Close()
//
// Easel is a single node: it is the controller, and the leader and only
// replica of every partition. The engine keeps each partition's leader
// epoch (0 unless the replica layer changes it) and high watermark, which
// on one node follows the log end.
//
// # Supported APIs
//
//	| API (key)                       | versions | notes                                                             |
//	|---------------------------------|----------|-------------------------------------------------------------------|
//	| Produce (0)                     | 0–9      | v0–2 answered UNSUPPORTED_VERSION; acks 0, 1, -1; no transactions |
//	| Fetch (1)                       | 4–12     | sendfile, long polling; no fetch sessions (session_id 0)          |
//	| ListOffsets (2)                 | 1–6      | -1 latest (high watermark), -2 earliest, by timestamp             |
//	| Metadata (3)                    | 0–9      | auto-creation per Config.AutoCreateTopics                         |
//	| OffsetCommit (8)                | 2–8      | consumer groups: package group (Config.Group)                     |
//	| OffsetFetch (9)                 | 1–7      |                                                                   |
//	| ControlledShutdown (7)          | 2–3      | cluster only, inter-broker: leaderships move off the broker       |
//	| FindCoordinator (10)            | 0–3      | this broker, or the leader of the group's offsets partition       |
//	| JoinGroup (11)                  | 0–7      | held until the rebalance completes                                |
//	| Heartbeat (12)                  | 0–4      |                                                                   |
//	| LeaveGroup (13)                 | 0–4      |                                                                   |
//	| SyncGroup (14)                  | 0–5      |                                                                   |
//	| DescribeGroups (15)             | 0–5      |                                                                   |
//	| ListGroups (16)                 | 0–4      |                                                                   |
//	| ApiVersions (18)                | 0–3      | newer versions get a v0 body with UNSUPPORTED_VERSION             |
//	| CreateTopics (19)               | 0–5      | single node: RF 1; cluster: placed by the controller              |
//	| DeleteTopics (20)               | 0–4      | by name                                                           |
//	| DeleteRecords (21)              | 0–2      | up to the high watermark; not internal or compacted topics        |
//	| InitProducerId (22)             | 0–4      | idempotent producers; transactional ids refused                   |
//	| OffsetForLeaderEpoch (23)       | 0–4      | from the leader-epoch cache; current_leader_epoch fencing         |
//	| DescribeConfigs (32)            | 0–4      | topics and brokers, with sources, synonyms and documentation      |
//	| AlterConfigs (33)               | 0–2      | cluster only: a topic's or broker's settings, replaced whole      |
//	| DescribeLogDirs (35)            | 0–5      | one log directory: the engine's data directory                    |
//	| CreatePartitions (37)           | 0–3      | cluster only: placed and committed by the controller              |
//	| DeleteGroups (42)               | 0–2      |                                                                   |
//	| IncrementalAlterConfigs (44)    | 0–1      | cluster only: SET, DELETE, APPEND, SUBTRACT                       |
//	| AlterPartitionAssignments (45)  | 0–1      | cluster only: replicas moved by the controller (KIP-455)          |
//	| ListPartitionReassignments (46) | 0–0      | cluster only: the ongoing moves                                   |
//	| OffsetDelete (47)               | 0–0      | not the offsets of topics a consumer group member subscribes to   |
//	| AlterPartition (56)             | 2–3      | cluster only, inter-broker: a leader's ISR change                 |
//	| DescribeCluster (60)            | 0–1      | brokers, controller, cluster id                                   |
//	| BrokerHeartbeat (63)            | 0–2      | cluster only, inter-broker: a caught-up broker is unfenced        |
//	| AllocateProducerIDs (67)        | 0–0      | cluster only, inter-broker: producer id blocks (KIP-730)          |
//
// The cluster-only APIs are neither served nor advertised without
// Config.Cluster. Any other key, a version outside these ranges, or a body
// that does not decode closes the connection, with a log line. Requests other than
// Produce are also refused above 1 MiB (Fetch, JoinGroup, SyncGroup: 4 MiB),
// and a Produce whose topic count its body cannot hold is refused before
// decoding, because the decoder allocates arrays by their declared counts.
//
// Transactions are not supported: InitProducerId with a transactional id,
// and Produce with a transactional id or a transactional batch, get
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), which clients treat as fatal.
//
// # Settings
//
// CreateTopics, AlterConfigs and IncrementalAlterConfigs take every
// standard Kafka topic setting (engine.TopicConfig, plus
// min.insync.replicas and unclean.leader.election.enable, which the replica
// layer and the controller read); AlterConfigs and IncrementalAlterConfigs
// also take the dynamic broker settings (cluster.DynamicBrokerConfigs), per
// broker or cluster-wide. Changes are metadata records decided by the
// controller; the hosting loop applies them to the open partitions
// (engine.Engine.SetTopicConfig) on every broker. Where a topic's setting
// comes from (topic, broker, cluster-wide default, start-up flags, Kafka's
// default) is in configs.go, and DescribeConfigs reports it. Errors:
// INVALID_CONFIG for an unknown name, a bad value or APPEND/SUBTRACT of a
// setting that is not a list; INVALID_REQUEST for a null value, a name or
// resource given twice, or another broker's id in DescribeConfigs.
// file.delete.delay.ms and message.downconversion.enable are stored and
// reported only.
//
// # Offsets and leader epochs
//
// Consumers see committed records only: Fetch reads below the high
// watermark for replica_id < 0 and reports it as high_watermark and
// last_stable_offset (there are no transactions), with the log start
// offset; ListOffsets -1 answers it. Followers (replica_id >= 0) read, and
// ListOffsets -1 answers them, up to the log end. Fetch (v9+), ListOffsets
// (v4+) and OffsetForLeaderEpoch (v2+) check current_leader_epoch (KIP-320):
// -1 checks nothing, older than the partition's is FENCED_LEADER_EPOCH (74),
// newer UNKNOWN_LEADER_EPOCH (75); then a partition that follows another
// replica is NOT_LEADER_OR_FOLLOWER (6). Fetch v12's last_fetched_epoch is
// checked for divergence (KIP-595): see handleFetch.
//
// # Waiting requests
//
// A Fetch that cannot be answered yet (fewer than min_bytes) and a Produce
// with acks=-1 whose batches the high watermark has not passed are deferred
// (netio Request.Defer) and parked in the purgatory, woken by the engine's
// Partition.Changed (appends, high-watermark moves, truncations), their
// deadline (max_wait_ms, timeout_ms), Close or the end of the connection;
// the connection's later requests are handled meanwhile and the responses
// still go out in request order. On a single node the high watermark
// follows the log end, so acks=-1 is answered at once, as acks=1 is.
//
// # Produce checks
//
// Each partition's records must be exactly one record batch v2:
//
//	no bytes                              INVALID_RECORD (87)
//	magic != 2                            INVALID_RECORD
//	shorter than its batchLength, or
//	batchLength < 49, or a bad CRC        CORRUPT_MESSAGE (2)
//	a second whole batch after the first  INVALID_RECORD
//	other bytes after the first batch     CORRUPT_MESSAGE
//	count <= 0, lastOffsetDelta+1 != count, control batch
//	                                      INVALID_RECORD
//	codec id not registered               UNSUPPORTED_COMPRESSION_TYPE (76)
//	larger than max.message.bytes         MESSAGE_TOO_LARGE (10)
//	idempotent sequence gap / old epoch   OUT_OF_ORDER_SEQUENCE_NUMBER (45) / INVALID_PRODUCER_EPOCH (47)
//	internal topic (__consumer_offsets)   INVALID_TOPIC_EXCEPTION (17)
//
// The records inside a batch are not decoded on produce (the engine checks
// the CRC, which covers them).
//
// # Fetch response
//
// The Fetch response body is written by hand so that record bytes go from
// the segment files to the socket with sendfile (netio File parts). All
// integers are big-endian. For v4–v11:
//
//	throttle_time_ms int32 (0)
//	[v7+] error_code int16 | session_id int32 (0)
//	topics: count int32, then per topic:
//	  name: length int16 | bytes
//	  partitions: count int32, then per partition:
//	    partition int32 | error_code int16 | high_watermark int64 |
//	    last_stable_offset int64 (= high_watermark) | [v5+] log_start_offset int64 |
//	    aborted_transactions int32 (-1 null when read_uncommitted, 0 when read_committed) |
//	    [v11+] preferred_read_replica int32 (-1) |
//	    records: length int32 | record batches (sendfile)
//
// v12 is flexible: every count and length is a compact uvarint n+1 (the
// records length too; aborted_transactions 0 = null, 1 = empty), and an
// empty tagged-field section (one 0x00 byte) ends each partition, each
// topic and the body. The response header (correlation id, and the tag byte
// for v12) is netio's. The last batch of a partition may be cut short by
// the byte limits; clients skip it. The first batch is always whole.
//
// # Files
//
// With Config.DataDir set the broker keeps two small files there, each
// replaced atomically (write, fsync, rename, fsync the directory):
//
//	broker.cluster-id   the cluster id: 22 characters of base64url and "\n", written once
//	broker.producer-id  a decimal int64 and "\n": no producer id >= it was ever handed out;
//	                    raised by 1000 before the ids of a new block are handed out
package broker
