// Package index implements the two sparse, memory-mapped indexes of a log
// segment: the offset index, which maps an offset to the position in the
// segment's .log file of the batch holding it, and the time index, which maps
// a timestamp to the first offset whose batch may hold it.
//
// # File formats
//
// Both files are arrays of fixed-size big-endian entries, like Kafka's. The
// entry sizes and layouts below are frozen: they are part of the on-disk
// format. Offsets are stored relative to the segment's base offset (the
// 20-digit number in the file name), so a segment holds at most 2^32 offsets.
//
// Offset index, <20-digit base>.index, 8-byte entries (OffsetEntrySize):
//
//	0                        4                        8
//	+------------------------+------------------------+
//	| relative offset uint32 | .log position uint32   |
//	+------------------------+------------------------+
//
// Time index, <20-digit base>.timeindex, 12-byte entries (TimeEntrySize):
//
//	0                                              8                        12
//	+----------------------------------------------+------------------------+
//	| timestamp int64, ms since the Unix epoch     | relative offset uint32 |
//	+----------------------------------------------+------------------------+
//
// Within one file both fields of each entry are strictly greater than those
// of the entry before it. An active (writable) index is preallocated to its
// maximum size, so after a crash the file ends in all-zero entries; a cleanly
// closed index is trimmed to its live entries.
//
// # Opening
//
// Opening counts as live the longest prefix of strictly increasing entries
// and requires every byte after it to be zero; anything else (a size that is
// not a multiple of the entry size, an entry not greater than the one before
// it, data after a zero entry) fails with ErrCorrupt, and the caller rebuilds
// the index from the log. A cleanly closed file is live in full. One case is
// ambiguous: an all-zero first entry (relative offset 0 at position 0, or
// timestamp 0 at relative offset 0) followed only by zeros is live when it is
// the file's only entry (a trimmed file) and not live otherwise (a
// preallocated file in which nothing was written). Dropping it loses nothing
// a reader needs: the segment's start is always a valid place to begin a
// scan.
//
// # Concurrency
//
// An index is not safe for concurrent use: the caller serialises every call
// (package segment holds a mutex around its indexes). Append may grow the
// file and map it anew, and TruncateTo, Reset, Trim and Close shrink or unmap
// it, so a reader running alongside could look at memory that is gone. Len
// alone is safe at any time: the entry count is published atomically after
// an entry's bytes are written.
//
// # Durability
//
// Appends go to the shared mapping and reach the file through the page cache
// like any write; Sync (msync) makes them durable. Close does not sync.
package index

import "errors"

// Entry sizes in bytes. Frozen: part of the on-disk format.
const (
	OffsetEntrySize = 8
	TimeEntrySize   = 12
)

var (
	// ErrFull is returned by Append when the preallocated file has no room
	// for another entry, or the index was trimmed.
	ErrFull = errors.New("index: full")
	// ErrOutOfOrder is returned by Append when an entry is not strictly
	// greater than the last one (offset, position or timestamp), or its
	// offset is below the base offset or more than 2^32-1 above it.
	ErrOutOfOrder = errors.New("index: entry out of order")
	// ErrCorrupt is returned by OpenOffset and OpenTime when the file's size
	// is not a multiple of the entry size, or its entries are not strictly
	// increasing before the trailing zero entries.
	ErrCorrupt = errors.New("index: corrupt")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("index: closed")
	// ErrReadOnly is returned by Append, TruncateTo and Reset on an index
	// opened read-only (maxBytes <= 0).
	ErrReadOnly = errors.New("index: read-only")
	// ErrInvalid is returned by OpenOffset and OpenTime for a negative base
	// offset.
	ErrInvalid = errors.New("index: invalid argument")
)
