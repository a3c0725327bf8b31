package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/easel-io/easel/record"
)

// MemoryStore keeps partition logs in memory: nothing survives Close. It
// serves tests and ephemeral topics. Segments are emulated by SegmentBytes
// so that retention behaves as on disk.
type MemoryStore struct {
	mu   sync.Mutex
	logs map[string]*memLog
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{logs: make(map[string]*memLog)} }

// OpenLog returns the named log, creating it if needed. Logs persist in the
// store across Close/OpenLog while the store lives.
func (m *MemoryStore) OpenLog(name string, cfg LogConfig, _ bool) (Log, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logs[name]
	if l == nil {
		l = &memLog{cfg: cfg, state: make(map[string][]byte)}
		l.segs = []memSegment{{maxTS: -1}}
		m.logs[name] = l
	}
	return l, nil
}

// RemoveLog forgets a log.
func (m *MemoryStore) RemoveLog(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.logs, name)
	return nil
}

// SetAsideLog forgets a log as RemoveLog does: nothing is kept after the
// store goes anyway.
func (m *MemoryStore) SetAsideLog(name, _ string) error { return m.RemoveLog(name) }

// Logs lists the logs held.
func (m *MemoryStore) Logs() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.logs))
	for n := range m.logs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

type memSegment struct {
	base    int64
	batches [][]byte
	offs    []int64 // base offset of each batch
	size    int64
	maxTS   int64
}

type memLog struct {
	cfg   LogConfig
	mu    sync.RWMutex
	segs  []memSegment // never empty
	next  int64
	start int64 // log start offset; >= segs[0].base
	state map[string][]byte
}

// SetConfig implements Log.
func (l *memLog) SetConfig(cfg LogConfig) {
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
}

func (l *memLog) Append(batch []byte, h record.Header) (bool, error) {
	b := append([]byte(nil), batch...)
	l.mu.Lock()
	defer l.mu.Unlock()
	rolled := false
	a := &l.segs[len(l.segs)-1]
	if a.size > 0 && a.size+int64(len(b)) > l.cfg.SegmentBytes {
		l.segs = append(l.segs, memSegment{base: l.next, maxTS: -1})
		a = &l.segs[len(l.segs)-1]
		rolled = true
	}
	a.batches = append(a.batches, b)
	a.offs = append(a.offs, h.BaseOffset)
	a.size += int64(len(b))
	if h.MaxTimestamp > a.maxTS {
		a.maxTS = h.MaxTimestamp
	}
	l.next = h.LastOffset() + 1
	return rolled, nil
}

// locate finds the segment and batch index holding offset. Caller holds mu.
// The partition enforces the log start; batches below it that are still
// held may be read (producer state is rebuilt from them).
func (l *memLog) locate(offset, end int64) (int, int, error) {
	if offset < l.segs[0].base || offset >= end {
		return 0, 0, fmt.Errorf("%w: %d not in [%d, %d)", ErrOffsetOutOfRange, offset, l.segs[0].base, end)
	}
	si := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	s := &l.segs[si]
	bi := sort.Search(len(s.offs), func(i int) bool { return s.offs[i] > offset }) - 1
	if bi < 0 {
		bi = 0
	}
	// offset in a hole (compaction): go on to the first batch after it.
	for bi < len(s.batches) && lastOffset(s.batches[bi]) < offset {
		bi++
	}
	for bi == len(l.segs[si].batches) && si+1 < len(l.segs) {
		si, bi = si+1, 0
	}
	if bi == len(l.segs[si].batches) {
		return 0, 0, fmt.Errorf("%w: %d not in [%d, %d)", ErrOffsetOutOfRange, offset, l.segs[0].base, end)
	}
	return si, bi, nil
}

// RewriteSegments replaces segments; see SegmentRewriter. Readers got
// copies, so nothing needs keeping alive.
func (l *memLog) RewriteSegments(from, to int64, write func(add func([]byte) error) error) error {
	ns := memSegment{base: from, maxTS: -1}
	prev := from
	add := func(b []byte) error {
		h, err := record.ValidateStored(b)
		if err != nil {
			return err
		}
		if h.BaseOffset < prev || h.LastOffset() >= to {
			return fmt.Errorf("%w: rewritten batch [%d, %d] after %d, segments end at %d", ErrNotContiguous, h.BaseOffset, h.LastOffset(), prev, to)
		}
		ns.batches = append(ns.batches, append([]byte(nil), b...))
		ns.offs = append(ns.offs, h.BaseOffset)
		ns.size += int64(len(b))
		ns.maxTS = max(ns.maxTS, h.MaxTimestamp)
		prev = h.LastOffset() + 1
		return nil
	}
	if _, _, err := l.segmentRange(from, to); err != nil {
		return err
	}
	if err := write(add); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i, j, err := l.segmentRangeLocked(from, to)
	if err != nil {
		return err
	}
	l.segs = append(append(append([]memSegment(nil), l.segs[:i]...), ns), l.segs[j:]...)
	return nil
}

func (l *memLog) segmentRange(from, to int64) (int, int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segmentRangeLocked(from, to)
}

// segmentRangeLocked returns the indexes of the segments based at from and
// at to. The caller holds mu.
func (l *memLog) segmentRangeLocked(from, to int64) (int, int, error) {
	i, j := -1, -1
	for k, s := range l.segs {
		if s.base == from {
			i = k
		}
		if s.base == to {
			j = k
		}
	}
	if i < 0 || j <= i {
		return 0, 0, fmt.Errorf("engine: rewrite [%d, %d): not segment bounds of the log", from, to)
	}
	return i, j, nil
}

func (l *memLog) Read(offset int64, maxBytes int, end int64) (Chunk, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	end = min(end, l.next)
	si, bi, err := l.locate(offset, end)
	if err != nil {
		return Chunk{}, err
	}
	s := &l.segs[si]
	var out []byte
	for i := bi; i < len(s.batches) && lastOffset(s.batches[i]) < end; i++ {
		if i > bi && len(out)+len(s.batches[i]) > maxBytes {
			break
		}
		out = append(out, s.batches[i]...)
	}
	return Chunk{Bytes: out, FirstOffset: s.offs[bi]}, nil
}

func (l *memLog) View(offset int64, maxBytes int, end int64) (Chunk, error) {
	return l.Read(offset, maxBytes, end)
}

func (l *memLog) OffsetForTimestamp(ts int64) (int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		if s.maxTS < ts {
			continue
		}
		for i, b := range s.batches {
			h, err := record.ParseHeader(b)
			if err == nil && h.MaxTimestamp >= ts {
				return s.offs[i], nil
			}
		}
	}
	return l.next, nil
}

func (l *memLog) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.startLocked()
}

func (l *memLog) startLocked() int64 { return max(l.start, l.segs[0].base) }

func (l *memLog) AdvanceStart(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start = max(l.start, min(off, l.next))
	return nil
}

func (l *memLog) NextOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next
}

func (l *memLog) Sync() error { return nil }

func (l *memLog) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{BaseOffset: s.base, Size: s.size, LargestTimestamp: s.maxTS}
	}
	return out
}

func (l *memLog) DeleteOldest(n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, len(l.segs)-1)
	if n > 0 {
		l.segs = append([]memSegment(nil), l.segs[n:]...)
	}
	return nil
}

func (l *memLog) SaveState(name string, data []byte, _ bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state[name] = append([]byte(nil), data...)
	return nil
}

func (l *memLog) States(suffix string) ([]string, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []string
	for n := range l.state {
		if strings.HasSuffix(n, suffix) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (l *memLog) RemoveState(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.state, name)
	return nil
}

func (l *memLog) LoadState(name string) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.state[name], nil
}

func (l *memLog) Stats() LogStats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := LogStats{Segments: len(l.segs)}
	for _, s := range l.segs {
		st.Bytes += s.size
	}
	return st
}

func (l *memLog) Close() error { return nil }

func (l *memLog) TruncateTo(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset >= l.next {
		return l.next, nil
	}
	for len(l.segs) > 1 && l.segs[len(l.segs)-1].base >= offset {
		l.segs = l.segs[:len(l.segs)-1]
	}
	a := &l.segs[len(l.segs)-1]
	n := sort.Search(len(a.offs), func(i int) bool {
		h, _ := record.ParseHeader(a.batches[i])
		return h.LastOffset() >= offset
	})
	a.batches, a.offs = a.batches[:n:n], a.offs[:n:n]
	a.size, a.maxTS = 0, -1
	for _, b := range a.batches {
		h, _ := record.ParseHeader(b)
		a.size += int64(len(b))
		a.maxTS = max(a.maxTS, h.MaxTimestamp)
	}
	l.next = a.base
	if n > 0 {
		h, _ := record.ParseHeader(a.batches[n-1])
		l.next = h.LastOffset() + 1
	}
	return l.next, nil
}

func (l *memLog) TruncateFullyAndStartAt(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset <= l.next {
		return fmt.Errorf("%w: start over at %d, log end %d", ErrOffsetOutOfRange, offset, l.next)
	}
	// Readers got copies (Read): nothing to keep alive.
	l.segs = []memSegment{{base: offset, maxTS: -1}}
	l.next, l.start = offset, offset
	return nil
}

func lastOffset(batch []byte) int64 {
	h, _ := record.ParseHeader(batch)
	return h.LastOffset()
}
