package index

import (
	"encoding/binary"
	"fmt"
	"math"
)

// TimeEntry is one time index entry: Timestamp is the greatest timestamp of
// the segment's records up to and including Offset. A scan for the first
// record with a timestamp of t or more can skip what lies before the batch
// holding the Offset of Lookup(t).
type TimeEntry struct {
	Timestamp int64 // milliseconds since the Unix epoch
	Offset    int64 // absolute offset
}

// TimeIndex is the sparse time index of one segment, memory-mapped. See the
// package doc for its format and for which methods may run concurrently.
type TimeIndex struct {
	base int64
	f    fixedFile
}

// OpenTime opens or creates the time index at path for a segment whose base
// offset is base. maxBytes is as for OpenOffset, rounded down to a multiple
// of TimeEntrySize.
func OpenTime(path string, base int64, maxBytes int) (*TimeIndex, error) {
	if base < 0 {
		return nil, fmt.Errorf("%w: negative base offset %d", ErrInvalid, base)
	}
	x := &TimeIndex{base: base}
	if err := x.f.open(path, TimeEntrySize, maxBytes, timeOrdered); err != nil {
		return nil, err
	}
	return x, nil
}

// timeOrdered reports whether time index entry cur may follow prev.
func timeOrdered(prev, cur []byte) bool {
	return int64(binary.BigEndian.Uint64(cur)) > int64(binary.BigEndian.Uint64(prev)) &&
		binary.BigEndian.Uint32(cur[8:]) > binary.BigEndian.Uint32(prev[8:])
}

// Base returns the segment's base offset.
func (x *TimeIndex) Base() int64 { return x.base }

// Append adds an entry saying the records up to offset have timestamps up to
// timestamp. Both must be strictly greater than the last entry's, and offset
// must lie within [base, base+2^32-1]; otherwise Append returns an error
// wrapping ErrOutOfOrder. It returns ErrFull when the file has no room (or
// was trimmed), ErrReadOnly or ErrClosed. Append does not allocate.
func (x *TimeIndex) Append(timestamp, offset int64) error {
	if err := x.f.writer(); err != nil {
		return err
	}
	rel, ok := relative(x.base, offset)
	if !ok {
		return fmt.Errorf("%w: offset %d outside [%d, %d]", ErrOutOfOrder, offset, x.base, x.base+math.MaxUint32)
	}
	if n := x.f.len(); n > 0 {
		last := x.f.entry(n - 1)
		lastTS, lastRel := int64(binary.BigEndian.Uint64(last)), binary.BigEndian.Uint32(last[8:])
		if timestamp <= lastTS || rel <= lastRel {
			return fmt.Errorf("%w: timestamp %d at offset %d after timestamp %d at offset %d",
				ErrOutOfOrder, timestamp, offset, lastTS, x.base+int64(lastRel))
		}
	}
	e, err := x.f.slot()
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint64(e, uint64(timestamp))
	binary.BigEndian.PutUint32(e[8:], rel)
	x.f.publish()
	return nil
}

// Lookup returns the entry with the greatest Timestamp <= ts, or false if
// there is none. It searches the most recent 8 KiB of entries first. Does not
// allocate.
func (x *TimeIndex) Lookup(ts int64) (TimeEntry, bool) {
	i := x.f.floor(x.f.len(), func(e []byte) bool { return int64(binary.BigEndian.Uint64(e)) <= ts })
	if i < 0 {
		return TimeEntry{}, false
	}
	return x.at(i), true
}

func (x *TimeIndex) at(i int) TimeEntry {
	e := x.f.entry(i)
	return TimeEntry{
		Timestamp: int64(binary.BigEndian.Uint64(e)),
		Offset:    x.base + int64(binary.BigEndian.Uint32(e[8:])),
	}
}

// TruncateTo drops the entries with Offset >= offset. It must not run
// concurrently with any other method.
func (x *TimeIndex) TruncateTo(offset int64) error {
	return truncateFrom(&x.f, x.base, offset, 8)
}

// Reset drops all entries. It must not run concurrently with any other
// method.
func (x *TimeIndex) Reset() error { return x.f.truncate(0) }

// Len returns the number of entries. Safe concurrently with Append.
func (x *TimeIndex) Len() int { return x.f.len() }

// MappedBytes is the size of the index's memory mapping (see
// OffsetIndex.MappedBytes).
func (x *TimeIndex) MappedBytes() int { return x.f.mapped() }

// Full reports whether Append cannot add an entry: the file has no room, was
// trimmed, is read-only or closed.
func (x *TimeIndex) Full() bool { return x.f.full() }

// Last returns the most recent entry, or false if the index is empty.
func (x *TimeIndex) Last() (TimeEntry, bool) {
	n := x.f.len()
	if n == 0 {
		return TimeEntry{}, false
	}
	return x.at(n - 1), true
}

// Sync flushes appended entries to disk (msync). A no-op when read-only.
func (x *TimeIndex) Sync() error { return x.f.sync() }

// Trim shrinks a writable file to its live entries, as on segment roll. The
// index stays readable; later Appends return ErrFull. A no-op when
// read-only. It must not run concurrently with any other method.
func (x *TimeIndex) Trim() error { return x.f.trim() }

// Close trims a writable index, unmaps and closes the file. It does not
// sync. Calling it again returns nil. It must not run concurrently with any
// other method; afterwards Lookup and Last report no entry.
func (x *TimeIndex) Close() error { return x.f.close() }
