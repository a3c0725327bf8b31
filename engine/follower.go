package engine

import (
	"errors"
	"fmt"
	"time"
)

// This file is a follower's fenced write path: FollowerWriter, whose every
// write first checks, under the partition's append lock, that the partition
// is still a follower in the leader epoch the writer was made for.

// ErrNotFollowerInEpoch is returned by Partition.Follower and by every
// FollowerWriter method once the partition is not a follower in the
// writer's leader epoch: nothing was written. When the partition leads now
// the error also wraps ErrNotLeader; when it follows a newer epoch,
// ErrFencedLeaderEpoch.
var ErrNotFollowerInEpoch = errors.New("engine: partition is not a follower in the leader epoch")

// FollowerWriter is a follower's write path in one leader epoch: the
// appends, truncations and restarts a replica fetcher makes for what it
// fetched from that epoch's leader. Each method checks, holding the lock
// that serialises the partition's appends (and BecomeLeader and
// BecomeFollower), that the partition is still a follower in exactly that
// epoch, and fails with ErrNotFollowerInEpoch otherwise; so once
// BecomeLeader or a newer BecomeFollower returns, nothing fetched under
// the old epoch can be written. A FollowerWriter is cheap (make one per
// response) and safe for concurrent use.
type FollowerWriter struct {
	p     *Partition
	epoch int32
}

// Follower returns the partition's write path as a follower in leader
// epoch epoch (see FollowerWriter), or ErrNotFollowerInEpoch if the
// partition is not one now (BecomeFollower(epoch) comes first).
func (p *Partition) Follower(epoch int32) (*FollowerWriter, error) {
	if err := p.followerIn(epoch); err != nil {
		return nil, err
	}
	return &FollowerWriter{p: p, epoch: epoch}, nil
}

// followerIn reports why the partition is not a follower in epoch, if it
// is not. The role and epoch change only under mu: callers that write hold
// it, so the answer holds for their write.
func (p *Partition) followerIn(epoch int32) error {
	follower, cur := p.follower.Load(), p.leaderEpoch.Load()
	switch {
	case follower && cur == epoch:
		return nil
	case !follower:
		return fmt.Errorf("%w %d: %s/%d leads in epoch %d: %w", ErrNotFollowerInEpoch, epoch, p.topic, p.id, cur, ErrNotLeader)
	case cur > epoch:
		return fmt.Errorf("%w %d: %s/%d follows epoch %d: %w", ErrNotFollowerInEpoch, epoch, p.topic, p.id, cur, ErrFencedLeaderEpoch)
	default:
		return fmt.Errorf("%w %d: %s/%d follows epoch %d", ErrNotFollowerInEpoch, epoch, p.topic, p.id, cur)
	}
}

// Append is Partition.AppendReplica on a follower in the writer's epoch.
func (w *FollowerWriter) Append(records []byte) (ReplicaAppendResult, error) {
	return w.p.appendReplica(records, w.epoch, true)
}

// TruncateTo is Partition.TruncateTo on a follower in the writer's epoch.
func (w *FollowerWriter) TruncateTo(offset int64, unclean bool) (int64, error) {
	return w.p.truncateTo(offset, unclean, w.epoch, true)
}

// TruncateFullyAndStartAt starts the follower's log over, empty, at offset
// (Kafka's Log.truncateFullyAndStartAt), for a follower whose log ends
// below its leader's log start: a new replica of a topic whose start is
// past 0, or one that was down while retention removed what it had. Every
// segment goes; the log start, the log end and the high watermark become
// offset (the high watermark only moves forward); the leader-epoch cache
// and the producer state are emptied (their files too); the flushed
// offset, the recovery point, the log start file and the high watermark
// checkpoint follow. It is durable when it returns, and a crash in the
// middle leaves, at the next open, either the old log whole or the empty
// one at offset, never a mix. Readers holding chunks of the removed
// segments keep their bytes; long polls are woken.
//
// offset must be past the log end (ErrOffsetOutOfRange otherwise): a log
// that reaches offset does not need starting over (TruncateTo cuts it,
// DeleteRecords moves its start). If the leader's first batch begins below
// its log start (DeleteRecords moved that into a batch), start over at
// that batch's base offset, as appends must begin at the log end.
//
// A failure before the log commits is undone (the old log goes on); one
// that cannot be undone, or a failure of the log's own step, leaves the
// partition refusing appends (ErrLogFailed) until the engine is reopened,
// which finishes the start over or keeps the old log, as after a crash. A
// failure after the commit to tidy up (old producer snapshots, the high
// watermark checkpoint) is returned with the log started over.
func (w *FollowerWriter) TruncateFullyAndStartAt(offset int64) error {
	return w.p.truncateFullyAndStartAt(offset, w.epoch)
}

func (p *Partition) truncateFullyAndStartAt(offset int64, epoch int32) error {
	p.lockClean() // retention and DeleteRecords change the segment list too
	defer p.cleanMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return err
	}
	if err := p.followerIn(epoch); err != nil {
		return err
	}
	if leo := p.log.NextOffset(); offset <= leo {
		return fmt.Errorf("%w: start %s/%d over at %d, log end %d", ErrOffsetOutOfRange, p.topic, p.id, offset, leo)
	}
	// A producer snapshot written in the background must land first: it
	// could otherwise be written after the ones removed below.
	p.snapWG.Wait()
	// Before the log commits (it writes its new start first), the state
	// files are made such that either outcome reads right at the next
	// open: an empty producer snapshot at offset (past the old end: the
	// old log drops it at open, the new one takes it), and no epoch
	// checkpoint (the old log rebuilds its cache from the batch headers,
	// the new one is empty).
	empty := producerState{}
	if err := p.log.SaveState(snapshotName(offset), empty.marshal(offset), true); err != nil {
		return p.undoStartOver(offset, fmt.Errorf("engine: start %s/%d over at %d: %w", p.topic, p.id, offset, err))
	}
	if err := p.log.RemoveState(epochCheckpointName); err != nil {
		return p.undoStartOver(offset, fmt.Errorf("engine: start %s/%d over at %d: %w", p.topic, p.id, offset, err))
	}
	p.cut.Lock() // see Partition.cut
	p.cut.n++
	if err := p.log.TruncateFullyAndStartAt(offset); err != nil {
		// Committed or not, the files may no longer match memory.
		p.failed.Store(true)
		p.cut.Unlock()
		p.e.log.Error("start over failed; partition stops accepting appends", "topic", p.topic, "partition", p.id, "offset", offset, "err", err)
		return fmt.Errorf("%w: %w", ErrLogFailed, err)
	}
	p.epochs.Lock()
	p.epochs.cache = epochCache{}
	p.epochs.Unlock()
	p.mu.producers = producerState{}
	p.mu.unflushed, p.mu.dirtyAt = 0, time.Time{}
	// All three only move forward here: offset is past the old log end.
	p.flushed.Store(offset)
	p.hw.Store(offset)
	p.cut.Unlock()
	err := p.dropSnapshotsExcept(offset)
	p.notifyAll()
	err = errors.Join(err, p.e.checkpointHW())
	if err != nil {
		// The log is started over and durable; what failed is tidying
		// (old snapshots are ignored, being older than the new one) or
		// the high watermark checkpoint (clamped to the log at open).
		return fmt.Errorf("engine: start %s/%d over at %d: %w", p.topic, p.id, offset, err)
	}
	return nil
}

// undoStartOver puts back what truncateFullyAndStartAt changed before the
// log committed: the snapshot at offset goes, the epoch checkpoint comes
// back. If that fails too, the partition stops taking appends: the
// snapshot would be taken as valid once the log grew past offset. The
// caller holds mu.
func (p *Partition) undoStartOver(offset int64, err error) error {
	undo := p.log.RemoveState(snapshotName(offset))
	if undo == nil {
		p.epochs.Lock()
		undo = p.saveEpochsLocked()
		p.epochs.Unlock()
	}
	if undo != nil {
		p.failed.Store(true)
		p.e.log.Error("start over failed and could not be undone; partition stops accepting appends", "topic", p.topic, "partition", p.id, "err", errors.Join(err, undo))
		return fmt.Errorf("%w: %w", ErrLogFailed, errors.Join(err, undo))
	}
	return err
}

// dropSnapshotsExcept removes every producer snapshot but the one at end.
func (p *Partition) dropSnapshotsExcept(end int64) error {
	p.snap.Lock()
	defer p.snap.Unlock()
	ends, err := p.snapshotEnds()
	p.snap.end = end
	for _, e := range ends {
		if err == nil && e != end {
			err = p.log.RemoveState(snapshotName(e))
		}
	}
	return err
}
