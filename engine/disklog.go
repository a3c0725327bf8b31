package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/internal/fsutil"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// syncSegment fsyncs a segment. Tests replace it to delay or fail fsyncs.
var syncSegment = (*segment.Segment).Sync

type diskLog struct {
	dir string
	// cfg is the topic's settings (SetConfig replaces it).
	cfg atomic.Pointer[LogConfig]
	// seg is the store's segment settings; segConfig adds cfg's.
	seg segment.Config
	obs Observer // nil: none (see DiskStore.obs)
	log *slog.Logger
	// jitter is segment.jitter.ms as drawn for the active segment. Touched
	// by the writer only.
	jitter time.Duration

	// segs is the current list of segments, oldest first, never empty once
	// loaded. Readers load it without locks; roll and DeleteOldest replace
	// it holding listMu.
	segs   atomic.Pointer[[]*segment.Segment]
	listMu sync.Mutex
	// next is the log end offset, published after a batch is whole in the
	// active segment, so a reader that sees it can read every offset below.
	// Invariant: next <= active().NextOffset().
	next atomic.Int64

	// start is the persisted log start offset (see logStartFile); startMu
	// serialises its writes.
	start   atomic.Int64
	startMu sync.Mutex

	// recovery is the persisted recovery point; see recoveryFile.
	recovery   atomic.Int64
	recoveryMu sync.Mutex // serialises writes of the recovery file
	recovered  int        // segments scanned by recovery at open

	// Background fsyncs of rolled segments. They may finish in any order;
	// each waits for the one before it so the recovery point only moves
	// past segments that are all durable. lastRoll is touched by the
	// writer only.
	syncWG   sync.WaitGroup
	lastRoll *rollSync

	// dirDirty: a segment file was created in dir since dir was last
	// fsynced. parentDirty: dir itself is new in its parent.
	dirDirty, parentDirty atomic.Bool

	// swapStep, when set (tests), is called at each step of a compaction
	// swap; an error stops the swap there (see RewriteSegments).
	swapStep func(step string) error
}

// rollSync is one background fsync of a rolled segment.
type rollSync struct {
	done chan struct{}
	ok   bool // set before done is closed: this and every earlier rolled segment are durable
}

func (l *diskLog) segments() []*segment.Segment {
	if p := l.segs.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *diskLog) active() *segment.Segment {
	s := l.segments()
	return s[len(s)-1]
}

// writeRecoveryPointLocked persists the recovery point. The caller holds
// recoveryMu.
func (l *diskLog) writeRecoveryPointLocked(off int64) error {
	if off == l.recovery.Load() {
		return nil
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(l.dir, recoveryFile), []byte(strconv.FormatInt(off, 10)+"\n"), false); err != nil {
		return err
	}
	l.recovery.Store(off)
	return nil
}

func (l *diskLog) closeSegments(segs []*segment.Segment) {
	for _, s := range segs {
		s.Close()
	}
}

// SetConfig implements Log.
func (l *diskLog) SetConfig(cfg LogConfig) { l.cfg.Store(&cfg) }

// segConfig is the store's segment settings with the topic's.
func (l *diskLog) segConfig() segment.Config {
	c := l.seg
	cfg := l.cfg.Load()
	c.MaxBytes = cfg.SegmentBytes
	if cfg.IndexBytes > 0 {
		c.MaxIndexBytes = cfg.IndexBytes
	}
	if cfg.IndexInterval > 0 {
		c.IndexInterval = cfg.IndexInterval
	}
	c.Preallocate = c.Preallocate || cfg.Preallocate
	return c
}

func (l *diskLog) Append(batch []byte, h record.Header) (bool, error) {
	a := l.active()
	rolled := false
	cfg := l.cfg.Load()
	if a.Size() > 0 && (l.seg.Now().Sub(a.Created()) >= cfg.SegmentAge-l.jitter || a.Size()+int64(len(batch)) > cfg.SegmentBytes) {
		var err error
		if a, err = l.roll(); err != nil {
			return false, err
		}
		rolled = true
	}
	err := a.Append(batch, h)
	if errors.Is(err, segment.ErrFull) && !rolled {
		// Over segment.bytes, a full index or a relative offset overflow:
		// the batch goes into a new segment.
		if a, err = l.roll(); err != nil {
			return false, err
		}
		rolled = true
		err = a.Append(batch, h)
	}
	if err != nil {
		return rolled, err
	}
	l.next.Store(h.LastOffset() + 1)
	return rolled, nil
}

func (l *diskLog) SaveState(name string, data []byte, sync bool) error {
	return fsutil.WriteFileAtomic(filepath.Join(l.dir, name), data, sync)
}

func (l *diskLog) States(suffix string) ([]string, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (l *diskLog) RemoveState(name string) error {
	err := os.Remove(filepath.Join(l.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = fsutil.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}

func (l *diskLog) LoadState(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return b, nil
}

// roll seals the active segment and starts a new one at the next offset. The
// sealed segment is fsynced in the background, after which the recovery
// point moves past it (once every segment rolled before it is durable too).
func (l *diskLog) roll() (*segment.Segment, error) {
	old := l.active()
	next, err := segment.Create(l.dir, old.NextOffset(), l.segConfig())
	if err != nil {
		return nil, err
	}
	l.jitter = 0
	if cfg := l.cfg.Load(); cfg.SegmentJitter > 0 && cfg.SegmentAge > 0 {
		l.jitter = time.Duration(rand.Int64N(int64(min(cfg.SegmentJitter, cfg.SegmentAge))))
	}
	if err := old.Seal(); err != nil {
		next.Delete()
		return nil, err
	}
	l.dirDirty.Store(true)
	l.listMu.Lock()
	segs := append(append([]*segment.Segment(nil), l.segments()...), next)
	l.segs.Store(&segs)
	l.listMu.Unlock()
	prev := l.lastRoll
	cur := &rollSync{done: make(chan struct{})}
	l.lastRoll = cur
	held := old.Acquire()
	l.syncWG.Add(1)
	go func() {
		defer l.syncWG.Done()
		defer close(cur.done)
		ok := true
		if held {
			start := time.Now()
			err := syncSegment(old)
			if l.obs != nil {
				l.obs.Synced(time.Since(start))
			}
			old.Release()
			// A segment deleted by retention meanwhile needs no fsync.
			ok = err == nil || errors.Is(err, segment.ErrClosed)
		}
		ok = ok && l.syncDirs() == nil
		if prev != nil {
			<-prev.done
			ok = ok && prev.ok
		}
		cur.ok = ok
		if ok {
			l.advanceRecovery(next.BaseOffset())
		}
	}()
	return next, nil
}

// advanceRecovery moves the recovery point forward, never back. A failed
// write leaves the old point, which only makes the next recovery scan more.
func (l *diskLog) advanceRecovery(off int64) {
	l.recoveryMu.Lock()
	defer l.recoveryMu.Unlock()
	if off > l.recovery.Load() {
		_ = l.writeRecoveryPointLocked(off)
	}
}

// syncDirs fsyncs the partition directory (and its parent, once) if a file
// was created in it since the last time.
func (l *diskLog) syncDirs() error {
	if l.parentDirty.Swap(false) {
		if err := fsutil.SyncDir(filepath.Dir(l.dir)); err != nil {
			l.parentDirty.Store(true)
			return err
		}
	}
	if l.dirDirty.Swap(false) {
		if err := fsutil.SyncDir(l.dir); err != nil {
			l.dirDirty.Store(true)
			return err
		}
	}
	return nil
}

// find returns the index of the segment holding offset, or -1.
func findSegment(segs []*segment.Segment, offset int64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].BaseOffset() > offset }) - 1
}

// acquire takes a reference to the segment holding the first batch with an
// offset >= offset and returns the offset to ask it for: offset itself, or
// the segment's base offset when offset falls in a hole between segments.
func (l *diskLog) acquire(offset int64) (*segment.Segment, int64, error) {
	for range 3 { // a concurrent retention pass may delete the segment under us
		if offset >= l.next.Load() {
			return nil, 0, l.outOfRange(offset)
		}
		segs := l.segments()
		i := findSegment(segs, offset)
		if i < 0 {
			return nil, 0, l.outOfRange(offset)
		}
		at := offset
		for i < len(segs)-1 && segs[i].NextOffset() <= at {
			i++ // a hole after segs[i]: go on to the next segment
			at = segs[i].BaseOffset()
		}
		if s := segs[i]; s.Acquire() {
			return s, at, nil
		}
	}
	return nil, 0, l.outOfRange(offset)
}

func (l *diskLog) outOfRange(offset int64) error {
	return fmt.Errorf("%w: %d not in [%d, %d)", ErrOffsetOutOfRange, offset, l.StartOffset(), l.NextOffset())
}

func (l *diskLog) Read(offset int64, maxBytes int, end int64) (Chunk, error) {
	s, at, err := l.acquireBelow(offset, end)
	if s == nil {
		return Chunk{FirstOffset: offset}, err
	}
	// Bounded by end: the segment may already hold bytes of batches past
	// the high watermark (or not yet published) that must not be returned.
	r, err := s.ReadTo(at, maxBytes, end)
	if errors.Is(err, segment.ErrOutOfRange) {
		// offset is in the batch that holds end (a bound inside a
		// batch): nothing whole lies below end from here.
		s.Release()
		return Chunk{FirstOffset: offset}, nil
	}
	if err != nil {
		s.Release()
		return Chunk{}, l.segmentErr(err, offset)
	}
	return Chunk{File: r.File, Pos: r.Pos, Len: r.Len, FirstOffset: r.FirstOffset, seg: s}, nil
}

// View is like Read but returns whole batches as a memory-mapped slice.
func (l *diskLog) View(offset int64, maxBytes int, end int64) (Chunk, error) {
	s, at, err := l.acquireBelow(offset, end)
	if s == nil {
		return Chunk{FirstOffset: offset}, err
	}
	b, err := s.ViewTo(at, maxBytes, end)
	if errors.Is(err, segment.ErrOutOfRange) {
		s.Release() // offset is in the batch holding end: nothing below it
		return Chunk{FirstOffset: offset}, nil
	}
	if err != nil {
		s.Release()
		return Chunk{}, l.segmentErr(err, offset)
	}
	first := at
	if h, herr := record.ParseHeader(b); herr == nil {
		first = h.BaseOffset
	}
	return Chunk{Bytes: b, FirstOffset: first, seg: s}, nil
}

// acquireBelow is acquire for a read bounded by end: a nil segment with a
// nil error means there is nothing below end to return.
func (l *diskLog) acquireBelow(offset, end int64) (*segment.Segment, int64, error) {
	if offset >= end {
		return nil, 0, nil
	}
	s, at, err := l.acquire(offset)
	if err != nil {
		return nil, 0, err
	}
	if at >= end { // offset fell in a hole that reaches the bound
		s.Release()
		return nil, 0, nil
	}
	return s, at, nil
}

func (l *diskLog) segmentErr(err error, offset int64) error {
	if errors.Is(err, segment.ErrOutOfRange) {
		return l.outOfRange(offset)
	}
	return fmt.Errorf("engine: read %s at %d: %w", filepath.Base(l.dir), offset, err)
}

func (l *diskLog) OffsetForTimestamp(ts int64) (int64, error) {
	for _, s := range l.segments() {
		if !s.Acquire() {
			continue
		}
		off, err := s.OffsetForTimestamp(ts)
		s.Release()
		if err == nil {
			return off, nil
		}
		if !errors.Is(err, segment.ErrOutOfRange) {
			return 0, fmt.Errorf("engine: %w", err)
		}
	}
	return l.NextOffset(), nil
}

func (l *diskLog) StartOffset() int64 { return max(l.start.Load(), l.segments()[0].BaseOffset()) }

// AdvanceStart persists a new log start offset; see Log.
func (l *diskLog) AdvanceStart(off int64) error {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	off = min(off, l.NextOffset())
	if off <= l.StartOffset() {
		return nil
	}
	if err := l.writeStartLocked(off); err != nil {
		return err
	}
	return nil
}

// writeStartLocked writes the log start file durably and publishes off.
// The caller holds startMu.
func (l *diskLog) writeStartLocked(off int64) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(l.dir, logStartFile), []byte(strconv.FormatInt(off, 10)+"\n"), true); err != nil {
		return err
	}
	l.start.Store(off)
	return nil
}

func (l *diskLog) NextOffset() int64 { return l.next.Load() }

// Sync fsyncs the active segment, any rolled segment that the background
// fsync has not covered yet (those at or past the recovery point), and the
// directory entries of new segment files.
func (l *diskLog) Sync() error {
	if err := l.syncDirs(); err != nil {
		return fmt.Errorf("engine: fsync %s: %w", l.dir, err)
	}
	rp := l.recovery.Load()
	for _, s := range l.segments() {
		if s.BaseOffset() < rp {
			continue
		}
		if !s.Acquire() {
			continue
		}
		err := syncSegment(s)
		s.Release()
		if err != nil && !errors.Is(err, segment.ErrClosed) {
			return err
		}
	}
	return nil
}

func (l *diskLog) Segments() []SegmentInfo {
	segs := l.segments()
	out := make([]SegmentInfo, 0, len(segs))
	for _, s := range segs {
		ts := int64(-1)
		if s.Acquire() {
			ts, _ = s.LargestTimestamp()
			// Retention runs every few minutes: let it also unmap the
			// indexes of sealed segments that reads mapped since, which
			// bounds the mappings an engine with many partitions holds.
			s.ReleaseIndexes()
			s.Release()
		}
		out = append(out, SegmentInfo{BaseOffset: s.BaseOffset(), Size: s.Size(), LargestTimestamp: ts})
	}
	return out
}

// DeleteOldest runs concurrently with Append: a roll only adds segments at
// the end, so the n oldest stay the same, and the list is swapped under
// listMu. The slow parts (fsync of the log start, unlinking) hold no lock.
func (l *diskLog) DeleteOldest(n int) error {
	segs := l.segments()
	if n > len(segs)-1 {
		n = len(segs) - 1
	}
	if n <= 0 {
		return nil
	}
	// Persist the new start first: a crash half-way through the deletes
	// then cannot bring back a segment with a hole after it.
	l.startMu.Lock()
	if start := segs[n].BaseOffset(); start > l.start.Load() {
		if err := l.writeStartLocked(start); err != nil {
			l.startMu.Unlock()
			return err
		}
	}
	l.startMu.Unlock()
	l.listMu.Lock()
	segs = l.segments()
	victims := segs[:n:n]
	rest := append([]*segment.Segment(nil), segs[n:]...)
	l.segs.Store(&rest)
	l.listMu.Unlock()
	var err error
	for _, s := range victims {
		err = errors.Join(err, s.Delete())
	}
	return err
}

func (l *diskLog) Stats() LogStats {
	segs := l.segments()
	// Each segment holds its log's descriptor; a mapped index holds a
	// mapping but no descriptor (package index closes it once mapped).
	st := LogStats{Segments: len(segs), OpenFiles: len(segs), Recovered: l.recovered}
	for _, s := range segs {
		st.MappedFiles += s.OpenIndexes()
		st.MappedBytes += s.MappedIndexBytes()
		st.Bytes += s.Size()
	}
	return st
}

func (l *diskLog) Close() error {
	l.syncWG.Wait()
	// Everything, including rolled segments whose background fsync failed,
	// must be durable before the recovery point moves to the active segment.
	err := l.Sync()
	if err == nil {
		l.recoveryMu.Lock()
		err = l.writeRecoveryPointLocked(l.active().BaseOffset())
		l.recoveryMu.Unlock()
	}
	for _, s := range l.segments() {
		err = errors.Join(err, s.Close())
	}
	return err
}

// abandon releases every file and mapping without syncing or writing
// anything, leaving the directory as a crash of the process would (tests).
func (l *diskLog) abandon() {
	l.syncWG.Wait()
	for _, s := range l.segments() {
		s.Close()
	}
}

// TruncateTo cuts the log; see Log. Segments wholly at or past offset are
// deleted newest first (a crash then leaves a prefix of the log), then the
// segment holding offset is cut (segment.Segment.TruncateTo: in place when no
// reader holds it, else by copy and rename, so readers keep their bytes).
func (l *diskLog) TruncateTo(offset int64) (int64, error) {
	if offset >= l.next.Load() {
		return l.next.Load(), nil
	}
	// Background fsyncs of rolled segments move the recovery point: let
	// them finish before the segments change under them.
	l.syncWG.Wait()
	l.lastRoll = nil
	segs := l.segments()
	keep := len(segs)
	for keep > 1 && segs[keep-1].BaseOffset() >= offset {
		keep--
	}
	cut := segs[keep-1]
	// New reads stop at the cut at once.
	cutBase := cut.NextOffset()
	if _, h, err := cut.Locate(offset); err == nil {
		cutBase = h.BaseOffset
	}
	l.next.Store(min(l.next.Load(), max(cutBase, cut.BaseOffset())))
	l.listMu.Lock()
	kept := append([]*segment.Segment(nil), segs[:keep]...)
	published := kept // readers hold &published: kept changes below
	l.segs.Store(&published)
	l.listMu.Unlock()
	var err error
	for i := len(segs) - 1; i >= keep; i-- {
		err = errors.Join(err, segs[i].Delete())
	}
	if err != nil {
		return l.next.Load(), fmt.Errorf("engine: truncate %s: %w", filepath.Base(l.dir), err)
	}
	cutEnd := cut.NextOffset()
	repl, err := cut.TruncateTo(offset)
	if errors.Is(err, segment.ErrRetired) {
		// The files were cut but the segment could not be reopened: do it
		// here from what is on disk.
		cut.Close()
		repl, err = segment.Open(l.dir, cut.BaseOffset(), l.segConfig(), true)
	}
	if err != nil {
		return l.next.Load(), fmt.Errorf("engine: truncate %s: %w", filepath.Base(l.dir), err)
	}
	active := repl
	if repl == cut && repl.NextOffset() == cutEnd && keep < len(segs) {
		// Nothing was cut from a sealed segment (offset was exactly where
		// the deleted ones began): start a new active segment after it.
		if active, err = segment.Create(l.dir, cut.NextOffset(), l.segConfig()); err != nil {
			return l.next.Load(), fmt.Errorf("engine: truncate %s: %w", filepath.Base(l.dir), err)
		}
		l.dirDirty.Store(true)
		kept = append(kept[:len(kept):len(kept)], active)
	} else {
		// A new array: readers (an fsync, a fetch) may hold the one
		// published above.
		kept = append(kept[:len(kept)-1:len(kept)-1], repl)
	}
	l.listMu.Lock()
	l.segs.Store(&kept)
	l.listMu.Unlock()
	if repl != cut {
		cut.Close() // retired: readers keep it until they release it
	}
	l.next.Store(active.NextOffset())
	// Everything from the cut segment on may hold bytes not yet fsynced.
	l.recoveryMu.Lock()
	if rp := repl.BaseOffset(); rp < l.recovery.Load() {
		err = l.writeRecoveryPointLocked(rp)
	}
	l.recoveryMu.Unlock()
	return l.next.Load(), errors.Join(err, l.syncDirs())
}

// TruncateFullyAndStartAt starts the log over at offset; see Log. The
// commit point is the durable write of the log start offset past the old
// end: before it the directory holds the old log untouched, after it
// recovery (load) drops every segment below that start and creates the new
// one, should a crash interrupt what follows. Then the new active segment
// is created, the list swapped and the old segments deleted (renamed to
// .deleted and removed once the last reader releases them).
func (l *diskLog) TruncateFullyAndStartAt(offset int64) error {
	if end := l.next.Load(); offset <= end {
		return fmt.Errorf("%w: start over at %d, log end %d", ErrOffsetOutOfRange, offset, end)
	}
	// Background fsyncs of rolled segments move the recovery point: let
	// them finish before the segments go.
	l.syncWG.Wait()
	l.lastRoll = nil
	name := filepath.Base(l.dir)
	l.startMu.Lock()
	defer l.startMu.Unlock()
	// The commit: published (l.start) only once the new segment is in
	// place, so that readers never see a start past the end.
	if err := fsutil.WriteFileAtomic(filepath.Join(l.dir, logStartFile), []byte(strconv.FormatInt(offset, 10)+"\n"), true); err != nil {
		return fmt.Errorf("engine: start %s over at %d: %w", name, offset, err)
	}
	s, err := segment.Create(l.dir, offset, l.segConfig())
	if err != nil {
		return fmt.Errorf("engine: start %s over at %d: %w", name, offset, err)
	}
	l.dirDirty.Store(true)
	l.listMu.Lock()
	old := l.segments()
	segs := []*segment.Segment{s}
	l.next.Store(offset)
	l.start.Store(offset)
	l.segs.Store(&segs)
	l.listMu.Unlock()
	for _, o := range old {
		err = errors.Join(err, o.Delete())
	}
	err = errors.Join(err, l.syncDirs())
	l.recoveryMu.Lock()
	if err == nil {
		// The new segment and the removals are durable.
		err = l.writeRecoveryPointLocked(offset)
	}
	l.recoveryMu.Unlock()
	if err != nil {
		return fmt.Errorf("engine: start %s over at %d: %w", name, offset, err)
	}
	return nil
}
