package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// Partition is one partition of a topic: an ordered log of record batches.
// All methods are safe for concurrent use.
type Partition struct {
	e     *Engine
	topic string
	id    int32
	// cfg is the topic's settings, replaced whole by setConfig (a change
	// takes effect without reopening the partition).
	cfg  atomic.Pointer[TopicConfig]
	log  Log
	ctrs *TopicCounters // the topic's, shared by its partitions

	mu struct {
		sync.Mutex
		closed    bool
		producers producerState
		unflushed int64     // records appended since the last fsync
		dirtyAt   time.Time // when the oldest unflushed append happened; zero if none
		flushTmr  *time.Timer
	}
	// closed mirrors mu.closed for readers, which do not take mu.
	closed atomic.Bool
	// failed is set once an fsync failed: the log may have lost acknowledged
	// bytes in the page cache, so no further append is accepted.
	failed atomic.Bool
	// cleanMu serialises retention passes with each other and with close.
	cleanMu sync.Mutex
	// cleanWaiters counts truncations waiting for cleanMu (lockClean): a
	// compaction pass seeing one stops early.
	cleanWaiters atomic.Int32
	// snap serialises producer snapshot writes, which run in the
	// background at rolls so that appends do not wait for them.
	snap struct {
		sync.Mutex
		end int64 // end offset of the snapshot on disk, -1 if none
	}
	snapWG sync.WaitGroup
	// flushWG counts flush.ms fsyncs in progress (timedFlush).
	flushWG sync.WaitGroup

	// flushed is the offset below which everything is durable.
	// Invariant: flushed <= log.NextOffset().
	flushed atomic.Int64
	fsync   struct {
		sync.Mutex       // serialises fsyncs; see syncTo (group commit)
		err        error // sticky: the first fsync failure
	}

	watch struct {
		sync.Mutex
		ch chan struct{} // closed on the next append or HW move; nil while nobody waits
	}
	// commits are the waits of Committed.
	commits commitWaits

	// hw is the high watermark: offsets below it are committed, and
	// consumers read only those.
	// Invariant: hw <= log.NextOffset(); it only moves back by TruncateTo.
	hw atomic.Int64
	// cut orders the moves of hw and flushed made without mu
	// (SetHighWatermark, SetSoleReplica, syncTo) with the changes that cut
	// the log end (TruncateTo, TruncateFullyAndStartAt), which hold mu and
	// cut: such a move takes its target from the log end under cut. Appends
	// do not take it (they only move the log end forward), so a follower's
	// fetch at the leader never waits for a producer's write.
	cut struct {
		sync.Mutex
		// n counts the cuts, so that an fsync that began before one
		// does not publish its target: bytes past the cut may have been
		// replaced since.
		n uint64
	}
	// hwManaged: the replica layer moves hw (SetHighWatermark). Otherwise
	// hw follows the log end after each append, or the flushed offset when
	// flush.messages=1 makes every append wait for an fsync.
	hwManaged atomic.Bool
	// hwSole: a managed high watermark of a replica alone in its ISR
	// follows the log end as an unmanaged one does (SetSoleReplica).
	hwSole atomic.Bool

	// leaderEpoch is stamped on every batch appended as leader.
	leaderEpoch atomic.Int32
	// follower: the partition is a follower replica; leader appends are
	// refused (ErrNotLeader), replica appends accepted.
	follower atomic.Bool
	// epochs is the leader-epoch cache. Changed only holding both mu and
	// its own lock; read under either.
	epochs struct {
		sync.Mutex
		cache epochCache
	}
}

func openPartition(e *Engine, topic string, id int32, cfg TopicConfig) (*Partition, error) {
	l, err := e.store.OpenLog(logName(topic, id), cfg.logConfig(), e.clean)
	if err != nil {
		return nil, err
	}
	p := &Partition{e: e, topic: topic, id: id, log: l, ctrs: e.countersFor(topic)}
	p.cfg.Store(&cfg)
	p.snap.end = -1
	p.flushed.Store(l.NextOffset())
	p.hw.Store(l.NextOffset())
	if e.opts.ManagedHighWatermarks {
		hw, ok := e.hwAtOpen[TopicPartition{Topic: topic, Partition: id}]
		if !ok {
			hw = l.StartOffset()
		}
		p.hw.Store(min(max(hw, l.StartOffset()), l.NextOffset()))
		p.hwManaged.Store(true)
	}
	if err := p.loadProducers(); err != nil {
		l.Close()
		return nil, err
	}
	if err := p.loadEpochs(); err != nil {
		l.Close()
		return nil, err
	}
	if l, ok := p.epochs.cache.latest(); ok {
		p.leaderEpoch.Store(l.epoch)
	}
	return p, nil
}

// config returns the topic's current settings. Do not modify.
func (p *Partition) config() *TopicConfig { return p.cfg.Load() }

// setConfig replaces the topic's settings of an open partition: later
// appends, rolls, flushes and retention passes follow cfg. A flush.ms
// timer already armed is re-armed with the new interval.
func (p *Partition) setConfig(cfg TopicConfig) {
	old := p.cfg.Swap(&cfg)
	if *old == cfg {
		return
	}
	p.log.SetConfig(cfg.logConfig())
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.closed && !p.mu.dirtyAt.IsZero() && old.FlushMs != cfg.FlushMs && cfg.FlushMs != math.MaxInt64 {
		p.armFlushTimerLocked()
	}
}

// Size is the bytes of the partition's log: every segment's, including
// any not yet removed below the log start (DescribeLogDirs' size).
func (p *Partition) Size() int64 {
	var n int64
	for _, s := range p.log.Segments() {
		n += s.Size
	}
	return n
}

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// ID is the partition number.
func (p *Partition) ID() int32 { return p.id }

// StartOffset is the log start offset: the first offset consumers may read.
// Retention and DeleteRecords move it forward.
func (p *Partition) StartOffset() int64 { return p.log.StartOffset() }

// EndOffset is the log end offset (LEO): the offset the next record will
// get. Replicas read up to it; consumers only up to HighWatermark.
func (p *Partition) EndOffset() int64 { return p.log.NextOffset() }

// HighWatermark is the offset below which records are committed: what
// consumers may read, what ListOffsets "latest" and Fetch report. Unless
// managed by the replica layer (ManageHighWatermark) it follows the log end.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// AppendResult says where an appended batch went.
type AppendResult struct {
	BaseOffset    int64 // offset of the batch's first record
	LastOffset    int64 // offset of its last record
	LogAppendTime int64 // broker time stamped on the batch (LogAppendTime topics), else -1
	Duplicate     bool  // an idempotent retry: the batch was already stored at BaseOffset
}

// Append validates one record batch v2 and appends it as the partition's
// leader. It sets the batch's baseOffset and partitionLeaderEpoch (the
// current LeaderEpoch; and, for LogAppendTime topics, its maxTimestamp) in
// place; batch is not retained after Append returns. The batch becomes
// readable by consumers once the high watermark passes it (at once on a
// single node; see HighWatermark).
//
// Errors: record.ErrCorrupt (bad CRC or sizes), record.ErrInvalid (bad magic,
// counts, a control batch, a record without a key in a compacted topic), codec.ErrUnknownCodec, ErrMessageTooLarge,
// ErrOutOfOrderSequence and ErrInvalidProducerEpoch (idempotent producers),
// ErrNotLeader (a follower), ErrLogFailed (an fsync of the partition failed,
// now or before), ErrClosed, ErrInvalidTimestamp (a record outside the
// topic's message.timestamp.before/after.max.ms). A retry of one of the
// producer's last five batches succeeds with Duplicate set and the original
// offsets.
//
// With a compression.type other than "producer", a batch in another codec
// is re-compressed into a new buffer before it is stored (the caller's
// batch is then left as it was).
//
// When the topic's flush policy says so, Append returns after an fsync that
// covers the batch; concurrent appenders share fsyncs (group commit).
func (p *Partition) Append(batch []byte) (AppendResult, error) {
	h, err := record.Validate(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
	}
	cfg := p.config()
	if len(batch) > int(cfg.MaxMessageBytes) {
		return AppendResult{}, fmt.Errorf("%w: %d > %d bytes", ErrMessageTooLarge, len(batch), cfg.MaxMessageBytes)
	}
	if h.Control() {
		return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w: control batch", p.topic, p.id, record.ErrInvalid)
	}
	if h.Codec() != codec.None {
		if _, err := codec.ByID(h.Codec()); err != nil {
			return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
		}
	}
	if isCompacted(cfg.CleanupPolicy) {
		if err := checkKeys(batch); err != nil {
			return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
		}
	}
	if err := checkTimestamps(batch, h, cfg, p.e.opts.Now().UnixMilli()); err != nil {
		return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
	}
	if to, _ := compressionCodec(cfg.CompressionType); to >= 0 && h.Codec() != to {
		if batch, err = recompress(batch, h, to); err != nil {
			return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
		}
		if len(batch) > int(cfg.MaxMessageBytes) {
			return AppendResult{}, fmt.Errorf("%w: %d > %d bytes once re-compressed (compression.type %s)", ErrMessageTooLarge, len(batch), cfg.MaxMessageBytes, cfg.CompressionType)
		}
		if h, err = record.ParseHeader(batch); err != nil {
			return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
		}
	}
	res, flushTo, err := p.appendValid(batch, h)
	if err != nil || res.Duplicate {
		return res, err
	}
	p.ctrs.BytesIn.Add(int64(len(batch)))
	p.ctrs.RecordsIn.Add(int64(h.RecordCount))
	if o := p.e.opts.Observer; o != nil {
		o.Appended(len(batch), int(h.RecordCount))
	}
	p.notify()
	if flushTo > 0 {
		if err := p.syncTo(flushTo); err != nil {
			return res, err
		}
	}
	return res, nil
}

// appendValid appends under the partition lock and returns the offset the
// caller must fsync up to (0 for none).
func (p *Partition) appendValid(batch []byte, h record.Header) (AppendResult, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return AppendResult{}, 0, err
	}
	if p.follower.Load() {
		return AppendResult{}, 0, fmt.Errorf("%w: %s/%d is a follower", ErrNotLeader, p.topic, p.id)
	}
	idem := h.ProducerID >= 0 && h.BaseSequence >= 0
	if idem {
		if dup, ok, err := p.mu.producers.check(h); err != nil {
			return AppendResult{}, 0, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
		} else if ok {
			return AppendResult{BaseOffset: dup, LastOffset: dup + int64(h.LastOffsetDelta), LogAppendTime: -1, Duplicate: true}, 0, nil
		}
	}
	off := p.log.NextOffset()
	epoch := p.leaderEpoch.Load()
	if err := p.assignEpochLocked(epoch, off, true); err != nil {
		return AppendResult{}, 0, err
	}
	record.SetBaseOffset(batch, off)
	record.SetPartitionLeaderEpoch(batch, epoch)
	h.BaseOffset = off
	h.PartitionLeaderEpoch = epoch
	res := AppendResult{BaseOffset: off, LastOffset: h.LastOffset(), LogAppendTime: -1}
	if p.config().LogAppendTime {
		now := p.e.opts.Now().UnixMilli()
		record.SetLogAppendTime(batch, now)
		h.MaxTimestamp = now
		h.Attributes |= 1 << 3
		res.LogAppendTime = now
	}
	flushTo, err := p.storeLocked(batch, h)
	if err != nil {
		return AppendResult{}, 0, err
	}
	return res, flushTo, nil
}

// writableLocked reports why the partition takes no append, if it does not.
// The caller holds mu.
func (p *Partition) writableLocked() error {
	if p.mu.closed {
		return ErrClosed
	}
	if p.failed.Load() {
		return fmt.Errorf("%w: %s/%d", ErrLogFailed, p.topic, p.id)
	}
	return nil
}

// storeLocked writes one batch whose offsets and epoch are final at the log
// end and does the bookkeeping every append shares: the producer snapshot
// at a roll, producer state, the high watermark and the flush policy. It
// returns the offset the caller must fsync up to (0 for none). The caller
// holds mu.
func (p *Partition) storeLocked(batch []byte, h record.Header) (int64, error) {
	rolled, err := p.log.Append(batch, h)
	if err != nil {
		return 0, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
	}
	if rolled {
		// Snapshot the state as of the new segment's base so that opening
		// the partition after a crash replays at most one segment. It is
		// written in the background (a rename can wait long for the file
		// system's journal); a lost or failed snapshot only means a longer
		// replay.
		off := h.BaseOffset
		data := p.mu.producers.marshal(off)
		p.snapWG.Add(1)
		go func() {
			defer p.snapWG.Done()
			if err := p.saveSnapshot(data, off, false); err != nil {
				p.e.log.Warn("producer snapshot failed", "topic", p.topic, "partition", p.id, "err", err)
			}
		}()
	}
	if h.ProducerID >= 0 {
		p.mu.producers.update(h)
	}
	p.autoAdvanceHW(h.LastOffset()+1, false)
	p.mu.unflushed += int64(h.RecordCount)
	cfg := p.config()
	if p.mu.unflushed >= cfg.FlushMessages {
		p.mu.unflushed = 0
		p.mu.dirtyAt = time.Time{}
		return h.LastOffset() + 1, nil
	}
	if p.mu.dirtyAt.IsZero() {
		p.mu.dirtyAt = p.e.opts.Now()
		if cfg.FlushMs != math.MaxInt64 {
			p.armFlushTimerLocked()
		}
	}
	return 0, nil
}

// armFlushTimerLocked schedules an fsync flush.ms after the first unflushed
// append.
func (p *Partition) armFlushTimerLocked() {
	d := time.Duration(p.config().FlushMs) * time.Millisecond
	if p.mu.flushTmr == nil {
		p.mu.flushTmr = time.AfterFunc(d, p.timedFlush)
		return
	}
	p.mu.flushTmr.Reset(d)
}

func (p *Partition) timedFlush() {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return
	}
	p.mu.unflushed = 0
	p.mu.dirtyAt = time.Time{}
	target := p.log.NextOffset()
	// Joined by close: it sets closed under mu before waiting, so no
	// flush starts after close began waiting.
	p.flushWG.Add(1)
	defer p.flushWG.Done()
	p.mu.Unlock()
	if err := p.syncTo(target); err != nil {
		p.e.log.Error("flush.ms fsync failed", "topic", p.topic, "partition", p.id, "err", err)
	}
}

// syncTo makes every offset below off durable. Appenders that arrive while
// an fsync runs wait for it and then find their data covered, or run one
// more fsync for all of them: group commit.
//
// A failed fsync is sticky: Linux may drop the dirty pages it could not
// write and report success to the next fsync, so after one failure nothing
// is ever reported durable again, and appends stop (ErrLogFailed).
func (p *Partition) syncTo(off int64) error {
	if p.flushed.Load() >= off {
		return nil
	}
	p.fsync.Lock()
	defer p.fsync.Unlock()
	if p.fsync.err != nil {
		return p.fsync.err
	}
	if p.flushed.Load() >= off {
		return nil
	}
	p.cut.Lock()
	cuts := p.cut.n
	p.cut.Unlock()
	target := p.log.NextOffset() // every append finished so far is covered
	start := time.Now()
	err := p.log.Sync()
	if o := p.e.opts.Observer; o != nil {
		o.Synced(time.Since(start))
	}
	if err != nil {
		p.fsync.err = fmt.Errorf("%w: fsync %s/%d: %w", ErrLogFailed, p.topic, p.id, err)
		p.failed.Store(true)
		p.e.log.Error("fsync failed; partition stops accepting appends", "topic", p.topic, "partition", p.id, "err", err)
		return p.fsync.err
	}
	p.cut.Lock()
	moved := false
	if p.cut.n == cuts {
		if target > p.flushed.Load() {
			p.flushed.Store(target)
		}
		moved = p.autoAdvanceHW(target, true)
	}
	p.cut.Unlock()
	if moved {
		p.notify()
	}
	return nil
}

// Flush makes everything appended so far durable.
func (p *Partition) Flush() error {
	if p.closed.Load() {
		return ErrClosed
	}
	return p.syncTo(p.log.NextOffset())
}

// Changed returns a channel that is closed at the next append to the
// partition (or when it closes). Long polls wait on it: read EndOffset after
// calling Changed, and wait only if there is nothing new.
func (p *Partition) Changed() <-chan struct{} {
	p.watch.Lock()
	defer p.watch.Unlock()
	if p.watch.ch == nil {
		p.watch.ch = make(chan struct{})
	}
	return p.watch.ch
}

// notify wakes everyone waiting in Changed, and the waits of Committed that
// the high watermark has passed: after an append or a move of the high
// watermark. It allocates nothing when nobody waits.
func (p *Partition) notify() {
	p.watch.Lock()
	if p.watch.ch != nil {
		close(p.watch.ch)
		p.watch.ch = nil
	}
	p.watch.Unlock()
	p.releaseCommits(false)
}

// notifyAll is notify after a change that may end a wait of Committed
// without the high watermark passing its offset (a truncation, a change of
// role, Close): it wakes every wait.
func (p *Partition) notifyAll() {
	p.notify()
	p.releaseCommits(true)
}

// Wait blocks until the high watermark passes offset (HighWatermark() >
// offset) or ctx ends: a consumer's long poll.
func (p *Partition) Wait(ctx context.Context, offset int64) error {
	for {
		ch := p.Changed()
		if p.HighWatermark() > offset {
			return nil
		}
		if p.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Read returns committed batches (below the high watermark) starting with
// the one holding offset, up to maxBytes (the first batch is always whole,
// the last may be cut short), as a file region for sendfile when the store
// is on disk. Call Release on the chunk. Reading at or past the high
// watermark, up to the log end, returns an empty chunk; beyond the log end,
// or below StartOffset, ErrOffsetOutOfRange.
func (p *Partition) Read(offset int64, maxBytes int) (Chunk, error) {
	return p.read(offset, maxBytes, p.HighWatermark(), false)
}

// ReadReplica is Read for a follower replica: it is bounded by the log end
// offset instead of the high watermark.
func (p *Partition) ReadReplica(offset int64, maxBytes int) (Chunk, error) {
	return p.read(offset, maxBytes, p.EndOffset(), false)
}

// ReadBatches is like Read but returns whole batches as bytes: for the disk
// store a read-only view of the memory-mapped segment (no copy), valid until
// Release.
func (p *Partition) ReadBatches(offset int64, maxBytes int) (Chunk, error) {
	return p.read(offset, maxBytes, p.HighWatermark(), true)
}

// read serves the reads: the bound end is loaded before anything else, so
// appends that land meanwhile are not returned.
func (p *Partition) read(offset int64, maxBytes int, end int64, view bool) (Chunk, error) {
	if p.closed.Load() {
		return Chunk{}, ErrClosed
	}
	if start, leo := p.log.StartOffset(), p.log.NextOffset(); offset < start || offset > leo {
		return Chunk{}, fmt.Errorf("%w: %d not in [%d, %d] of %s/%d", ErrOffsetOutOfRange, offset, start, leo, p.topic, p.id)
	}
	if offset >= end {
		return Chunk{FirstOffset: offset}, nil
	}
	if view {
		return p.log.View(offset, maxBytes, end)
	}
	return p.log.Read(offset, maxBytes, end)
}

// OffsetForTimestamp returns the offset of the first batch with a record at
// or after ts (ms), or the high watermark if no committed batch has one, as
// Kafka's ListOffsets does for consumers.
func (p *Partition) OffsetForTimestamp(ts int64) (int64, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	hw := p.HighWatermark()
	off, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return 0, err
	}
	return min(max(off, p.log.StartOffset()), hw), nil
}

func (p *Partition) close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	p.closed.Store(true)
	if p.mu.flushTmr != nil {
		p.mu.flushTmr.Stop()
	}
	end := p.log.NextOffset()
	data := p.mu.producers.marshal(end)
	p.mu.Unlock()
	p.notifyAll()
	p.flushWG.Wait()
	p.snapWG.Wait()
	snapErr := p.saveSnapshot(data, end, false)
	p.cleanMu.Lock() // wait for a retention pass in progress
	defer p.cleanMu.Unlock()
	p.fsync.Lock()
	defer p.fsync.Unlock()
	// After a failed fsync the files may have lost pages even if the next
	// fsync succeeds: report it, so that no clean-shutdown marker vouches
	// for them and the next open recovers.
	return errors.Join(p.fsync.err, snapErr, p.log.Close())
}

// abandon closes the partition as a crash would: no fsync, no snapshot, no
// recovery point; files and mappings are released. For a log about to be
// deleted (an fsync of it would only write what is thrown away) and for
// tests.
func (p *Partition) abandon() {
	p.mu.Lock()
	p.mu.closed = true
	p.closed.Store(true)
	if p.mu.flushTmr != nil {
		p.mu.flushTmr.Stop()
	}
	p.mu.Unlock()
	p.notifyAll()
	p.flushWG.Wait()
	p.snapWG.Wait()
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.fsync.Lock()
	defer p.fsync.Unlock()
	if a, ok := p.log.(interface{ abandon() }); ok {
		a.abandon()
	}
}
