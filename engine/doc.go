// Package engine is Easel's storage engine and its embedded Go API: topics of
// partitions, each an append-only log of Kafka record batches (v2), with
// offset and timestamp reads, idempotent producer state, retention and
// durability policies, and what a replica of a partition needs: a high
// watermark apart from the log end, leader epochs, a follower's append path
// and truncation.
//
//	e, err := engine.Open("data", engine.Options{})
//	err = e.CreateTopic("events", engine.TopicConfig{Partitions: 3})
//	offs, err := e.Produce("events", codec.Zstd, record.Record{Key: k, Value: v})
//	p, err := e.Partition("events", 0)
//	it := p.Records(0)
//	for it.Next() { use(it.Record()) }
//	err = it.Close()
//	err = e.Close()
//
// # Offsets
//
// Each partition has a log start offset <= high watermark (HW) <= log end
// offset (LEO). The LEO is where the next batch goes; the HW is what is
// committed: consumers read below it (Read, ReadBatches, Records, Wait,
// OffsetForTimestamp), followers up to the LEO (ReadReplica). On a single
// node the HW follows the LEO after every append (after the fsync under
// flush.messages=1); with Options.ManagedHighWatermarks the replica layer
// moves it (SetHighWatermark). Retention never removes a segment holding
// offsets at or above the HW; DeleteRecords moves the log start forward.
//
// # Leader epochs
//
// Every batch appended with Append is stamped with the partition's leader
// epoch (BecomeLeader; 0 on a single node). The epoch cache maps each epoch
// to the offset where it began and answers OffsetForLeaderEpoch
// (EndOffsetForEpoch). A follower (BecomeFollower) takes batches as the
// leader wrote them, cuts a diverged tail, and starts its log over at the
// leader's log start when it ends below it: through Follower(epoch), a
// FollowerWriter whose Append, TruncateTo and TruncateFullyAndStartAt each
// check, under the partition's append lock, that the partition still
// follows that epoch (ErrNotFollowerInEpoch once BecomeLeader or a newer
// BecomeFollower came in between). AppendReplica and TruncateTo on the
// Partition itself work in any role, for tools that copy logs.
//
// # Settings
//
// TopicConfig holds every standard Kafka topic setting by its Kafka name
// (Set, Entries); SetTopicConfig changes an open topic's settings in place
// (its partitions follow from their next append, roll, flush or retention
// pass). On append, compression.type other than "producer" re-compresses a
// batch that arrives in another codec, and message.timestamp.before.max.ms
// and after.max.ms refuse CreateTime records too far from the clock
// (ErrInvalidTimestamp); both leave a batch untouched, byte for byte, with
// Kafka's defaults. file.delete.delay.ms and message.downconversion.enable
// are stored only.
//
// # Log compaction
//
// cleanup.policy=compact (a built-in CleanupPolicy; "compact,delete" runs
// both) keeps the latest record of each key; EnforceRetention runs it with
// retention (every RetentionCheckInterval). A pass over a partition cleans
// the rolled segments wholly below the high watermark and older than
// min.compaction.lag.ms, when the part written since the last pass (the
// cleaner checkpoint) is at least min.cleanable.dirty.ratio of them, or its
// first batch is older than max.compaction.lag.ms, or a kept tombstone's
// delete horizon has passed. It maps each key of that part to its latest
// offset (a 128-bit key hash, 24 bytes an entry, within
// Options.CleanerDedupeBufferSize; a map that fills stops the pass early),
// then rewrites the segments from the log start up to there in groups of at
// most segment.bytes: a record goes when a later one of its key is mapped,
// when it has no key, or when it is a tombstone whose batch's delete
// horizon has passed; a batch keeping a tombstone of the mapped part gets
// the horizon now + delete.retention.ms (KIP-534: attributes bit 6,
// baseTimestamp), so a reader that started before has that long to see
// it. Offsets are kept: thinned batches keep their base and last offsets
// (record.AppendCompacted, re-compressed with their own codec), and a
// batch left empty stays, without records, when it is an idempotent
// producer's newest or a group's last (a new segment ends where the old
// ones did). Readers, followers and recovery take holes between batches
// and batches with fewer records than offsets. Control and transactional
// batches are kept whole. A compacted topic refuses records without a
// key. One pass runs at a time engine-wide, its reads and writes throttled
// to Options.CleanerIOMaxBytesPerSecond; a truncation or close of the
// partition stops it between batches. Each pass logs "log cleaner cleaned"
// with its numbers.
//
// A group of segments is replaced through a swap (SegmentRewriter; on disk
// see diskswap.go): the new segment is built and fsynced in cleaner.tmp/
// with a manifest (range, size and xxhash of the new log), committed by
// renaming the directory to cleaner.swap/, then the old segments are
// deleted (oldest first) and the new files moved in. Open undoes an
// uncommitted swap and finishes a committed one; a damaged swap is undone
// while the old segments are whole.
//
// # Metadata
//
// Topics have ids (KIP-516). Either the engine owns topic metadata (the
// default: CreateTopic, DeleteTopic, files in .meta), or the caller does
// (Options.ExternalMetadata: HostPartition, StopHosting), as the cluster's
// controller will. A log on disk that no metadata names, or that belongs to
// an older topic of the same name, is set aside, never deleted at open.
// Committed consumer offsets are package group's business: it keeps them
// in the internal topic __consumer_offsets.
//
// # Files
//
// On disk (DiskStore, the default), the data directory holds:
//
//	<dir>/.meta/<topic>.json           topic name, id and settings (JSON, written atomically and fsynced)
//	<dir>/.clean-shutdown              present only while the engine is cleanly closed
//	<dir>/replication-offset-checkpoint  every partition's HW (Kafka's text format; see hwCheckpointFile)
//	<dir>/<topic>-<partition>/         one partition:
//	    <20-digit base>.log, .index, .timeindex   segments (see package segment)
//	    partition.metadata             the topic id (Kafka's format)
//	    leader-epoch-checkpoint        epoch -> start offset (Kafka's format; see epochCheckpointName)
//	    recovery-point                 decimal base offset + "\n": segments below it are durable
//	    log-start-offset               decimal offset + "\n": nothing below it is readable
//	    producers.snapshot             idempotent producer state (layout at producerSnapshotName)
//	    cleaner-offset-checkpoint      "<offset> <horizon>\n": where compaction's last pass stopped mapping
//	    cleaner.tmp/, cleaner.swap/    a compaction swap being written, committed (see Log compaction)
//	<dir>/<topic>-<partition>.<tag>-stray    a log set aside (see above)
//	<dir>/<topic>-<partition>.<nanos>-delete a log being deleted; removed at the next open
//
// # Recovery
//
// Open removes the clean-shutdown marker at once, so a crash of this engine
// is always noticed. After an unclean shutdown every segment from each
// partition's recovery point on is scanned (CRC of every batch), its
// indexes rebuilt and a torn tail cut; a segment that lost its tail takes
// the segments after it along (their offsets no longer follow on), as in
// Kafka. Segments wholly below log-start-offset that a crash left behind are
// removed, and so are files a crash left half deleted or half truncated. A
// log whose log-start-offset lies past the end of its last segment is
// started over there, empty, as Kafka's LogLoader does: that is how an
// interrupted TruncateFullyAndStartAt completes (it writes the new start
// first, then replaces the segments).
// The recovery point moves when a rolled segment's background fsync
// completes (and every earlier one has), and to the active segment on
// Close. The recovery point and producer snapshot are hints written without
// fsync: losing them only makes the next open scan or replay more. The
// epoch cache is written durably before the first batch of a new epoch.
//
// # Concurrency
//
// All methods are safe for concurrent use. Appends (and truncations) of one
// partition are serialised; appends to different partitions and all reads
// run in parallel. A reader never sees a partially written batch, and bytes
// handed to a reader are never changed under it, truncation included. No
// engine-wide lock is held during file I/O.
package engine
