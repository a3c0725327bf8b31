package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// recoveryFile names the per-partition checkpoint: the base offset of the
// oldest segment that may hold unflushed bytes. Crash recovery scans only
// segments from there on. Format: decimal offset and a newline.
const recoveryFile = "recovery-point"

// DiskStore keeps each partition log as a directory of mmap-indexed segment
// files under one root directory. It is the default Store.
type DiskStore struct {
	dir string
	seg segment.Config
}

var _ Store = (*DiskStore)(nil)

// NewDiskStore returns a store rooted at dir, which must exist. seg holds
// the segment settings not set per topic (index sizes and interval).
func NewDiskStore(dir string, seg segment.Config) *DiskStore {
	return &DiskStore{dir: dir, seg: seg}
}

// Logs lists the partition directories ("<topic>-<partition>").
func (d *DiskStore) Logs() ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, _, err := splitLogName(e.Name()); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveLog deletes a partition directory.
func (d *DiskStore) RemoveLog(name string) error {
	if err := os.RemoveAll(filepath.Join(d.dir, name)); err != nil {
		return fmt.Errorf("engine: remove log %s: %w", name, err)
	}
	return nil
}

// OpenLog opens or creates a partition directory and its segments. After an
// unclean shutdown, segments from the recovery point on are scanned and torn
// tails cut; after a clean one only the last segment's tail is read.
func (d *DiskStore) OpenLog(name string, cfg LogConfig, clean bool) (Log, error) {
	dir := filepath.Join(d.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: open log %s: %w", name, err)
	}
	l := &diskLog{dir: dir, cfg: cfg, seg: d.seg}
	l.seg.MaxBytes = cfg.SegmentBytes
	if err := l.load(clean); err != nil {
		l.closeSegments(l.segments())
		return nil, fmt.Errorf("engine: open log %s: %w", name, err)
	}
	return l, nil
}

type diskLog struct {
	dir string
	cfg LogConfig
	seg segment.Config

	// segs is the current list of segments, oldest first, never empty once
	// loaded. Readers load it without locks; the writer replaces it.
	segs atomic.Pointer[[]*segment.Segment]

	// recovery is the persisted recovery point; see recoveryFile.
	recovery   atomic.Int64
	recoveryMu sync.Mutex // serialises writes of the recovery file
	recovered int
	syncWG    sync.WaitGroup // background fsyncs of rolled segments
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

func (l *diskLog) load(clean bool) error {
	bases, err := segment.List(l.dir)
	if err != nil {
		return err
	}
	rp := l.readRecoveryPoint()
	var segs []*segment.Segment
	for i, base := range bases {
		last := i == len(bases)-1
		var s *segment.Segment
		needScan := !clean && base >= rp
		if !needScan {
			s, err = segment.Open(l.dir, base, l.seg, last)
			if errors.Is(err, segment.ErrCorrupt) {
				needScan = true // a clean marker but a bad tail: trust the bytes, not the marker
			} else if err != nil {
				l.closeSegments(segs)
				return err
			}
		}
		if needScan {
			if s, err = l.recoverSegment(base, last); err != nil {
				l.closeSegments(segs)
				return err
			}
		}
		segs = append(segs, s)
	}
	if len(segs) == 0 {
		s, err := segment.Create(l.dir, 0, l.seg)
		if err != nil {
			return err
		}
		segs = append(segs, s)
	}
	l.segs.Store(&segs)
	l.recovery.Store(rp)
	return nil
}

// recoverSegment opens a segment whose tail may be torn and scans it.
func (l *diskLog) recoverSegment(base int64, last bool) (*segment.Segment, error) {
	s, err := segment.OpenForRecovery(l.dir, base, l.seg, last)
	if err != nil {
		return nil, err
	}
	if _, err := s.Recover(); err != nil {
		s.Close()
		return nil, err
	}
	l.recovered++
	return s, nil
}

func (l *diskLog) readRecoveryPoint() int64 {
	b, err := os.ReadFile(filepath.Join(l.dir, recoveryFile))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 {
		return 0 // unreadable: scan everything
	}
	return v
}

// writeRecoveryPoint persists the recovery point atomically.
func (l *diskLog) writeRecoveryPoint(off int64) error {
	if err := writeFileAtomic(filepath.Join(l.dir, recoveryFile), []byte(strconv.FormatInt(off, 10)+"\n")); err != nil {
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

func (l *diskLog) Append(batch []byte, h record.Header) (bool, error) {
	a := l.active()
	rolled := false
	if !a.Fits(len(batch), h.LastOffset()) || (a.Size() > 0 && time.Since(a.Created()) >= l.cfg.SegmentAge) {
		var err error
		if a, err = l.roll(); err != nil {
			return false, err
		}
		rolled = true
	}
	return rolled, a.Append(batch, h)
}

func (l *diskLog) SaveState(name string, data []byte) error {
	return writeFileAtomic(filepath.Join(l.dir, name), data)
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
// point moves past it.
func (l *diskLog) roll() (*segment.Segment, error) {
	old := l.active()
	next, err := segment.Create(l.dir, old.NextOffset(), l.seg)
	if err != nil {
		return nil, err
	}
	if err := old.Seal(); err != nil {
		next.Delete()
		return nil, err
	}
	segs := append(append([]*segment.Segment(nil), l.segments()...), next)
	l.segs.Store(&segs)
	if old.Acquire() {
		l.syncWG.Add(1)
		go func() {
			defer l.syncWG.Done()
			defer old.Release()
			if old.Sync() == nil {
				l.advanceRecovery(next.BaseOffset())
			}
		}()
	}
	return next, nil
}

// advanceRecovery moves the recovery point forward, never back. A failed
// write leaves the old point, which only makes the next recovery scan more.
func (l *diskLog) advanceRecovery(off int64) {
	l.recoveryMu.Lock()
	defer l.recoveryMu.Unlock()
	if off > l.recovery.Load() {
		_ = l.writeRecoveryPoint(off)
	}
}

// find returns the segment holding offset, or nil.
func findSegment(segs []*segment.Segment, offset int64) *segment.Segment {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].BaseOffset() > offset })
	if i == 0 {
		return nil
	}
	return segs[i-1]
}

func (l *diskLog) acquire(offset int64) (*segment.Segment, error) {
	for range 3 { // a concurrent retention pass may delete the segment under us
		segs := l.segments()
		s := findSegment(segs, offset)
		if s == nil || offset >= l.NextOffset() {
			return nil, l.outOfRange(offset)
		}
		if s.Acquire() {
			return s, nil
		}
	}
	return nil, l.outOfRange(offset)
}

func (l *diskLog) outOfRange(offset int64) error {
	return fmt.Errorf("%w: %d not in [%d, %d)", ErrOffsetOutOfRange, offset, l.StartOffset(), l.NextOffset())
}

func (l *diskLog) Read(offset int64, maxBytes int) (Chunk, error) {
	s, err := l.acquire(offset)
	if err != nil {
		return Chunk{}, err
	}
	r, err := s.Read(offset, maxBytes)
	if err != nil {
		s.Release()
		return Chunk{}, l.segmentErr(err, offset)
	}
	return Chunk{File: r.File, Pos: r.Pos, Len: r.Len, FirstOffset: r.FirstOffset, release: func() { s.Release() }}, nil
}

// View is like Read but returns whole batches as a memory-mapped slice.
func (l *diskLog) View(offset int64, maxBytes int) (Chunk, error) {
	s, err := l.acquire(offset)
	if err != nil {
		return Chunk{}, err
	}
	b, err := s.View(offset, maxBytes)
	if err != nil {
		s.Release()
		return Chunk{}, l.segmentErr(err, offset)
	}
	first := offset
	if h, herr := record.ParseHeader(b); herr == nil {
		first = h.BaseOffset
	}
	return Chunk{Bytes: b, FirstOffset: first, release: func() { s.Release() }}, nil
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

func (l *diskLog) StartOffset() int64 { return l.segments()[0].BaseOffset() }
func (l *diskLog) NextOffset() int64  { return l.active().NextOffset() }

// Sync fsyncs the active segment and any rolled segment that the background
// fsync has not covered yet (those at or past the recovery point).
func (l *diskLog) Sync() error {
	rp := l.recovery.Load()
	for _, s := range l.segments() {
		if s.BaseOffset() < rp {
			continue
		}
		if !s.Acquire() {
			continue
		}
		err := s.Sync()
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
			s.ReleaseIndexes()
			s.Release()
		}
		out = append(out, SegmentInfo{BaseOffset: s.BaseOffset(), Size: s.Size(), LargestTimestamp: ts})
	}
	return out
}

func (l *diskLog) DeleteOldest(n int) error {
	segs := l.segments()
	if n > len(segs)-1 {
		n = len(segs) - 1
	}
	if n <= 0 {
		return nil
	}
	rest := append([]*segment.Segment(nil), segs[n:]...)
	l.segs.Store(&rest)
	var err error
	for _, s := range segs[:n] {
		err = errors.Join(err, s.Delete())
	}
	return err
}

func (l *diskLog) Stats() LogStats {
	segs := l.segments()
	st := LogStats{Segments: len(segs), OpenFiles: len(segs), Recovered: l.recovered}
	for _, s := range segs {
		st.MappedFiles += s.OpenIndexes()
	}
	return st
}

func (l *diskLog) Close() error {
	l.syncWG.Wait()
	a := l.active()
	err := a.Sync()
	if err == nil {
		// Everything is durable: the next unclean open scans nothing before
		// the active segment.
		l.recoveryMu.Lock()
		err = l.writeRecoveryPoint(a.BaseOffset())
		l.recoveryMu.Unlock()
	}
	for _, s := range l.segments() {
		err = errors.Join(err, s.Close())
	}
	return err
}

// splitLogName splits "<topic>-<partition>" at the last dash.
func splitLogName(name string) (string, int32, error) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, fmt.Errorf("engine: bad log name %q", name)
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, fmt.Errorf("engine: bad log name %q", name)
	}
	return name[:i], int32(p), nil
}

// logName is the directory name of a partition.
func logName(topic string, partition int32) string {
	return topic + "-" + strconv.FormatInt(int64(partition), 10)
}

// writeFileAtomic writes data to path through a synced temporary file and a
// rename, then syncs the directory, so a crash leaves the old or the new
// content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("engine: write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
