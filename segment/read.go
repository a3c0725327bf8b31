package segment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	mmap "github.com/edsrzf/mmap-go"

	"github.com/easel-io/easel/record"
)

// Region is a byte range of a segment's log file holding batches, for
// sendfile. The first batch in it is always whole; the last one may be cut
// short by a byte limit (Kafka clients skip such a partial batch).
type Region struct {
	File *os.File // the segment's log; valid while the caller holds a reference (Acquire)
	Pos  int64    // file position of the first batch
	Len  int64    // number of bytes
	// FirstOffset is the base offset of the first batch, which may be below
	// the offset asked for: clients skip records before the one they want.
	FirstOffset int64
}

// Locate returns the file position and header of the first batch holding an
// offset >= offset: the batch holding offset, or the next one if offset
// falls between batches. It returns ErrOutOfRange if offset is at or beyond
// the segment's next offset or below its base offset. TruncateTo(offset)
// keeps exactly the bytes before the position Locate(offset) returns.
func (s *Segment) Locate(offset int64) (int64, record.Header, error) {
	next, size := s.tail()
	return s.locate(offset, next, size)
}

// locate is Locate within a snapshot (next, size) of the segment's end.
func (s *Segment) locate(offset, next, size int64) (int64, record.Header, error) {
	if offset < s.base || offset >= next {
		return 0, record.Header{}, fmt.Errorf("%w: %d not in [%d, %d) of %s", ErrOutOfRange, offset, s.base, next, s.name())
	}
	pos := int64(0)
	s.idx.Lock()
	err := s.openIndexesLocked()
	if err == nil && s.idx.offsets != nil { // nil: detached without indexes, scan from the start
		if e, ok := s.idx.offsets.Lookup(offset); ok {
			pos = int64(e.Position)
		}
	}
	s.idx.Unlock()
	if err != nil {
		return 0, record.Header{}, err
	}
	var buf [record.HeaderSize]byte
	for pos < size {
		h, err := s.readHeader(buf[:], pos, size)
		if err != nil {
			return 0, h, err
		}
		if h.LastOffset() >= offset {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
	return 0, record.Header{}, fmt.Errorf("%w: %d past the end of %s", ErrOutOfRange, offset, s.name())
}

// Read returns the region of batches starting with the batch that holds
// offset, at most maxBytes long unless the first batch alone is longer (it is
// always returned whole). The caller must hold a reference (Acquire) for as
// long as it uses the region's File.
func (s *Segment) Read(offset int64, maxBytes int) (Region, error) {
	return s.ReadTo(offset, maxBytes, math.MaxInt64)
}

// ReadTo is Read that stops before the batch holding offset end: a fetch
// bounded by a high watermark loaded earlier never returns records at or
// past it, even while appends go on.
func (s *Segment) ReadTo(offset int64, maxBytes int, end int64) (Region, error) {
	if s.refs.Load() <= 0 {
		return Region{}, ErrClosed
	}
	next, size := s.tail()
	if end < next {
		if offset >= end {
			return Region{}, fmt.Errorf("%w: %d at or past the end %d of %s", ErrOutOfRange, offset, end, s.name())
		}
		endPos, _, err := s.locate(end, next, size)
		if err != nil {
			return Region{}, err
		}
		size = endPos
	}
	pos, h, err := s.locate(offset, next, size)
	if err != nil {
		return Region{}, err
	}
	n := size - pos
	if int64(maxBytes) < n {
		n = int64(maxBytes)
	}
	if first := int64(h.Size()); n < first {
		n = first
	}
	return Region{File: s.log, Pos: pos, Len: n, FirstOffset: h.BaseOffset}, nil
}

// View returns the whole batches starting with the one that holds offset, up
// to maxBytes (the first batch is always whole), as a slice of the
// memory-mapped log: no copy is made. The slice is read-only (writing to it
// faults) and valid only while the caller holds a reference taken with
// Acquire before the call; after Release it may be unmapped at any time.
// Until then its bytes never change, even across Delete or TruncateTo.
// Reading it may block on page faults; read very large spans with Read and
// pread instead.
func (s *Segment) View(offset int64, maxBytes int) ([]byte, error) {
	return s.ViewTo(offset, maxBytes, math.MaxInt64)
}

// ViewTo is View that never returns a batch holding offset end or beyond,
// as ReadTo does for regions: a fetch bounded by a high watermark loaded
// earlier returns no record at or past it, even while appends go on. It
// returns ErrOutOfRange if offset >= end.
func (s *Segment) ViewTo(offset int64, maxBytes int, end int64) ([]byte, error) {
	if s.refs.Load() <= 0 {
		return nil, ErrClosed
	}
	next, size := s.tail()
	if end < next {
		if offset >= end {
			return nil, fmt.Errorf("%w: %d at or past the end %d of %s", ErrOutOfRange, offset, end, s.name())
		}
		endPos, _, err := s.locate(end, next, size)
		if err != nil {
			return nil, err
		}
		size = endPos
	}
	pos, h, err := s.locate(offset, next, size)
	if err != nil {
		return nil, err
	}
	m, err := s.mapping(size)
	if err != nil {
		return nil, err
	}
	stop := pos + int64(h.Size())
	for stop < size {
		b, err := record.ParseHeader(m[stop:size])
		if err != nil || stop+int64(b.Size()) > size {
			return nil, fmt.Errorf("%w: %s at position %d", ErrCorrupt, s.name(), stop)
		}
		if stop+int64(b.Size())-pos > int64(maxBytes) {
			break
		}
		stop += int64(b.Size())
	}
	return m[pos:stop:stop], nil
}

// mapping returns the read-only mapping of the log, covering at least size
// bytes.
func (s *Segment) mapping(size int64) (mmap.MMap, error) {
	s.idx.Lock()
	capacity := int64(0) // a sealed segment is mapped at exactly its size
	if s.idx.writable {
		capacity = s.cfg.MaxBytes
	}
	s.idx.Unlock()
	m, err := s.views.get(s.log, size, capacity)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", s.name(), err)
	}
	return m, nil
}

// RecordsIn counts the records of the whole batches in the region [pos,
// pos+n) of the log (a Region ReadTo returned; a batch cut by its end is
// not counted), reading only their headers, through the read-only mapping.
func (s *Segment) RecordsIn(pos, n int64) (int64, error) {
	if s.refs.Load() <= 0 {
		return 0, ErrClosed
	}
	_, size := s.tail()
	end := min(pos+n, size)
	if pos < 0 || pos >= end {
		return 0, nil
	}
	m, err := s.mapping(size)
	if err != nil {
		return 0, err
	}
	return record.CountRecords(m[pos:end]), nil
}

// OffsetForTimestamp returns the base offset of the first batch whose
// maxTimestamp is >= ts, as Kafka's ListOffsets does, or ErrOutOfRange if no
// batch in the segment has one.
func (s *Segment) OffsetForTimestamp(ts int64) (int64, error) {
	start := s.base
	s.idx.Lock()
	err := s.openIndexesLocked()
	if err == nil && s.idx.times != nil { // nil: detached without indexes, scan from the start
		if e, ok := s.idx.times.Lookup(ts); ok {
			start = e.Offset
		}
	}
	s.idx.Unlock()
	if err != nil {
		return 0, err
	}
	if start >= s.next.Load() {
		return 0, ErrOutOfRange
	}
	pos, _, err := s.Locate(start)
	if err != nil {
		return 0, err
	}
	size := s.size.Load()
	var buf [record.HeaderSize]byte
	for pos < size {
		h, err := s.readHeader(buf[:], pos, size)
		if err != nil {
			return 0, err
		}
		if h.MaxTimestamp >= ts {
			return h.BaseOffset, nil
		}
		pos += int64(h.Size())
	}
	return 0, ErrOutOfRange
}

// LargestTimestamp returns the largest batch maxTimestamp in the segment, or
// -1 if none: the time index's last entry or anything larger found in the
// log's tail when the segment was opened, kept up by appends. retention.ms
// uses it. Safe for concurrent use; it maps no index and cannot fail (the
// error is for Store implementations that must read to know).
func (s *Segment) LargestTimestamp() (int64, error) { return s.maxTimestamp.Load(), nil }

// OpenIndexes reports how many of this segment's index files are mapped
// right now (0 or 2), for accounting.
func (s *Segment) OpenIndexes() int {
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.offsets == nil {
		return 0
	}
	return 2
}

// MappedIndexBytes is the size of the segment's index mappings (0 while
// its indexes are not open).
func (s *Segment) MappedIndexBytes() int64 {
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.offsets == nil {
		return 0
	}
	return int64(s.idx.offsets.MappedBytes() + s.idx.times.MappedBytes())
}

// viewState holds the read-only mappings of a log file.
type viewState struct {
	mu      sync.Mutex
	cur     mmap.MMap   // the current mapping, covering at least the log's size
	retired []mmap.MMap // smaller earlier mappings, still possibly in use by readers
}

// get returns a mapping covering at least size bytes of f, mapping
// max(capacity, size) bytes so that the active segment is mapped once.
func (v *viewState) get(f *os.File, size, capacity int64) (mmap.MMap, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if int64(len(v.cur)) >= size && v.cur != nil {
		return v.cur, nil
	}
	n := capacity
	if size > n {
		n = size
	}
	if n <= 0 {
		return nil, errors.New("segment: nothing to map")
	}
	m, err := mmap.MapRegion(f, int(n), mmap.RDONLY, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if v.cur != nil {
		v.retired = append(v.retired, v.cur)
	}
	v.cur = m
	return m, nil
}

func (v *viewState) unmap() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	var err error
	for _, m := range append(v.retired, v.cur) {
		if m != nil {
			err = errors.Join(err, m.Unmap())
		}
	}
	v.cur, v.retired = nil, nil
	return err
}
