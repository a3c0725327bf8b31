package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// This file is log compaction (cleanup.policy=compact), Kafka's LogCleaner
// in one pass per partition:
//
//  1. Choose the cleanable range: the sealed segments wholly below the high
//     watermark and older than min.compaction.lag.ms. The part of it after
//     the cleaner checkpoint (where the last pass stopped) is dirty; clean
//     only when the dirty share of the cleanable bytes reaches
//     min.cleanable.dirty.ratio, or the first dirty batch is older than
//     max.compaction.lag.ms.
//  2. Map each key of the dirty part to the offset of its latest record
//     (offsetMap, bounded by Options.CleanerDedupeBufferSize: a map that
//     fills up stops at a batch boundary, and the pass cleans up to there).
//  3. Rewrite the segments from the log start to where the map stops, in
//     groups that fit in one segment (segment.bytes), each through the
//     log's crash-safe swap (SegmentRewriter): a record stays unless a
//     later record of its key is in the map, it has no key, or it is a
//     tombstone whose batch's delete horizon has passed. A batch keeping a
//     tombstone of the dirty part gets the horizon now + delete.retention.ms
//     (KIP-534, stored in the batch). Offsets never change: a thinned batch
//     keeps its base and last offsets, a batch left without records is
//     dropped, or kept empty when it carries producer state (a producer
//     id) or ends its group (so that a segment ends where it ended before).
//     Control and transactional batches are kept as they are.
//  4. Save the checkpoint: the next pass maps from there.
//
// The pass reads and writes through a throttle
// (Options.CleanerIOMaxBytesPerSecond) and stops early, changing nothing
// more, when the partition is closing or a truncation waits for it.

// cleanerCheckpoint names the state file holding where the last
// compaction pass stopped mapping keys (Kafka's cleaner-offset-checkpoint,
// here one per partition): decimal offset and a newline. It is a hint: a
// lost or wrong one makes the next pass map more, or compact less (or
// later), never lose a record it must keep.
//
// Format: "<offset> <horizon>\n", horizon the earliest delete horizon (ms)
// of a batch the pass kept with tombstones, -1 if none: once it passes, a
// pass runs to drop them even when nothing is dirty.
const cleanerCheckpoint = "cleaner-offset-checkpoint"

// Cleaner defaults (Kafka's).
const (
	defaultDedupeBuffer = 128 << 20
	// maxGroupSegments bounds how many segments one swap replaces.
	maxGroupSegments = 100
)

// errCleanStopped: the pass was stopped (close, truncation); not a failure.
var errCleanStopped = errors.New("engine: compaction stopped")

// ErrCleanerBuffer is returned by compaction when one batch holds more keys
// than the dedupe buffer (Options.CleanerDedupeBufferSize) can map.
var ErrCleanerBuffer = errors.New("engine: log.cleaner.dedupe.buffer.size too small")

// compactPolicy is cleanup.policy=compact.
type compactPolicy struct{}

func (compactPolicy) Name() string { return CleanupCompact }

// Clean compacts l with the default cleaner settings: a 128 MiB dedupe
// buffer, no I/O limit. The engine itself runs it with its Options.
func (p compactPolicy) Clean(l Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	env := &cleanerEnv{cl: newCleaner(Options{}, nil), log: slog.Default()}
	return p.clean(env, l, cfg, now, hw)
}

// cleaner is the engine's compaction state: one pass at a time (mu), which
// owns the dedupe buffer.
type cleaner struct {
	mu          sync.Mutex
	m           offsetMap
	bufferBytes int64
	thr         throttle
}

func newCleaner(o Options, stop <-chan struct{}) *cleaner {
	c := &cleaner{bufferBytes: o.CleanerDedupeBufferSize}
	if c.bufferBytes <= 0 {
		c.bufferBytes = defaultDedupeBuffer
	}
	c.thr.rate, c.thr.stop = o.CleanerIOMaxBytesPerSecond, stop
	return c
}

// throttle limits the cleaner's I/O to rate bytes per second, as Kafka's
// Throttler does: it sleeps whenever the bytes since the window began are
// ahead of the rate. rate <= 0: no limit.
type throttle struct {
	rate  float64
	stop  <-chan struct{} // ends a sleep early (engine close)
	start time.Time
	bytes float64
}

// wait accounts n bytes and sleeps as long as the rate asks. The caller
// holds cleaner.mu.
func (t *throttle) wait(n int) {
	if t.rate <= 0 || n <= 0 {
		return
	}
	now := time.Now()
	if t.start.IsZero() || now.Sub(t.start) > time.Second {
		t.start, t.bytes = now, 0 // a new window: idle time earns no burst
	}
	t.bytes += float64(n)
	ahead := time.Duration(t.bytes/t.rate*float64(time.Second)) - now.Sub(t.start)
	if ahead <= 0 {
		return
	}
	tm := time.NewTimer(ahead)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-t.stop:
	}
}

// cleanerEnv is what a compaction pass of one partition gets from the
// engine.
type cleanerEnv struct {
	cl      *cleaner
	stopped func() bool // the pass must stop: closing, or a truncation waits
	// lastBatch returns the base offset of a producer's newest batch (-1
	// if it has none); nil: every batch of a producer counts as its last.
	lastBatch func(pid int64) int64
	log       *slog.Logger
	topic     string
	part      int32
}

// cleanerEnv returns the compaction settings for a pass over p.
func (p *Partition) cleanerEnv() *cleanerEnv {
	return &cleanerEnv{
		cl:    p.e.cleaner,
		log:   p.e.log,
		topic: p.topic,
		part:  p.id,
		stopped: func() bool {
			select {
			case <-p.e.stop:
				return true
			default:
			}
			return p.closed.Load() || p.cleanWaiters.Load() > 0
		},
		lastBatch: func(pid int64) int64 {
			p.mu.Lock()
			defer p.mu.Unlock()
			if e := p.mu.producers.m[pid]; e != nil && e.n > 0 {
				return e.recent[e.n-1].offset
			}
			return -1
		},
	}
}

// lockClean takes cleanMu for a change of the segment list that must not
// wait for a whole compaction pass: the pass sees cleanWaiters and stops.
func (p *Partition) lockClean() {
	p.cleanWaiters.Add(1)
	p.cleanMu.Lock()
	p.cleanWaiters.Add(-1)
}

// cleanStats are a pass's numbers, logged at its end.
type cleanStats struct {
	bytesRead, bytesWritten     int64
	recordsRead, recordsKept    int64
	batchesRead, batchesWritten int64
	segmentsIn, segmentsOut     int
}

// compaction is one pass over one partition.
type compaction struct {
	env        *cleanerEnv
	l          Log
	cfg        TopicConfig
	now        int64 // ms
	firstDirty int64 // where the map begins
	mapEnd     int64 // where the map ends: a batch boundary
	// nextHorizon is the earliest delete horizon of a batch kept with
	// tombstones, -1 if none.
	nextHorizon int64
	m           *offsetMap
	it          *record.Iterator
	kept        []record.Record
	arena       []byte
	hdrs        []record.RecordHeader
	out         []byte
	stats       cleanStats
}

func (p compactPolicy) clean(env *cleanerEnv, l Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	rw, ok := l.(SegmentRewriter)
	if !ok {
		return 0, nil
	}
	segs := l.Segments()
	nowMs := now.UnixMilli()
	// u: the first segment that may not be cleaned (the active one at the
	// latest).
	u := len(segs) - 1
	for i := 0; i < len(segs)-1; i++ {
		young := cfg.MinCompactionLagMs > 0 && segs[i].LargestTimestamp > nowMs-cfg.MinCompactionLagMs
		if segs[i+1].BaseOffset > hw || young {
			u = i
			break
		}
	}
	if u <= 0 {
		return 0, nil
	}
	end := segs[u].BaseOffset
	firstDirty, horizon := readCheckpoint(l)
	if firstDirty < segs[0].BaseOffset || firstDirty > end {
		firstDirty, horizon = segs[0].BaseOffset, -1
	}
	// Nothing dirty: a pass only to drop tombstones whose horizon passed.
	tombstonesDue := horizon >= 0 && nowMs >= horizon
	if firstDirty >= end && !tombstonesDue {
		return 0, nil
	}
	var cleanBytes, dirtyBytes int64
	for i := 0; i < u; i++ {
		if segs[i+1].BaseOffset <= firstDirty {
			cleanBytes += segs[i].Size
		} else {
			dirtyBytes += segs[i].Size
		}
	}
	if cleanBytes+dirtyBytes == 0 {
		return 0, nil
	}
	ratio := float64(dirtyBytes) / float64(cleanBytes+dirtyBytes)
	forced := false
	if cfg.MaxCompactionLagMs < math.MaxInt64 {
		if ts, ok := firstBatchTime(l, firstDirty, end); ok {
			forced = nowMs-ts > cfg.MaxCompactionLagMs
		}
	}
	if ratio < cfg.MinCleanableDirtyRatio && !forced && !tombstonesDue {
		return 0, nil
	}

	env.cl.mu.Lock()
	defer env.cl.mu.Unlock()
	began := time.Now()
	c := &compaction{env: env, l: l, cfg: cfg, now: nowMs, firstDirty: firstDirty, mapEnd: firstDirty, m: &env.cl.m, nextHorizon: -1}
	c.it = record.NewIterator(nil, 0)
	err := c.buildMap(end)
	if errors.Is(err, errCleanStopped) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if c.mapEnd <= firstDirty && !tombstonesDue {
		return 0, nil
	}
	removed := 0
	for i := 0; i < u && segs[i].BaseOffset < c.mapEnd; {
		j, size := i+1, segs[i].Size
		for j < u && segs[j].BaseOffset < c.mapEnd && j-i < maxGroupSegments &&
			size+segs[j].Size <= cfg.SegmentBytes && segs[j+1].BaseOffset-segs[i].BaseOffset <= math.MaxUint32 {
			size += segs[j].Size
			j++
		}
		err := c.cleanGroup(rw, segs[i].BaseOffset, segs[j].BaseOffset)
		if errors.Is(err, segment.ErrFull) && j > i+1 {
			// The merged indexes did not fit: clean these one by one.
			j = i + 1
			err = c.cleanGroup(rw, segs[i].BaseOffset, segs[j].BaseOffset)
		}
		if errors.Is(err, errCleanStopped) {
			env.log.Info("log cleaner stopped", "topic", env.topic, "partition", env.part, "at", segs[i].BaseOffset)
			return removed, nil
		}
		if err != nil {
			return removed, fmt.Errorf("engine: compact %s/%d [%d, %d): %w", env.topic, env.part, segs[i].BaseOffset, segs[j].BaseOffset, err)
		}
		c.stats.segmentsIn += j - i
		c.stats.segmentsOut++
		env.log.Debug("log cleaner swapped segments", "topic", env.topic, "partition", env.part,
			"from", segs[i].BaseOffset, "to", segs[j].BaseOffset, "segments", j-i, "bytes_read", c.stats.bytesRead, "bytes_written", c.stats.bytesWritten)
		removed += j - i - 1
		i = j
	}
	ckpt := strconv.FormatInt(c.mapEnd, 10) + " " + strconv.FormatInt(c.nextHorizon, 10) + "\n"
	if err := l.SaveState(cleanerCheckpoint, []byte(ckpt), false); err != nil {
		env.log.Warn("log cleaner checkpoint not saved", "topic", env.topic, "partition", env.part, "err", err)
	}
	took := time.Since(began)
	st := c.stats
	env.log.Info("log cleaner cleaned", "topic", env.topic, "partition", env.part,
		"from", segs[0].BaseOffset, "dirty_from", firstDirty, "to", c.mapEnd, "dirty_ratio", ratio, "forced_by_max_lag", forced,
		"keys", c.m.used, "segments_in", st.segmentsIn, "segments_out", st.segmentsOut,
		"bytes_read", st.bytesRead, "bytes_written", st.bytesWritten,
		"records_read", st.recordsRead, "records_kept", st.recordsKept,
		"took", took, "mb_per_s", float64(st.bytesRead)/(1<<20)/max(took.Seconds(), 1e-9))
	return removed, nil
}

// isCompacted reports whether a cleanup.policy value includes compact.
func isCompacted(policy string) bool {
	for p := range strings.SplitSeq(policy, ",") {
		if strings.TrimSpace(p) == CleanupCompact {
			return true
		}
	}
	return false
}

var keyCheckers = sync.Pool{New: func() any { return record.NewIterator(nil, 0) }}

// checkKeys refuses a batch holding a record without a key, as Kafka does
// for compacted topics (compaction could only drop it).
func checkKeys(batch []byte) error {
	it := keyCheckers.Get().(*record.Iterator)
	defer keyCheckers.Put(it)
	it.Reset(batch)
	for it.Next() {
		if it.Record().Key == nil {
			return fmt.Errorf("%w: record at offset delta %d has no key: a compacted topic needs one", record.ErrInvalid, it.Record().Offset-it.Header().BaseOffset)
		}
	}
	return it.Err()
}

// cutCleanerCheckpoint forgets where compaction stopped when a truncation
// cut the log below it: records appended at those offsets again are dirty,
// so the next pass maps the log from its start. (A crash before this only
// leaves them uncompacted.)
func (p *Partition) cutCleanerCheckpoint(end int64) {
	if off, _ := readCheckpoint(p.log); off > end {
		if err := p.log.RemoveState(cleanerCheckpoint); err != nil {
			p.e.log.Warn("log cleaner checkpoint not removed after a truncation", "topic", p.topic, "partition", p.id, "err", err)
		}
	}
}

// readCheckpoint returns the saved cleaner checkpoint (where the last pass
// stopped mapping, and the earliest delete horizon of a tombstone it kept,
// -1 if none), or -1, -1.
func readCheckpoint(l Log) (int64, int64) {
	b, err := l.LoadState(cleanerCheckpoint)
	if err != nil || b == nil {
		return -1, -1
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return -1, -1
	}
	off, err1 := strconv.ParseInt(f[0], 10, 64)
	hz, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return off, hz
}

// firstBatchTime returns the maxTimestamp of the first batch at or after
// off below end.
func firstBatchTime(l Log, off, end int64) (int64, bool) {
	ch, err := l.View(off, 1, end)
	if err != nil {
		return 0, false
	}
	defer ch.Release()
	h, err := record.ParseHeader(ch.Bytes)
	return h.MaxTimestamp, err == nil
}

// eachBatch calls fn for every whole batch from off to end, chunk by
// chunk, through the throttle, checking between chunks whether the pass
// must stop. fn may use batch only until it returns.
func (c *compaction) eachBatch(off, end int64, fn func(batch []byte, h record.Header) error) error {
	for off < end {
		if c.env.stopped != nil && c.env.stopped() {
			return errCleanStopped
		}
		ch, err := c.l.View(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(ch.Bytes) == 0 {
			ch.Release()
			return nil
		}
		for rest := ch.Bytes; len(rest) > 0; {
			batch, r, err := record.Split(rest)
			if err != nil {
				ch.Release()
				return fmt.Errorf("at offset %d: %w", off, err)
			}
			rest = r
			h, err := record.ParseHeader(batch)
			if err != nil {
				ch.Release()
				return fmt.Errorf("at offset %d: %w", off, err)
			}
			if h.LastOffset() < off {
				continue // a batch before off at the chunk's start
			}
			c.stats.bytesRead += int64(len(batch))
			c.stats.batchesRead++
			if err := fn(batch, h); err != nil {
				ch.Release()
				return err
			}
			off = h.LastOffset() + 1
		}
		c.env.cl.thr.wait(len(ch.Bytes))
		ch.Release()
	}
	return nil
}

// errMapFull stops buildMap at a batch that does not fit.
var errMapFull = errors.New("engine: offset map full")

// buildMap maps the keys of [firstDirty, end) to their latest offsets, as
// far as the buffer goes, and sets mapEnd.
func (c *compaction) buildMap(end int64) error {
	c.m.reset(end-c.firstDirty, c.env.cl.bufferBytes)
	err := c.eachBatch(c.firstDirty, end, func(batch []byte, h record.Header) error {
		if !h.Control() && !h.Transactional() && h.RecordCount > 0 {
			if !c.m.room(int(h.RecordCount)) {
				if c.mapEnd == c.firstDirty {
					return fmt.Errorf("%w: %d bytes map %d keys; the batch at %d has %d records",
						ErrCleanerBuffer, c.env.cl.bufferBytes, c.m.limit, h.BaseOffset, h.RecordCount)
				}
				return errMapFull
			}
			c.it.Reset(batch)
			for c.it.Next() {
				if r := c.it.Record(); r.Key != nil {
					c.m.put(r.Key, r.Offset)
				}
			}
			if err := c.it.Err(); err != nil {
				return fmt.Errorf("batch at %d: %w", h.BaseOffset, err)
			}
		}
		c.mapEnd = h.LastOffset() + 1
		return nil
	})
	if errors.Is(err, errMapFull) {
		return nil
	}
	if err == nil {
		c.mapEnd = end // holes at the end of the range are mapped too
	}
	return err
}

// cleanGroup rewrites the segments [from, to) into one.
func (c *compaction) cleanGroup(rw SegmentRewriter, from, to int64) error {
	return rw.RewriteSegments(from, to, func(add func([]byte) error) error {
		var dropped *record.Header // the last batch read, if dropped for want of records
		err := c.eachBatch(from, to, func(batch []byte, h record.Header) error {
			out, empty, err := c.filter(batch, h)
			if err != nil {
				return fmt.Errorf("batch at %d: %w", h.BaseOffset, err)
			}
			if empty {
				dropped = &h
				return nil
			}
			dropped = nil
			c.stats.bytesWritten += int64(len(out))
			c.stats.batchesWritten++
			return add(out)
		})
		if err != nil {
			return err
		}
		if dropped != nil {
			// The group's last batch stays, empty: the new segment ends
			// where the old ones did, so the next one follows on.
			out, err := record.AppendCompacted(c.out[:0], *dropped, nil, -1)
			if err != nil {
				return err
			}
			c.stats.bytesWritten += int64(len(out))
			c.stats.batchesWritten++
			return add(out)
		}
		return nil
	})
}

// filter returns what compaction keeps of one batch: the batch itself
// when it keeps everything and needs no delete horizon, a rewritten batch,
// or nothing with empty set when no record is left and nothing else needs
// the batch (the caller keeps it empty if it ends the group).
func (c *compaction) filter(batch []byte, h record.Header) (out []byte, empty bool, err error) {
	if h.Control() || h.Transactional() {
		return batch, false, nil
	}
	if h.RecordCount == 0 {
		return batch, !c.producerLast(h), nil
	}
	hz, hasHz := h.DeleteHorizon()
	dirty := h.BaseOffset >= c.firstDirty && h.BaseOffset < c.mapEnd
	c.kept, c.arena, c.hdrs = c.kept[:0], c.arena[:0], c.hdrs[:0]
	n, needHz := 0, false
	c.it.Reset(batch)
	for c.it.Next() {
		r := c.it.Record()
		n++
		if !c.keep(r, hz, hasHz) {
			continue
		}
		if r.Value == nil && !hasHz && dirty {
			needHz = true
		}
		c.kept = append(c.kept, c.copyRecord(r))
	}
	if err := c.it.Err(); err != nil {
		return nil, false, err
	}
	c.stats.recordsRead += int64(n)
	c.stats.recordsKept += int64(len(c.kept))
	horizon := int64(-1)
	switch {
	case hasHz:
		horizon = hz
	case needHz:
		horizon = c.now + min(c.cfg.DeleteRetentionMs, math.MaxInt64-c.now)
	}
	if horizon >= 0 && c.keptTombstone() && (c.nextHorizon < 0 || horizon < c.nextHorizon) {
		c.nextHorizon = horizon
	}
	switch {
	case len(c.kept) == n && !needHz:
		return batch, false, nil
	case len(c.kept) == 0:
		if c.producerLast(h) {
			// Producer state is rebuilt from batch headers: keep the
			// producer's last one, as Kafka does.
			c.out, err = record.AppendCompacted(c.out[:0], h, nil, -1)
			return c.out, false, err
		}
		return nil, true, nil
	}
	c.out, err = record.AppendCompacted(c.out[:0], h, c.kept, horizon)
	return c.out, false, err
}

// producerLast reports whether h is the newest batch of an idempotent
// producer, whose header producer state needs.
func (c *compaction) producerLast(h record.Header) bool {
	if h.ProducerID < 0 {
		return false
	}
	return c.env.lastBatch == nil || c.env.lastBatch(h.ProducerID) == h.BaseOffset
}

// keptTombstone reports whether the batch being filtered keeps a
// tombstone.
func (c *compaction) keptTombstone() bool {
	for i := range c.kept {
		if c.kept[i].Value == nil {
			return true
		}
	}
	return false
}

// keep decides one record: it goes if it has no key (Kafka's cleaner drops
// those), if a later record of its key is mapped, or if it is a tombstone
// whose batch's delete horizon has passed.
func (c *compaction) keep(r *record.Record, hz int64, hasHz bool) bool {
	if r.Key == nil {
		return false
	}
	if latest := c.m.get(r.Key); latest > r.Offset {
		return false
	}
	return r.Value != nil || !hasHz || c.now < hz
}

// copyRecord copies r's bytes into the pass's buffers, which live until
// the next batch.
func (c *compaction) copyRecord(r *record.Record) record.Record {
	cp := *r
	cp.Key = c.own(r.Key)
	cp.Value = c.own(r.Value)
	if r.Headers != nil {
		start := len(c.hdrs)
		for _, hd := range r.Headers {
			c.hdrs = append(c.hdrs, record.RecordHeader{Key: hd.Key, Value: c.own(hd.Value)})
		}
		cp.Headers = c.hdrs[start:len(c.hdrs):len(c.hdrs)]
	}
	return cp
}

// own copies b into the arena, nil staying nil.
func (c *compaction) own(b []byte) []byte {
	if b == nil {
		return nil
	}
	start := len(c.arena)
	c.arena = append(c.arena, b...)
	return c.arena[start:len(c.arena):len(c.arena)]
}
