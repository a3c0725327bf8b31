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
	cfg   TopicConfig
	log   Log

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
	// snap serialises producer snapshot writes, which run in the
	// background at rolls so that appends do not wait for them.
	snap struct {
		sync.Mutex
		end int64 // end offset of the snapshot on disk, -1 if none
	}
	snapWG sync.WaitGroup

	// flushed is the offset below which everything is durable.
	// Invariant: flushed <= log.NextOffset().
	flushed atomic.Int64
	fsync   struct {
		sync.Mutex       // serialises fsyncs; see syncTo (group commit)
		err        error // sticky: the first fsync failure
	}

	watch struct {
		sync.Mutex
		ch chan struct{} // closed on the next append; nil while nobody waits
	}
}

func openPartition(e *Engine, topic string, id int32, cfg TopicConfig) (*Partition, error) {
	l, err := e.store.OpenLog(logName(topic, id), LogConfig{
		SegmentBytes: cfg.SegmentBytes,
		SegmentAge:   time.Duration(cfg.SegmentMs) * time.Millisecond,
	}, e.clean)
	if err != nil {
		return nil, err
	}
	p := &Partition{e: e, topic: topic, id: id, cfg: cfg, log: l}
	p.snap.end = -1
	p.flushed.Store(l.NextOffset())
	if err := p.loadProducers(); err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// ID is the partition number.
func (p *Partition) ID() int32 { return p.id }

// StartOffset is the log start offset: the first offset still stored.
func (p *Partition) StartOffset() int64 { return p.log.StartOffset() }

// EndOffset is the log end offset: the offset the next record will get. On a
// single node it is also the high watermark.
func (p *Partition) EndOffset() int64 { return p.log.NextOffset() }

// AppendResult says where an appended batch went.
type AppendResult struct {
	BaseOffset    int64 // offset of the batch's first record
	LastOffset    int64 // offset of its last record
	LogAppendTime int64 // broker time stamped on the batch (LogAppendTime topics), else -1
	Duplicate     bool  // an idempotent retry: the batch was already stored at BaseOffset
}

// Append validates one record batch v2 and appends it. It sets the batch's
// baseOffset and partitionLeaderEpoch (and, for LogAppendTime topics, its
// maxTimestamp) in place; batch is not retained after Append returns.
//
// Errors: record.ErrCorrupt (bad CRC or sizes), record.ErrInvalid (bad magic,
// counts, a control batch), codec.ErrUnknownCodec, ErrMessageTooLarge,
// ErrOutOfOrderSequence and ErrInvalidProducerEpoch (idempotent producers),
// ErrLogFailed (an fsync of the partition failed, now or before), ErrClosed.
// A retry of one of the producer's last five batches succeeds with Duplicate
// set and the original offsets.
//
// When the topic's flush policy says so, Append returns after an fsync that
// covers the batch; concurrent appenders share fsyncs (group commit).
func (p *Partition) Append(batch []byte) (AppendResult, error) {
	h, err := record.Validate(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
	}
	if len(batch) > int(p.cfg.MaxMessageBytes) {
		return AppendResult{}, fmt.Errorf("%w: %d > %d bytes", ErrMessageTooLarge, len(batch), p.cfg.MaxMessageBytes)
	}
	if h.Control() {
		return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w: control batch", p.topic, p.id, record.ErrInvalid)
	}
	if h.Codec() != codec.None {
		if _, err := codec.ByID(h.Codec()); err != nil {
			return AppendResult{}, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
		}
	}
	res, flushTo, err := p.appendValid(batch, h)
	if err != nil || res.Duplicate {
		return res, err
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
	if p.mu.closed {
		return AppendResult{}, 0, ErrClosed
	}
	if p.failed.Load() {
		return AppendResult{}, 0, fmt.Errorf("%w: %s/%d", ErrLogFailed, p.topic, p.id)
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
	record.SetBaseOffset(batch, off)
	record.SetPartitionLeaderEpoch(batch, 0)
	h.BaseOffset = off
	h.PartitionLeaderEpoch = 0
	res := AppendResult{BaseOffset: off, LastOffset: h.LastOffset(), LogAppendTime: -1}
	if p.cfg.LogAppendTime {
		now := p.e.opts.Now().UnixMilli()
		record.SetLogAppendTime(batch, now)
		h.MaxTimestamp = now
		h.Attributes |= 1 << 3
		res.LogAppendTime = now
	}
	rolled, err := p.log.Append(batch, h)
	if err != nil {
		return AppendResult{}, 0, fmt.Errorf("engine: append to %s/%d: %w", p.topic, p.id, err)
	}
	if rolled {
		// Snapshot the state as of the new segment's base so that opening
		// the partition after a crash replays at most one segment. It is
		// written in the background (a rename can wait long for the file
		// system's journal); a lost or failed snapshot only means a longer
		// replay.
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
	p.mu.unflushed += int64(h.RecordCount)
	if p.mu.unflushed >= p.cfg.FlushMessages {
		p.mu.unflushed = 0
		p.mu.dirtyAt = time.Time{}
		return res, h.LastOffset() + 1, nil
	}
	if p.mu.dirtyAt.IsZero() {
		p.mu.dirtyAt = time.Now()
		if p.cfg.FlushMs != math.MaxInt64 {
			p.armFlushTimerLocked()
		}
	}
	return res, 0, nil
}

// armFlushTimerLocked schedules an fsync flush.ms after the first unflushed
// append.
func (p *Partition) armFlushTimerLocked() {
	d := time.Duration(p.cfg.FlushMs) * time.Millisecond
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
	target := p.log.NextOffset() // every append finished so far is covered
	if err := p.log.Sync(); err != nil {
		p.fsync.err = fmt.Errorf("%w: fsync %s/%d: %w", ErrLogFailed, p.topic, p.id, err)
		p.failed.Store(true)
		p.e.log.Error("fsync failed; partition stops accepting appends", "topic", p.topic, "partition", p.id, "err", err)
		return p.fsync.err
	}
	if target > p.flushed.Load() {
		p.flushed.Store(target)
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

// notify wakes everyone waiting in Changed. It allocates nothing when nobody
// waits.
func (p *Partition) notify() {
	p.watch.Lock()
	if p.watch.ch != nil {
		close(p.watch.ch)
		p.watch.ch = nil
	}
	p.watch.Unlock()
}

// Wait blocks until the partition holds an offset >= offset (EndOffset() >
// offset) or ctx ends.
func (p *Partition) Wait(ctx context.Context, offset int64) error {
	for {
		ch := p.Changed()
		if p.EndOffset() > offset {
			return nil
		}
		if p.isClosed() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Partition) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.closed
}

// Read returns batches starting with the one holding offset, up to maxBytes
// (the first batch is always whole, the last may be cut short), as a file
// region for sendfile when the store is on disk. Call Release on the chunk.
// Reading at EndOffset returns an empty chunk; beyond it, or below
// StartOffset, ErrOffsetOutOfRange.
func (p *Partition) Read(offset int64, maxBytes int) (Chunk, error) {
	if p.closed.Load() {
		return Chunk{}, ErrClosed
	}
	if offset == p.log.NextOffset() {
		return Chunk{FirstOffset: offset}, nil
	}
	return p.log.Read(offset, maxBytes)
}

// ReadBatches is like Read but returns whole batches as bytes: for the disk
// store a read-only view of the memory-mapped segment (no copy), valid until
// Release.
func (p *Partition) ReadBatches(offset int64, maxBytes int) (Chunk, error) {
	if p.closed.Load() {
		return Chunk{}, ErrClosed
	}
	if offset == p.log.NextOffset() {
		return Chunk{FirstOffset: offset}, nil
	}
	return p.log.View(offset, maxBytes)
}

// OffsetForTimestamp returns the offset of the first batch with a record at
// or after ts (ms), or EndOffset if none, as Kafka's ListOffsets does.
func (p *Partition) OffsetForTimestamp(ts int64) (int64, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	return p.log.OffsetForTimestamp(ts)
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
	p.notify()
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
// recovery point; files and mappings are released (tests).
func (p *Partition) abandon() {
	p.mu.Lock()
	p.mu.closed = true
	p.closed.Store(true)
	if p.mu.flushTmr != nil {
		p.mu.flushTmr.Stop()
	}
	p.mu.Unlock()
	p.notify()
	p.snapWG.Wait()
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.fsync.Lock()
	defer p.fsync.Unlock()
	if a, ok := p.log.(interface{ abandon() }); ok {
		a.abandon()
	}
}
