package index

import (
	"os"
	"path/filepath"
	"testing"
)

// pair is an index entry in a form shared by both index types: for the
// offset index a is the offset and b the position; for the time index a is
// the timestamp and b the offset. Lookup searches by a.
type pair struct{ a, b int64 }

// idx adapts both index types to one shape for table, model and fuzz tests.
type idx interface {
	add(p pair) error
	find(a int64) (pair, bool)
	last() (pair, bool)
	at(i int) pair
	offsetOf(p pair) int64
	TruncateTo(offset int64) error
	Reset() error
	Len() int
	Full() bool
	Sync() error
	Trim() error
	Close() error
}

type offsetIdx struct{ *OffsetIndex }

func (x offsetIdx) add(p pair) error { return x.Append(p.a, uint32(p.b)) }
func (x offsetIdx) find(a int64) (pair, bool) {
	e, ok := x.Lookup(a)
	return pair{e.Offset, int64(e.Position)}, ok
}
func (x offsetIdx) last() (pair, bool) {
	e, ok := x.Last()
	return pair{e.Offset, int64(e.Position)}, ok
}
func (x offsetIdx) at(i int) pair {
	e := x.OffsetIndex.at(i)
	return pair{e.Offset, int64(e.Position)}
}
func (offsetIdx) offsetOf(p pair) int64 { return p.a }

type timeIdx struct{ *TimeIndex }

func (x timeIdx) add(p pair) error { return x.Append(p.a, p.b) }
func (x timeIdx) find(a int64) (pair, bool) {
	e, ok := x.Lookup(a)
	return pair{e.Timestamp, e.Offset}, ok
}
func (x timeIdx) last() (pair, bool) {
	e, ok := x.Last()
	return pair{e.Timestamp, e.Offset}, ok
}
func (x timeIdx) at(i int) pair {
	e := x.TimeIndex.at(i)
	return pair{e.Timestamp, e.Offset}
}
func (timeIdx) offsetOf(p pair) int64 { return p.b }

// kind names an index type and opens it as an idx.
type kind struct {
	name string
	size int
	open func(path string, base int64, maxBytes int) (idx, error)
	// entry returns the i'th entry of a valid, strictly increasing sequence
	// that starts at the base offset.
	entry func(base int64, i int) pair
}

var kinds = []kind{
	{
		name: "offset",
		size: OffsetEntrySize,
		open: func(path string, base int64, maxBytes int) (idx, error) {
			x, err := OpenOffset(path, base, maxBytes)
			if err != nil {
				return nil, err
			}
			return offsetIdx{x}, nil
		},
		entry: func(base int64, i int) pair { return pair{base + 5 + 10*int64(i), 100 + 4096*int64(i)} },
	},
	{
		name: "time",
		size: TimeEntrySize,
		open: func(path string, base int64, maxBytes int) (idx, error) {
			x, err := OpenTime(path, base, maxBytes)
			if err != nil {
				return nil, err
			}
			return timeIdx{x}, nil
		},
		entry: func(base int64, i int) pair { return pair{1_700_000_000_000 + 7*int64(i), base + 5 + 10*int64(i)} },
	},
}

// floorScan is the model of Lookup: the last entry whose a is <= target.
func floorScan(entries []pair, target int64) (pair, bool) {
	var found pair
	ok := false
	for _, e := range entries {
		if e.a <= target {
			found, ok = e, true
		}
	}
	return found, ok
}

// entriesOf returns the live entries of x.
func entriesOf(x idx) []pair {
	out := make([]pair, x.Len())
	for i := range out {
		out[i] = x.at(i)
	}
	return out
}

// fill opens a writable index of k at a fresh path and appends n entries.
func fill(t testing.TB, k kind, base int64, n, maxBytes int) (idx, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "00000000000000001000."+k.name)
	x, err := k.open(path, base, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := x.add(k.entry(base, i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	return x, path
}

// crashCopy copies the file at path as it is now, as a crash would leave it.
func crashCopy(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := path + ".crash"
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// offsetOf returns the absolute offset of entry p of an index of kind k.
func (k kind) offsetOf(p pair) int64 {
	if k.size == OffsetEntrySize {
		return p.a
	}
	return p.b
}
