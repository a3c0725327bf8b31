// Package group is Easel's consumer-group coordinator: the classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed offsets
// (OffsetCommit, OffsetFetch) and the admin APIs (FindCoordinator,
// DescribeGroups, ListGroups, DeleteGroups, OffsetDelete), as a library the broker calls
// with decoded kmsg requests. Offsets and group membership are kept in the
// internal topic __consumer_offsets, in Kafka's own record format, so tools
// that read that topic (Burrow, Kafka's consumer-groups tooling) understand
// it.
//
//	c := group.New(eng, group.Config{NodeID: 0, Host: "broker1", Port: 9092})
//	if err := c.Err(); err != nil { ... } // __consumer_offsets unusable
//	ctx = group.WithConn(ctx, group.Conn{ClientID: id, ClientHost: "/10.0.0.7"})
//	resp := c.JoinGroup(ctx, req) // blocks until the rebalance completes
//	...
//	c.Close()
//
// Each method answers at the request's version; each API file declares the
// versions it serves, and Versions collects them.
//
// # Group states
//
// Each group is a state machine after Kafka's GroupCoordinator:
//
//	         first join                 every member rejoined,
//	Empty ─────────────────► Preparing ─────────────────────────► Completing
//	  ▲     (waits the        Rebalance  or rebalance timeout      Rebalance
//	  │   initial delay)        ▲   │                                 │
//	  │                         │   │ no members left                 │ leader's SyncGroup,
//	  └─────────────────────────┼───┘                                 ▼ once stored
//	                            └──────── join, leave, timeout ─── Stable
//
//	Empty ──DeleteGroups / offsets expired──► Dead (removed)
//
// JoinGroup responses are held until every known member has rejoined or
// the longest rebalance timeout of the members has passed; dynamic members
// that did not rejoin are then removed (static ones stay until their
// session times out). The first rebalance of an empty group waits
// InitialRebalanceDelay, extended by each new member up to the rebalance
// timeout. The leader's response lists every member with its metadata for
// the protocol chosen (among those all members support, by the members'
// first preferences, as Kafka votes); followers get their assignment from
// the leader's SyncGroup. A member whose JoinGroup or SyncGroup is not
// pending must heartbeat within its session timeout or be removed; a member
// that does not send SyncGroup within the rebalance timeout after the join
// is removed too. Member ids are generated here; from JoinGroup v4 a
// dynamic member's first join gets MEMBER_ID_REQUIRED with its new id.
//
// Static members (group.instance.id, KIP-345) that restart rejoin with an
// empty member id: the coordinator gives the known instance a new member id
// and fences the old one (FENCED_INSTANCE_ID). In a stable group whose
// selected protocol does not change that causes no rebalance: the new id is
// stored, then the member gets its old assignment back through SyncGroup (as
// in Kafka, changed metadata alone does not rebalance; the leader may rejoin
// to force one).
//
// Every group has its own lock, and timers (time.AfterFunc) drive session,
// rebalance, sync and retention timeouts; nothing polls.
//
// # Partitions, loading and unloading
//
// A group lives on partition PartitionFor(id, n) of __consumer_offsets, n
// being the topic's partition count (offsets.topic.num.partitions, 50 by
// default): Kafka's Utils.abs(groupId.hashCode()) % n. The coordinator serves
// a group only while its partition is loaded (LoadPartition, which replays
// the partition; UnloadPartition, which drops its groups once their pending
// writes are appended). Requests for a group whose partition is loading get
// COORDINATOR_LOAD_IN_PROGRESS, for one not loaded here NOT_COORDINATOR. On a
// single node New loads every partition and FindCoordinator names this
// broker for every group; in a cluster (Config.Locate) the broker loads a
// partition where it leads it, and FindCoordinator names the partition's
// leader.
//
// # What is stored
//
// Each loaded partition has one writer goroutine (started on demand) that
// appends the partition's records; requests queue their records and wait.
// Records queued while an append (and its fsync, when the topic's flush
// policy asks for one) runs go into the next batch together: offset commits
// of many groups of a partition share one batch, one Append and one fsync
// (group commit). A request's records are never split over batches, so a
// commit is stored whole or not at all, and it is acknowledged only after
// its batch is appended.
//
//   - OffsetCommit appends one offset commit record per partition committed
//     and answers once they are appended; the offsets are served from memory
//     from then on.
//   - The leader's SyncGroup appends the group's metadata (generation,
//     protocol, leader, members with their subscription and assignment);
//     members get their assignments only once it is appended, as in Kafka.
//     If the append fails they get the error and the group rebalances.
//   - A static member's new member id is stored the same way before its
//     JoinGroup is answered.
//   - A rebalance that ends with no members stores the empty group at its
//     new generation.
//   - DeleteGroups and expiry append tombstones (null values) for the
//     group's offsets and metadata; OffsetDelete for the offsets it
//     deletes (not those of topics a member subscribes to); deleting a topic (DeleteTopicOffsets,
//     called by the broker) appends tombstones for that topic's offsets.
//
// After a restart (or a load elsewhere) a group comes back as last stored:
// its offsets, and, if it was stable, its generation, protocol, leader and
// members with their ids, assignments and a fresh session timeout, so that
// their heartbeats and commits succeed and no rebalance happens (as in
// Kafka). A group that was rebalancing comes back as its last completed
// rebalance left it; members it has since lost time out. A restored member
// knows only its subscription for the selected protocol, so a rejoin with
// its full protocol list rebalances the group (as in Kafka).
//
// A group without members is deleted, tombstones written, once both its last
// member and its last commit (times restored from the log at a load) are
// older than OffsetsRetention; a group with neither members nor offsets goes
// at the next check.
//
// __consumer_offsets is created compacted (cleanup.policy=compact,
// segment.bytes Config.OffsetsTopicSegmentBytes, retention.ms and
// retention.bytes -1), as in Kafka: the engine's cleaner keeps the latest
// record of each key, and tombstones (deleted offsets and groups) for
// delete.retention.ms, so a load replays little more than the live state.
// Loading does not care what compaction removed: each key's latest record
// decides, and a key whose latest record is gone was deleted. A topic
// created before compaction existed keeps its delete policy. Compaction
// removes the format marker below, a tombstone, after a day: a compacted
// topic is known as this package's by its policy alone (the legacy layout
// was never compacted).
//
// # Record format
//
// Records are Kafka's (GroupCoordinatorRecordHelpers), encoded with kmsg's
// generated schemas at the versions Kafka writes today; all integers
// big-endian; string = int16 length + UTF-8 bytes, nullable string = the same
// with length -1 for null, bytes = int32 length + bytes, array = int32 count
// + elements. The key's leading version says what the record is. A tombstone
// is the key with a null value. Every version number below is frozen.
//
//	offset commit key (OffsetCommitKey v1):
//	  version int16 = 1 | group string | topic string | partition int32
//	offset commit value (OffsetCommitValue v3):
//	  version int16 = 3 | offset int64 | leader_epoch int32 (-1: unknown)
//	  | metadata string | commit_timestamp int64 (ms)
//	group metadata key (GroupMetadataKey v2):
//	  version int16 = 2 | group string
//	group metadata value (GroupMetadataValue v3):
//	  version int16 = 3 | protocol_type string | generation int32
//	  | protocol nullable string | leader nullable string (both null when empty)
//	  | current_state_timestamp int64 (ms) | members array of:
//	      member_id string | group_instance_id nullable string
//	      | client_id string | client_host string
//	      | rebalance_timeout int32 (ms) | session_timeout int32 (ms)
//	      | subscription bytes (metadata of the selected protocol)
//	      | assignment bytes
//
// Loading accepts every value version Kafka has written (OffsetCommitValue
// v0–4, GroupMetadataValue v0–4) and skips key versions it does not use
// (3 and above: KIP-848 and share groups).
//
// The format marker is the first record (offset 0) of partition 0 of every
// __consumer_offsets this package creates: the tombstone of the group
// metadata key of the empty group id (00 02 00 00, null value). No client can
// use that id, so for other tools it deletes a group that never existed.
//
// # Migration from the previous layout
//
// Easel before this package owned the topic kept committed offsets in a
// one-partition __consumer_offsets in its own layout:
//
//	key:   version int16 (=1) | group len int16 | group | topic len int16 | topic | partition int32
//	value: offset int64 | leaderEpoch int32 | commitTime int64 (ms) | metadata len int32 | metadata
//	       (no version; a null value deletes the key)
//
// The key happens to be OffsetCommitKey v1, but the value has no version and
// would be misread as a Kafka value. Such a topic is recognised by its lack
// of the format marker: it has one partition and partition 0 does not start
// with the marker (an empty one-partition topic without it is migrated too,
// harmlessly). New migrates it at start, in steps that a crash may stop at
// any point:
//
//  1. Read the legacy topic's live offsets (later records win, tombstones
//     delete).
//  2. Create the staging topic __easel_offsets_migration (one partition)
//     holding them as Kafka-format records, then a last record with key
//     "easel: migration copy complete" and the decimal record count as value;
//     fsync it.
//  3. Delete the legacy __consumer_offsets; create it anew with n
//     partitions, the marker first, each offset on its group's partition;
//     fsync every partition.
//  4. Delete the staging topic.
//
// At start a staging topic whose last record is the complete record (with
// the right count) means step 3 may be unfinished: it is redone from the
// copy (deleting whatever __consumer_offsets there is). A staging topic
// without it means step 2 was cut short while the legacy topic was still
// whole: the copy is deleted and the migration starts over. So the legacy
// offsets are never lost, and a half-written __consumer_offsets is never
// taken as complete. A __consumer_offsets with more than one partition,
// records and no marker was written by neither version: New refuses it, and
// Err says what to move away to start anyway.
package group
