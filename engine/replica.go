package engine

import (
	"errors"
	"fmt"

	"github.com/easel-io/easel/record"
)

// This file is the part of Partition that replication drives: the high
// watermark when it is managed, leader epochs, the follower's append path
// and truncation. On a single node none of it needs calling: the high
// watermark follows the log end and every batch carries epoch 0.

// SetHighWatermark moves a managed high watermark (Options.ManagedHighWatermarks)
// to off, clamped to the log end and rounded down to a batch boundary (a
// high watermark is a replica's log end, so it always is one; a batch is
// never half committed). It never moves it back (TruncateTo does that) and
// wakes long polls when it moves. It returns the high watermark now. On a
// partition whose high watermark is not managed it changes nothing.
func (p *Partition) SetHighWatermark(off int64) int64 {
	if !p.hwManaged.Load() {
		return p.hw.Load()
	}
	p.cut.Lock() // not mu: appends hold that while they write
	moved := false
	if off = min(off, p.log.NextOffset()); off > p.hw.Load() {
		if off < p.log.NextOffset() {
			if cut, err := p.cutPoint(off); err == nil {
				off = cut
			}
		}
		moved = p.advanceHW(off)
	}
	p.cut.Unlock()
	if moved {
		p.notify()
	}
	return p.hw.Load()
}

// SetSoleReplica says whether this replica leads alone, the only member of
// its ISR, for a managed high watermark: then every append (or, under
// flush.messages=1, every fsync) moves the high watermark as on a single
// node, without SetHighWatermark, and it catches up with the log end at
// once; otherwise only SetHighWatermark moves it. BecomeLeader and
// BecomeFollower end it.
// Without managed high watermarks it changes nothing.
func (p *Partition) SetSoleReplica(sole bool) {
	if !p.hwManaged.Load() || p.hwSole.Swap(sole) == sole || !sole {
		return
	}
	p.cut.Lock()
	moved := p.advanceHW(p.DurableEnd())
	p.cut.Unlock()
	if moved {
		p.notify()
	}
}

// advanceHW moves hw forward to off; it reports whether it moved.
func (p *Partition) advanceHW(off int64) bool {
	for {
		cur := p.hw.Load()
		if off <= cur {
			return false
		}
		if p.hw.CompareAndSwap(cur, off) {
			return true
		}
	}
}

// autoAdvanceHW moves an unmanaged high watermark after an append (to the
// new log end) or after an fsync (to what it covered). Under flush.messages=1
// only fsyncs move it, so consumers never see a record that a machine crash
// could take back.
func (p *Partition) autoAdvanceHW(off int64, synced bool) bool {
	if (p.hwManaged.Load() && !p.hwSole.Load()) || (!synced && p.config().FlushMessages == 1) {
		return false
	}
	return p.advanceHW(off)
}

// DurableEnd is how far this replica's own log counts toward a managed high
// watermark: the log end, or under flush.messages=1 (every append waits
// for its fsync) the end of what is fsynced, so that no record is committed
// before it is durable where the topic asks for that.
func (p *Partition) DurableEnd() int64 {
	if p.config().FlushMessages == 1 {
		return p.flushed.Load()
	}
	return p.log.NextOffset()
}

// LeaderEpoch is the partition's current leader epoch: stamped on every batch
// appended with Append, and what Fetch and ListOffsets compare a client's
// current_leader_epoch with.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// IsFollower reports that the partition follows another replica (see
// BecomeFollower).
func (p *Partition) IsFollower() bool { return p.follower.Load() }

// BecomeLeader makes the partition a leader in epoch: Append stamps epoch on
// every batch, and the epoch cache records that epoch starts at the log end
// (durably, before BecomeLeader returns), as Kafka's makeLeader does. Every
// FollowerWriter fails from now on. epoch must not be older than the current
// one (ErrFencedLeaderEpoch).
func (p *Partition) BecomeLeader(epoch int32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return ErrClosed
	}
	if cur := p.leaderEpoch.Load(); epoch < cur {
		return fmt.Errorf("%w: %d < current %d on %s/%d", ErrFencedLeaderEpoch, epoch, cur, p.topic, p.id)
	}
	if err := p.assignEpochLocked(epoch, p.log.NextOffset(), true); err != nil {
		return err
	}
	p.leaderEpoch.Store(epoch)
	p.follower.Store(false)
	p.hwSole.Store(false)
	p.notifyAll() // waiters (acks=all, long polls) look again at the new role
	return nil
}

// BecomeFollower makes the partition a follower in epoch: Append is refused
// (ErrNotLeader), and Follower(epoch) gives the write path for what is
// fetched from that epoch's leader; writers of an older epoch fail from now
// on. epoch must not be older than the current one (ErrFencedLeaderEpoch).
func (p *Partition) BecomeFollower(epoch int32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return ErrClosed
	}
	if cur := p.leaderEpoch.Load(); epoch < cur {
		return fmt.Errorf("%w: %d < current %d on %s/%d", ErrFencedLeaderEpoch, epoch, cur, p.topic, p.id)
	}
	p.leaderEpoch.Store(epoch)
	p.follower.Store(true)
	p.hwSole.Store(false)
	p.notifyAll() // waiters (acks=all, long polls) look again at the new role
	return nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101, KIP-279) from the
// epoch cache: the largest epoch <= epoch that the log holds and the offset
// where the next epoch begins, or the log end for the latest epoch. An epoch
// newer than any in the log, or an empty log, gives (UndefinedEpoch,
// UndefinedOffset); an epoch older than the first gives (epoch, first
// epoch's start offset).
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	p.epochs.Lock()
	defer p.epochs.Unlock()
	return p.epochs.cache.endOffsetFor(epoch, p.log.NextOffset())
}

// EpochAt returns the leader epoch of the batch holding offset, from the
// epoch cache (UndefinedEpoch if the cache does not cover it), as
// ListOffsets v4+ reports it.
func (p *Partition) EpochAt(offset int64) int32 {
	p.epochs.Lock()
	defer p.epochs.Unlock()
	return p.epochs.cache.epochAt(offset)
}

// assignEpochLocked records that epoch starts at off, writing the checkpoint
// durably when the cache changes. A leader (strict) never writes under an
// epoch older than the cache's latest, even one that holds no batch: that
// is a stale leader (ErrFencedLeaderEpoch). A follower's batches may be of
// an older epoch than an empty latest entry, which then gives way. The
// caller holds mu.
func (p *Partition) assignEpochLocked(epoch int32, off int64, strict bool) error {
	// Every writer of the cache holds mu, so the common case reads it
	// without the cache's own lock: no lock, no copy, no write.
	if l, ok := p.epochs.cache.latest(); ok && l.epoch == epoch {
		return nil
	}
	if l, ok := p.epochs.cache.latest(); ok && strict && epoch < l.epoch {
		return fmt.Errorf("%w: %s/%d appends in epoch %d, the log has epoch %d", ErrFencedLeaderEpoch, p.topic, p.id, epoch, l.epoch)
	}
	p.epochs.Lock()
	defer p.epochs.Unlock()
	was := append([]epochEntry(nil), p.epochs.cache.entries...)
	changed, err := p.epochs.cache.assign(epoch, off)
	if err != nil {
		return fmt.Errorf("%w: %s/%d: %w", ErrFencedLeaderEpoch, p.topic, p.id, err)
	}
	if !changed {
		return nil
	}
	if err := p.log.SaveState(epochCheckpointName, p.epochs.cache.marshal(), true); err != nil {
		p.epochs.cache.entries = was
		return fmt.Errorf("engine: leader epoch checkpoint of %s/%d: %w", p.topic, p.id, err)
	}
	return nil
}

// saveEpochsLocked writes the epoch cache durably. The caller holds
// p.epochs.
func (p *Partition) saveEpochsLocked() error {
	if err := p.log.SaveState(epochCheckpointName, p.epochs.cache.marshal(), true); err != nil {
		return fmt.Errorf("engine: leader epoch checkpoint of %s/%d: %w", p.topic, p.id, err)
	}
	return nil
}

// loadEpochs restores the epoch cache at open: the checkpoint, cut to the
// log as recovered; without a usable checkpoint it is rebuilt from the batch
// headers (logs written before epochs were kept).
func (p *Partition) loadEpochs() error {
	p.epochs.Lock()
	defer p.epochs.Unlock()
	start, end := p.log.StartOffset(), p.log.NextOffset()
	b, err := p.log.LoadState(epochCheckpointName)
	if err != nil {
		return err
	}
	c := &p.epochs.cache
	changed := false
	if b != nil {
		if err := c.unmarshal(b); err != nil {
			p.e.log.Warn("rebuilding leader epoch cache", "topic", p.topic, "partition", p.id, "err", err)
			b = nil
		}
	}
	if b == nil && end > start {
		*c = epochCache{}
		err := p.eachBatch(start, end, func(h record.Header) error {
			if l, ok := c.latest(); !ok || h.PartitionLeaderEpoch > l.epoch {
				c.entries = append(c.entries, epochEntry{epoch: h.PartitionLeaderEpoch, start: h.BaseOffset})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("engine: rebuild leader epochs of %s/%d: %w", p.topic, p.id, err)
		}
		changed = true
	}
	if c.truncateFromEnd(end) {
		changed = true
	}
	if c.truncateFromStart(start) {
		changed = true
	}
	if changed {
		return p.saveEpochsLocked()
	}
	return nil
}

// eachBatch calls f with the header of every batch holding offsets in
// [from, to), in order, reading the log (not bounded by the high watermark).
func (p *Partition) eachBatch(from, to int64, f func(record.Header) error) error {
	for from < to {
		c, err := p.log.View(from, 16<<20, to)
		if err != nil {
			return err
		}
		rest, was := c.Bytes, from
		for len(rest) > 0 {
			batch, r, err := record.Split(rest)
			if err != nil {
				break
			}
			rest = r
			h, err := record.ParseHeader(batch)
			if err != nil {
				break
			}
			if h.LastOffset() >= from {
				if err := f(h); err != nil {
					c.Release()
					return err
				}
			}
			from = h.LastOffset() + 1
		}
		c.Release()
		if from <= was {
			return fmt.Errorf("%w: no batch at offset %d", record.ErrCorrupt, was)
		}
	}
	return nil
}

// ReplicaAppendResult says what AppendReplica stored.
type ReplicaAppendResult struct {
	// FirstOffset and LastOffset are the first and last offsets appended;
	// both -1 when nothing was.
	FirstOffset, LastOffset int64
	// Batches counts the batches appended; Bytes their size.
	Batches, Bytes int
}

// AppendReplica is a follower's append: batches fetched from the leader,
// stored exactly as they are (offsets, epochs and timestamps kept). records
// holds whole batches, possibly followed by a partial one (a fetch response
// may cut the last batch short), which is ignored. Every batch must pass its
// CRC check (record.ErrCorrupt), the first must start at or after the log
// end and each next one after the one before (holes are what the leader's
// compaction left), and leader epochs may not go back (ErrNotContiguous); nothing is appended unless all pass. A batch of a new
// epoch records that epoch in the epoch cache first. Producer state is
// updated without deduplication: the leader already did that. It works on
// leaders too (a partition that is not a follower), for tools that copy
// logs; a replica fetcher writes with Follower(epoch).Append instead, which
// also checks that the partition still follows that epoch.
func (p *Partition) AppendReplica(records []byte) (ReplicaAppendResult, error) {
	return p.appendReplica(records, 0, false)
}

// appendReplica is AppendReplica; with fenced, only on a follower in epoch
// (see FollowerWriter).
func (p *Partition) appendReplica(records []byte, epoch int32, fenced bool) (ReplicaAppendResult, error) {
	res := ReplicaAppendResult{FirstOffset: -1, LastOffset: -1}
	p.mu.Lock()
	if err := p.writableLocked(); err != nil {
		p.mu.Unlock()
		return res, err
	}
	if fenced {
		if err := p.followerIn(epoch); err != nil {
			p.mu.Unlock()
			return res, err
		}
	}
	type item struct {
		b []byte
		h record.Header
	}
	var items []item
	next := p.log.NextOffset()
	// Epochs may not go back from the last batch's; cache entries at the
	// log end hold no batch (an epoch led without appends) and give way,
	// as in Kafka's assign.
	p.epochs.Lock()
	last := p.epochs.cache.epochAt(next - 1)
	p.epochs.Unlock()
	for rest := records; len(rest) > 0; {
		batch, r, err := record.Split(rest)
		if errors.Is(err, record.ErrShort) {
			break // a partial last batch
		}
		if err == nil {
			var h record.Header
			h, err = record.ValidateStored(batch)
			// Above the log end is a hole the leader's compaction left
			// (Kafka's follower takes it too); below it overlaps.
			if err == nil && h.BaseOffset < next {
				err = fmt.Errorf("%w: batch at %d, log end %d", ErrNotContiguous, h.BaseOffset, next)
			}
			if err == nil && h.PartitionLeaderEpoch < last {
				err = fmt.Errorf("%w: epoch %d after %d at offset %d", ErrNotContiguous, h.PartitionLeaderEpoch, last, h.BaseOffset)
			}
			if err == nil {
				items = append(items, item{batch, h})
				next, last = h.LastOffset()+1, h.PartitionLeaderEpoch
			}
		}
		if err != nil {
			p.mu.Unlock()
			return res, fmt.Errorf("engine: replica append to %s/%d: %w", p.topic, p.id, err)
		}
		rest = r
	}
	var flushTo int64
	var err error
	for _, it := range items {
		if err = p.assignEpochLocked(it.h.PartitionLeaderEpoch, it.h.BaseOffset, false); err != nil {
			break
		}
		var f int64
		if f, err = p.storeLocked(it.b, it.h); err != nil {
			break
		}
		flushTo = max(flushTo, f)
		if res.Batches == 0 {
			res.FirstOffset = it.h.BaseOffset
		}
		res.LastOffset = it.h.LastOffset()
		res.Batches++
		res.Bytes += len(it.b)
	}
	p.mu.Unlock()
	if res.Batches > 0 {
		p.ctrs.ReplicationBytesIn.Add(int64(res.Bytes))
		p.notify()
	}
	if err != nil {
		return res, err
	}
	if flushTo > 0 {
		if err := p.syncTo(flushTo); err != nil {
			return res, err
		}
	}
	return res, nil
}

// DeleteRecords moves the log start offset forward to before, as Kafka's
// DeleteRecords does: reads below it fail with ErrOffsetOutOfRange and whole
// segments below it are removed now. before = -1 means the high watermark.
// An offset above the high watermark is ErrOffsetOutOfRange; one at or below
// the current start changes nothing. It returns the new log start offset
// (Kafka's low watermark); the start is durable when it returns.
func (p *Partition) DeleteRecords(before int64) (int64, error) {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	hw := p.HighWatermark()
	if before == -1 {
		before = hw
	}
	if before < 0 || before > hw {
		return 0, fmt.Errorf("%w: delete records before %d, high watermark %d on %s/%d", ErrOffsetOutOfRange, before, hw, p.topic, p.id)
	}
	if err := p.log.AdvanceStart(before); err != nil {
		return 0, fmt.Errorf("engine: delete records of %s/%d: %w", p.topic, p.id, err)
	}
	_, err := p.dropBelowStartLocked()
	return p.StartOffset(), err
}

// dropBelowStartLocked removes the segments that hold nothing at or above the
// log start offset and trims the epoch cache. It returns how many segments
// went. The caller holds cleanMu.
func (p *Partition) dropBelowStartLocked() (int, error) {
	start := p.log.StartOffset()
	p.mu.Lock() // every writer of the epoch cache holds mu (see assignEpochLocked)
	p.epochs.Lock()
	var err error
	if p.epochs.cache.truncateFromStart(start) {
		err = p.saveEpochsLocked()
	}
	p.epochs.Unlock()
	p.mu.Unlock()
	segs := p.log.Segments()
	n := 0
	for n+1 < len(segs) && segs[n+1].BaseOffset <= start {
		n++
	}
	if n > 0 {
		err = errors.Join(err, p.log.DeleteOldest(n))
	}
	return n, err
}

// TruncateTo cuts the log back so that it ends before offset, for a follower
// whose log diverged from its new leader's (KIP-101/279): every batch
// holding an offset >= offset goes, a batch that holds offset whole, so the
// new log end may be below offset. Indexes, the producer state, the
// leader-epoch cache, the high watermark, the flushed offset and the
// recovery point follow. Readers holding chunks of the cut bytes keep them
// intact; long polls are woken. Cutting below the high watermark loses
// committed records and is refused (ErrBelowHighWatermark) unless unclean
// is set (unclean leader election). Offsets below the log start are
// ErrOffsetOutOfRange. It returns the new log end offset. It works in any
// role (tools, tests); a replica fetcher truncates with
// Follower(epoch).TruncateTo, which also checks that the partition still
// follows that epoch.
func (p *Partition) TruncateTo(offset int64, unclean bool) (int64, error) {
	return p.truncateTo(offset, unclean, 0, false)
}

// truncateTo is TruncateTo; with fenced, only on a follower in epoch (see
// FollowerWriter).
func (p *Partition) truncateTo(offset int64, unclean bool, epoch int32, fenced bool) (int64, error) {
	p.lockClean() // retention and DeleteRecords change the segment list too
	defer p.cleanMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return 0, err
	}
	if fenced {
		if err := p.followerIn(epoch); err != nil {
			return 0, err
		}
	}
	leo := p.log.NextOffset()
	if offset >= leo {
		return leo, nil
	}
	// The batch holding offset goes whole: the checks are on where the
	// cut really falls.
	cut, err := p.cutPoint(offset)
	if err != nil {
		return 0, fmt.Errorf("engine: truncate %s/%d: %w", p.topic, p.id, err)
	}
	if start := p.log.StartOffset(); cut < start {
		return 0, fmt.Errorf("%w: truncate %s/%d to %d cuts below the log start %d", ErrOffsetOutOfRange, p.topic, p.id, cut, start)
	}
	// From the check against the high watermark to the cut, no move of
	// it or of the flushed offset may come between (see Partition.cut).
	p.cut.Lock()
	p.cut.n++
	hw := p.hw.Load()
	if cut < hw && !unclean {
		p.cut.Unlock()
		return 0, fmt.Errorf("%w: truncate %s/%d to %d, high watermark %d", ErrBelowHighWatermark, p.topic, p.id, cut, hw)
	}
	// A producer snapshot written in the background may describe batches
	// that are about to go: let it land, then replace it below.
	p.snapWG.Wait()
	end, err := p.log.TruncateTo(offset)
	if err != nil {
		// The log may be cut part of the way; nothing is sure any more.
		p.failed.Store(true)
		p.cut.Unlock()
		p.e.log.Error("truncation failed; partition stops accepting appends", "topic", p.topic, "partition", p.id, "err", err)
		return end, fmt.Errorf("%w: %w", ErrLogFailed, err)
	}
	if p.flushed.Load() > end {
		p.flushed.Store(end)
	}
	if hw > end {
		p.hw.Store(end)
	}
	p.cut.Unlock()
	p.cutCleanerCheckpoint(end)
	var ckptErr error
	if hw > end {
		// The checkpoint on disk may hold the old, higher value: after a
		// crash it would cover records appended after this cut that were
		// never committed. Write it now.
		ckptErr = p.e.checkpointHW()
	}
	p.epochs.Lock()
	if p.epochs.cache.truncateFromEnd(end) {
		err = p.saveEpochsLocked()
	}
	p.epochs.Unlock()
	if err == nil {
		// From the newest snapshot at or below the new end (loadProducers
		// removes the ones past it).
		p.mu.producers = producerState{}
		err = p.loadProducers()
	}
	p.notifyAll()
	if err = errors.Join(err, ckptErr); err != nil {
		return end, fmt.Errorf("engine: truncate %s/%d: %w", p.topic, p.id, err)
	}
	return end, nil
}

// cutPoint returns where TruncateTo(offset) cuts: offset itself at a batch
// boundary, else the base offset of the batch holding it. offset is below
// the log end. The caller holds mu or cut (either keeps the log end from
// being cut meanwhile; reads need neither).
func (p *Partition) cutPoint(offset int64) (int64, error) {
	c, err := p.log.View(offset, 1, p.log.NextOffset())
	if err != nil {
		return 0, err
	}
	defer c.Release()
	return min(offset, c.FirstOffset), nil
}
