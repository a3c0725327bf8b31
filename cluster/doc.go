// Package cluster is the cluster's metadata and the controller's decisions:
// the records of the metadata log, the State they add up to, and pure
// functions that turn a State and an event into the records to commit. It
// does no I/O, reads no clock and runs no raft; FSM is the thin raft
// wrapper (Apply decodes an entry and applies it; Snapshot and Restore
// encode and decode the State).
//
//	s := cluster.NewState()
//	var p cluster.Policy                          // settings; zero = Kafka's defaults
//	recs, err := p.BrokerJoined(s, info)          // decide
//	data := cluster.AppendEntry(nil, recs)        // commit through raft ...
//	recs, err = cluster.DecodeEntry(data)         // ... and on every broker
//	err = s.Apply(recs)                           // apply, all or nothing
//
// # Who decides what
//
// The controller (the raft leader) decides, one event at a time, on the
// state its records will apply to, and commits the records as one raft
// entry; every broker applies the committed entries in order and acts on
// what concerns it. The decisions (methods of Policy):
//
//   - InitCluster: the cluster id, and a reservation of producer ids handed
//     out before the cluster kept them.
//   - BrokerJoined, BrokerFailed, BrokerCaughtUp, ControlledShutdown,
//     Reconcile: brokers register fenced under a new broker epoch, are
//     unfenced once caught up on the log, and on failure or shutdown are
//     fenced under a new epoch after their leaderships move to other ISR
//     members (leader epoch bumped) and they leave the ISRs. A partition
//     with no live ISR member goes offline (leader -1) unless the topic
//     allows unclean election.
//   - AlterPartition: a leader's ISR change, checked against the leader and
//     partition epochs it was made under, Kafka's way and with its errors.
//   - ElectPreferredLeaders, ElectOfflineLeaders: leadership back to
//     preferred replicas (auto.leader.rebalance), leaders for offline
//     partitions.
//   - CreateTopic, CreatePartitions, DeleteTopic: placement by rendezvous
//     hashing (xxhash), balanced per topic, rack-aware (see place.go).
//   - AlterTopicConfigs, AlterBrokerConfigs: a topic's settings, or a
//     broker's (or the cluster-wide) dynamic defaults of topic settings
//     (DynamicBrokerConfigs), replaced whole and checked as CreateTopic's
//     configs are. The cluster-wide unclean.leader.election.enable decides
//     unclean elections for topics that do not set it.
//   - AllocateProducerIDs: KIP-730 producer id blocks.
//   - AlterReassignment, CompleteReassignments: partition reassignment
//     (KIP-455): the target's new replicas are added (Partition.Adding,
//     Removing), and once every target replica is in the ISR one change
//     drops the others (completion is also folded into AlterPartition and
//     the broker decisions); a nil target cancels.
//
// Errors are the package's sentinels, wrapped with details; KafkaError maps
// them to Kafka error codes in one table.
//
// # What the driver does
//
// The controller loop around the decisions (raft, gossip and the broker's
// wiring, not this package): make one decision at a time inside FSM.View
// and commit its records (AppendEntry) with raft's Apply before the next,
// answering a request once its entry has applied (the ApplyFuture's
// response is nil or the rejection); on winning leadership, Barrier, then
// Reconcile against gossip's members until it returns nothing; turn gossip
// events into BrokerJoined and BrokerFailed; judge when a broker has caught
// up on the log (BrokerCaughtUp); pick new topic ids (engine.NewTopicID);
// call ElectPreferredLeaders after ISRs grow or on a timer, and
// CompleteReassignments after ISRs grow, on a timer and on taking over; act
// on applied entries through FSM.OnApply (become leader or follower, create
// or remove local logs).
//
// # Invariants
//
// State.Apply refuses any record that would break them (the entry then
// changes nothing): a partition's leader is -1 or in its ISR, the ISR is a
// non-empty subset of the replicas, and while the partition has a leader
// every ISR member is unfenced (so no fenced broker leads); replicas are
// registered brokers; leader and partition epochs only grow (a change names
// the epochs it replaces and applies only while they are current), and the
// leader epoch grows with every leader change, so an epoch has one leader;
// broker epochs only grow; producer id blocks never overlap; a
// reassignment's adding and removing replicas are disjoint subsets of the
// replicas, and removing is not all of them. Check verifies a whole State,
// History the invariants across states (for tests), and Apply checks what
// each entry touched when built with -race or -tags invariants.
//
// # Encoding
//
// Integers are big-endian. A string is a u16 length and its bytes; an int32
// array a u32 count and the values; a nullable int32 array has count
// 0xFFFFFFFF for null; a topic id is its 16 bytes. Frozen: the entry and
// snapshot headers, the record header, the record type numbers, the flag
// bits and every body below; a changed body gets a new record version.
//
//	entry    (a raft log entry's data; records applied together or not at all)
//	+---------+-----------+------------------+
//	| version | count u32 | record ... count |   version 0
//	+---------+-----------+------------------+
//
//	record
//	+---------+---------+------------+------------------+
//	| type u8 | vers u8 | length u32 | body (length B)  |   version 0, or 1 (below)
//	+---------+---------+------------+------------------+
//
//	snapshot (State.Snapshot: the records that rebuild the state, in a fixed order)
//	+--------+---------+-----------+------------------+---------------------------+
//	| "EMDS" | version | count u32 | record ... count | xxhash64 u64 of the rest  |   version 0
//	+--------+---------+-----------+------------------+---------------------------+
//
// Bodies (version 0), field by field:
//
//	1 cluster-id        cluster_id string
//	2 register-broker   id i32 | epoch i64 | incarnation u64 | host string | port i32 |
//	                    raft_addr string | rack string | flags u8 (1 controller-eligible, 2 fenced)
//	3 fence-broker      id i32 | epoch i64 (the new epoch)
//	4 unfence-broker    id i32 | epoch i64 (the current epoch)
//	5 topic             name string | topic_id [16] | count u32 | (name string | value string) ... count
//	6 partition         topic_id [16] | partition i32 | replicas []i32 | isr []i32 |
//	                    leader i32 | leader_epoch i32 | partition_epoch i32
//	7 partition-change  topic_id [16] | partition i32 | leader_epoch i32 | partition_epoch i32 (replaced) |
//	                    leader i32 (-2 unchanged) | isr nullable []i32 | replicas nullable []i32 |
//	                    flags u8 (1 unclean)
//	8 remove-topic      topic_id [16]
//	9 producer-ids      broker i32 (-1 reserved) | broker_epoch i64 | start i64 | size i64
//	10 topic-config     topic_id [16] | count u32 | (name string | value string) ... count
//	                    (the topic's explicit settings from now on, replacing all before)
//	11 broker-config    broker i32 (-1 the cluster-wide defaults) | count u32 |
//	                    (name string | value string) ... count (replacing all before)
//
// Version 1 bodies (a reassignment; KIP-455): version 0's fields, then
//
//	6 partition         ... | adding []i32 | removing []i32        (not both empty)
//	7 partition-change  ... | flags u8 | adding nullable []i32 | removing nullable []i32
//	                    (null keeps the list, empty clears it; not both null)
//
// Version 2 body (a snapshot's partition with an unclean election behind
// it): version 1's fields, then
//
//	6 partition         ... | adding []i32 | removing []i32 | unclean_epoch i32 (1..leader_epoch)
//
// A partition-change with the unclean flag makes its new leader epoch the
// partition's unclean epoch (the flag needs a leader change).
//
// A record is written in the oldest version that holds it: a partition with
// no reassignment, and every change but a reassignment's, stay version 0,
// so brokers that predate version 1 read such logs and snapshots unchanged
// and stop (ErrUnsupportedVersion) only at a reassignment. Decoding rejects a
// version 1 body that version 0 could have written, keeping encodings
// canonical.
//
// Decoding reads a body exactly (trailing bytes are corrupt), rejects unknown
// types and flag bits, and bounds every count by the bytes left and by a
// limit before allocating, so what decodes re-encodes to the same bytes.
package cluster
