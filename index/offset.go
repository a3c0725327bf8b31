package index

import (
	"encoding/binary"
	"fmt"
	"math"
)

// OffsetEntry is one offset index entry: the batch holding Offset (or the
// last such batch before it) starts at Position in the segment's .log file.
type OffsetEntry struct {
	Offset   int64  // absolute offset
	Position uint32 // byte position in the .log file
}

// OffsetIndex is the sparse offset index of one segment, memory-mapped. See
// the package doc for its format and for which methods may run concurrently.
type OffsetIndex struct {
	base int64
	f    fixedFile
}

// OpenOffset opens or creates the offset index at path for a segment whose
// base offset is base.
//
// If maxBytes > 0 the index is writable (the active segment's): the file is
// created if missing and preallocated to maxBytes rounded down to a multiple
// of OffsetEntrySize, or kept larger if its live entries need more, in which
// case the index is full at once. If maxBytes <= 0 the index is opened
// read-only at its current size (a sealed segment's), and a missing file is
// an error wrapping fs.ErrNotExist.
//
// The live entries are counted as the package doc describes; a file that
// does not hold a valid index fails with an error wrapping ErrCorrupt.
func OpenOffset(path string, base int64, maxBytes int) (*OffsetIndex, error) {
	if base < 0 {
		return nil, fmt.Errorf("%w: negative base offset %d", ErrInvalid, base)
	}
	x := &OffsetIndex{base: base}
	if err := x.f.open(path, OffsetEntrySize, maxBytes, offsetOrdered); err != nil {
		return nil, err
	}
	return x, nil
}

// offsetOrdered reports whether offset index entry cur may follow prev.
func offsetOrdered(prev, cur []byte) bool {
	return binary.BigEndian.Uint32(cur) > binary.BigEndian.Uint32(prev) &&
		binary.BigEndian.Uint32(cur[4:]) > binary.BigEndian.Uint32(prev[4:])
}

// relative returns offset relative to base, or ok false if the index cannot
// hold it.
func relative(base, offset int64) (rel uint32, ok bool) {
	if offset < base || offset-base > math.MaxUint32 {
		return 0, false
	}
	return uint32(offset - base), true
}

// clampRelative returns offset relative to base, clamped to [0, MaxUint32].
func clampRelative(base, offset int64) uint32 {
	switch {
	case offset <= base:
		return 0
	case offset-base > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(offset - base)
}

// Base returns the segment's base offset.
func (x *OffsetIndex) Base() int64 { return x.base }

// Append adds an entry saying the batch holding offset starts at position in
// the .log file. Both must be strictly greater than the last entry's, and
// offset must lie within [base, base+2^32-1]; otherwise Append returns an
// error wrapping ErrOutOfOrder. It returns ErrFull when the file has no room
// (or was trimmed), ErrReadOnly or ErrClosed. Append does not allocate.
func (x *OffsetIndex) Append(offset int64, position uint32) error {
	if err := x.f.writer(); err != nil {
		return err
	}
	rel, ok := relative(x.base, offset)
	if !ok {
		return fmt.Errorf("%w: offset %d outside [%d, %d]", ErrOutOfOrder, offset, x.base, x.base+math.MaxUint32)
	}
	if n := x.f.len(); n > 0 {
		last := x.f.entry(n - 1)
		lastRel, lastPos := binary.BigEndian.Uint32(last), binary.BigEndian.Uint32(last[4:])
		if rel <= lastRel || position <= lastPos {
			return fmt.Errorf("%w: offset %d at position %d after offset %d at position %d",
				ErrOutOfOrder, offset, position, x.base+int64(lastRel), lastPos)
		}
	}
	e, err := x.f.slot()
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(e, rel)
	binary.BigEndian.PutUint32(e[4:], position)
	x.f.publish()
	return nil
}

// Lookup returns the entry with the greatest Offset <= offset, or false if
// there is none. It searches the most recent 8 KiB of entries first. Does not
// allocate.
func (x *OffsetIndex) Lookup(offset int64) (OffsetEntry, bool) {
	if offset < x.base {
		return OffsetEntry{}, false
	}
	rel := clampRelative(x.base, offset)
	i := x.f.floor(x.f.len(), func(e []byte) bool { return binary.BigEndian.Uint32(e) <= rel })
	if i < 0 {
		return OffsetEntry{}, false
	}
	return x.at(i), true
}

func (x *OffsetIndex) at(i int) OffsetEntry {
	e := x.f.entry(i)
	return OffsetEntry{
		Offset:   x.base + int64(binary.BigEndian.Uint32(e)),
		Position: binary.BigEndian.Uint32(e[4:]),
	}
}

// TruncateTo drops the entries with Offset >= offset. It must not run
// concurrently with any other method.
func (x *OffsetIndex) TruncateTo(offset int64) error {
	return truncateFrom(&x.f, x.base, offset, 0)
}

// truncateFrom drops the entries of f whose absolute offset is offset or
// more; each entry holds its relative offset as a uint32 at byte at.
func truncateFrom(f *fixedFile, base, offset int64, at int) error {
	if err := f.writer(); err != nil {
		return err
	}
	keep := 0
	if offset > base {
		if offset-base > math.MaxUint32 {
			return nil
		}
		rel := uint32(offset - base)
		keep = f.search(f.len(), func(e []byte) bool { return binary.BigEndian.Uint32(e[at:]) >= rel })
	}
	return f.truncate(keep)
}

// Reset drops all entries. It must not run concurrently with any other
// method.
func (x *OffsetIndex) Reset() error { return x.f.truncate(0) }

// Len returns the number of entries. Safe concurrently with Append.
func (x *OffsetIndex) Len() int { return x.f.len() }

// MappedBytes is the size of the index's memory mapping: its file's size,
// including the preallocated room of a writable index (0 once closed).
func (x *OffsetIndex) MappedBytes() int { return x.f.mapped() }

// Full reports whether Append cannot add an entry: the file has no room, was
// trimmed, is read-only or closed.
func (x *OffsetIndex) Full() bool { return x.f.full() }

// Last returns the most recent entry, or false if the index is empty.
func (x *OffsetIndex) Last() (OffsetEntry, bool) {
	n := x.f.len()
	if n == 0 {
		return OffsetEntry{}, false
	}
	return x.at(n - 1), true
}

// Sync flushes appended entries to disk (msync). A no-op when read-only.
func (x *OffsetIndex) Sync() error { return x.f.sync() }

// Trim shrinks a writable file to its live entries, as on segment roll. The
// index stays readable; later Appends return ErrFull. A no-op when
// read-only. It must not run concurrently with any other method.
func (x *OffsetIndex) Trim() error { return x.f.trim() }

// Close trims a writable index, unmaps and closes the file. It does not
// sync. Calling it again returns nil. It must not run concurrently with any
// other method; afterwards Lookup and Last report no entry.
func (x *OffsetIndex) Close() error { return x.f.close() }
