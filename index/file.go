package index

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync/atomic"

	"github.com/edsrzf/mmap-go"
)

// hotBytes is the size of the recent end of an index that lookups search
// first, as Kafka's "warm section" does: appends and tail reads touch only
// these pages, so they stay resident while the rest may be paged out.
const hotBytes = 8192

// initialBytes is the size a new writable index file is given; it grows by
// doubling up to its limit.
const initialBytes = 64 << 10

// maxEntries bounds the entry count: relative offsets are uint32 and strictly
// increasing, so no valid index holds more.
const maxEntries int64 = math.MaxUint32 + 1

// fixedFile is a memory-mapped file of fixed-size entries: the plumbing that
// OffsetIndex and TimeIndex share. It knows entry sizes and ordering, not
// what the fields mean.
//
// The file descriptor is closed as soon as the file is mapped (a mapping
// does not need it) and reopened by path only to resize the file, so an
// open index costs one mapping and no descriptor: an engine with tens of
// thousands of partitions stays below the process's descriptor limit.
type fixedFile struct {
	path string
	// m maps the whole file; nil when the file is empty or closed.
	// Invariant: len(m) equals the file's size and is a multiple of size.
	// Invariant: when writable, m[n*size:] is all zero, so a crash leaves a
	// file whose live entries can be told from the rest.
	m mmap.MMap
	// n is the number of live entries. Append stores it after writing the
	// entry's bytes; readers load it before reading them.
	// Invariant: n*size <= len(m).
	n        atomic.Int64
	size     int  // entry size in bytes
	hot      int  // entries in the hot section: hotBytes/size
	writable bool // opened with maxBytes > 0
	// limit is the most bytes a writable file may grow to (maxBytes rounded
	// down to the entry size). The file starts at initialBytes and doubles
	// when full: the first write into a large sparse mapping costs
	// milliseconds on ext4, a small one microseconds.
	limit  int
	sealed bool // Trim succeeded: Append reports ErrFull
	closed bool
}

// mapped is the size of the file's mapping (0 when empty or closed).
func (f *fixedFile) mapped() int { return len(f.m) }

// open opens or creates the file at path. ordered reports whether entry cur
// may follow entry prev. See OpenOffset for maxBytes.
func (x *fixedFile) open(path string, size, maxBytes int, ordered func(prev, cur []byte) bool) error {
	x.size = size
	x.hot = hotBytes / size
	x.writable = maxBytes > 0
	x.path = path
	var f *os.File
	var err error
	if x.writable {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	err = x.load(f, maxBytes, ordered)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("index: %w", cerr)
	}
	if err != nil {
		_ = unmap(x.m)
		x.m, x.closed = nil, true
		return err
	}
	return nil
}

// load maps the open file, counts its live entries and, when writable,
// preallocates it.
func (x *fixedFile) load(f *os.File, maxBytes int, ordered func(prev, cur []byte) bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	name, fsize := f.Name(), fi.Size()
	if fsize%int64(x.size) != 0 {
		return fmt.Errorf("%w: %s: size %d is not a multiple of %d", ErrCorrupt, name, fsize, x.size)
	}
	if fsize/int64(x.size) > maxEntries || fsize > math.MaxInt {
		return fmt.Errorf("%w: %s: size %d is too large", ErrCorrupt, name, fsize)
	}
	if x.m, err = mapFile(f, int(fsize), x.writable); err != nil {
		return err
	}
	live, bad := countLive(x.m, x.size, ordered)
	if bad >= 0 {
		return fmt.Errorf("%w: %s: entry %d is out of order", ErrCorrupt, name, bad)
	}
	if x.writable {
		limit := int64(maxBytes - maxBytes%x.size)
		limit = min(limit, maxEntries*int64(x.size))
		limit = max(limit, int64(live*x.size))
		if limit > math.MaxInt {
			return fmt.Errorf("index: %s: size %d is too large", name, limit)
		}
		x.limit = int(limit)
		want := min(limit, max(int64(live*x.size), initialBytes-initialBytes%int64(x.size)))
		if int(want) != len(x.m) {
			if err := x.resizeFile(f, int(want)); err != nil {
				return err
			}
		}
	}
	x.n.Store(int64(live))
	return nil
}

// countLive returns the number of live entries in b: the longest prefix of
// ordered entries, less an all-zero first entry with more entries after it.
// If anything but zeros follows the live entries, bad is the index of the
// first such entry; otherwise bad is -1.
func countLive(b []byte, size int, ordered func(prev, cur []byte) bool) (live, bad int) {
	n := len(b) / size
	if n == 0 {
		return 0, -1
	}
	live = 1
	for live < n && ordered(b[(live-1)*size:live*size], b[live*size:(live+1)*size]) {
		live++
	}
	if live == 1 && n > 1 && isZero(b[:size]) {
		live = 0
	}
	rest := b[live*size:]
	if !isZero(rest) {
		i := 0
		for rest[i] == 0 {
			i++
		}
		return live, live + i/size
	}
	return live, -1
}

var zeros [4096]byte

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// mapFile maps the first size bytes of f, or returns nil if size is zero:
// mmap cannot map an empty region.
func mapFile(f *os.File, size int, writable bool) (mmap.MMap, error) {
	if size == 0 {
		return nil, nil
	}
	prot := mmap.RDONLY
	if writable {
		prot = mmap.RDWR
	}
	m, err := mmap.MapRegion(f, size, prot, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("index: mmap %s: %w", f.Name(), err)
	}
	return m, nil
}

func unmap(m mmap.MMap) error {
	if m == nil {
		return nil
	}
	if err := m.Unmap(); err != nil {
		return fmt.Errorf("index: munmap: %w", err)
	}
	return nil
}

// resize sets the file's size to size bytes and maps it anew, opening the
// file by path for the purpose.
func (x *fixedFile) resize(size int) error {
	f, err := os.OpenFile(x.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	err = x.resizeFile(f, size)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("index: %w", cerr)
	}
	return err
}

// resizeFile is resize on an open file. On failure the file and mapping are
// left as they were where possible.
func (x *fixedFile) resizeFile(f *os.File, size int) error {
	if size < len(x.m) {
		// Map the smaller view before shrinking the file, so a failure to
		// map leaves everything untouched.
		m, err := mapFile(f, size, x.writable)
		if err != nil {
			return err
		}
		if err := f.Truncate(int64(size)); err != nil {
			_ = unmap(m)
			return fmt.Errorf("index: %w", err)
		}
		old := x.m
		x.m = m
		return unmap(old)
	}
	if err := f.Truncate(int64(size)); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	m, err := mapFile(f, size, x.writable)
	if err != nil {
		_ = f.Truncate(int64(len(x.m)))
		return err
	}
	old := x.m
	x.m = m
	return unmap(old)
}

// len returns the number of live entries. Safe concurrently with append.
func (x *fixedFile) len() int { return int(x.n.Load()) }

// entry returns entry i, which must be live. The slice aliases the mapping:
// it is valid until the next TruncateTo, Reset, Trim or Close.
func (x *fixedFile) entry(i int) []byte {
	return x.m[i*x.size : (i+1)*x.size : (i+1)*x.size]
}

// floor returns the greatest i < n for which le(entry(i)) holds, or -1 if
// there is none; le must hold for a prefix of the entries and for no entry
// after it. It searches the hot section first, then the rest.
func (x *fixedFile) floor(n int, le func(e []byte) bool) int {
	if n == 0 {
		return -1
	}
	// Invariant: le(entry(lo)), and !le(entry(hi)) unless hi == n.
	lo, hi := 0, n
	if h := n - x.hot; h > 0 && le(x.entry(h)) {
		lo = h
	} else {
		if !le(x.entry(0)) {
			return -1
		}
		if h > 0 {
			hi = h
		}
	}
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if le(x.entry(mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// search returns the smallest i < n for which ge(entry(i)) holds, or n; ge
// must be false for a prefix of the entries and true after it.
func (x *fixedFile) search(n int, ge func(e []byte) bool) int {
	return sort.Search(n, func(i int) bool { return ge(x.entry(i)) })
}

// writer reports why the index cannot be written, if it cannot.
func (x *fixedFile) writer() error {
	switch {
	case x.closed:
		return ErrClosed
	case !x.writable:
		return ErrReadOnly
	}
	return nil
}

// slot returns the free entry after the live ones, for the writer to fill
// before calling publish.
func (x *fixedFile) slot() ([]byte, error) {
	if err := x.writer(); err != nil {
		return nil, err
	}
	end := (x.len() + 1) * x.size
	if x.sealed || end > x.limit {
		return nil, ErrFull
	}
	if end > len(x.m) {
		grow := min(x.limit, max(2*len(x.m), initialBytes))
		if err := x.resize(grow - grow%x.size); err != nil {
			return nil, err
		}
	}
	return x.m[end-x.size : end : end], nil
}

// publish makes the entry filled through slot live.
func (x *fixedFile) publish() { x.n.Add(1) }

// full reports whether slot would fail.
func (x *fixedFile) full() bool {
	return x.writer() != nil || x.sealed || (x.len()+1)*x.size > x.limit
}

// truncate drops all entries from index keep on and zeroes their bytes.
func (x *fixedFile) truncate(keep int) error {
	if err := x.writer(); err != nil {
		return err
	}
	n := x.len()
	if keep >= n {
		return nil
	}
	x.n.Store(int64(keep))
	clear(x.m[keep*x.size : n*x.size])
	return nil
}

// sync flushes the mapping to disk.
func (x *fixedFile) sync() error {
	if x.closed {
		return ErrClosed
	}
	if !x.writable {
		return nil
	}
	if x.m == nil {
		return nil // no entries can be stored: nothing to flush
	}
	if err := x.m.Flush(); err != nil {
		return fmt.Errorf("index: msync %s: %w", x.path, err)
	}
	return nil
}

// trim shrinks the file to its live entries and seals it.
func (x *fixedFile) trim() error {
	if x.closed {
		return ErrClosed
	}
	if !x.writable {
		return nil
	}
	if size := x.len() * x.size; size != len(x.m) {
		if err := x.resize(size); err != nil {
			return err
		}
	}
	x.sealed = true
	return nil
}

// close trims a writable file, unmaps and closes it. Idempotent.
func (x *fixedFile) close() error {
	if x.closed {
		return nil
	}
	var err error
	if x.writable {
		err = x.trim()
	}
	x.closed = true
	x.n.Store(0)
	err = errors.Join(err, unmap(x.m))
	x.m = nil
	return err
}
