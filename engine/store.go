package engine

import (
	"os"
	"time"

	"github.com/easel-io/easel/record"
)

// Store is the storage backend under the engine: it keeps the logs of
// partitions. The mmap segment store (DiskStore) is the default;
// MemoryStore keeps everything in memory for tests and ephemeral topics.
type Store interface {
	// OpenLog opens (creating if needed) the log of one partition. name is
	// "<topic>-<partition>". clean reports that the engine was shut down
	// cleanly, so crash recovery may be skipped.
	OpenLog(name string, cfg LogConfig, clean bool) (Log, error)
	// RemoveLog deletes a partition's log, which must be closed.
	RemoveLog(name string) error
	// SetAsideLog moves a closed log out of the way, keeping its data for
	// an operator to look at: afterwards Logs does not list it and OpenLog
	// of name starts a new one. tag says why (a topic id, "unclaimed").
	SetAsideLog(name, tag string) error
	// Logs lists the names of the logs the store holds.
	Logs() ([]string, error)
}

// LogConfig is what a Log needs of its topic's settings.
type LogConfig struct {
	SegmentBytes int64         // segment.bytes
	SegmentAge   time.Duration // segment.ms
	// SegmentJitter is segment.jitter.ms: each segment rolls by age a
	// random amount in [0, SegmentJitter) before SegmentAge.
	SegmentJitter time.Duration
	// IndexBytes and IndexInterval are segment.index.bytes and
	// index.interval.bytes of new segments; 0 keeps the store's
	// (DiskStore's segment.Config). Preallocate makes new segments
	// preallocate even if the store's do not.
	IndexBytes, IndexInterval int
	Preallocate               bool
}

// Log is one partition's sequence of record batches. The engine serialises
// Append, TruncateTo, TruncateFullyAndStartAt and Close (one writer), and
// DeleteOldest with itself, both truncations and Close;
// DeleteOldest runs concurrently with Append. Read, View,
// OffsetForTimestamp, Segments and the offset getters may run concurrently
// with everything and with each other.
type Log interface {
	// Append stores one whole, validated batch whose baseOffset is already
	// NextOffset(). h is its parsed header. rolled reports that the batch
	// started a new segment.
	Append(batch []byte, h record.Header) (rolled bool, err error)
	// SetConfig replaces the settings the log was opened with: later
	// appends roll by the new segment size and age (a lowered
	// segment.bytes rolls the active segment at the next append that would
	// take it past the new size), and new segments take the new index
	// settings. It may run concurrently with everything.
	SetConfig(cfg LogConfig)
	// Read returns batches starting with the one that holds offset (or, if
	// offset falls in a hole in the offsets, the first batch after it), at
	// most maxBytes unless the first batch is bigger (always whole), and
	// never a batch holding offset end or beyond (end <= NextOffset(), taken
	// by the caller as a high watermark or log end): with nothing whole
	// below end from offset on, an empty chunk. An offset below StartOffset
	// is an error wrapping ErrOffsetOutOfRange.
	Read(offset int64, maxBytes int, end int64) (Chunk, error)
	// View is like Read but always returns whole batches in Chunk.Bytes
	// (for the disk store, a read-only view of the memory-mapped segment).
	View(offset int64, maxBytes int, end int64) (Chunk, error)
	// OffsetForTimestamp returns the first offset of the first batch whose
	// maxTimestamp >= ts, or NextOffset() if there is none.
	OffsetForTimestamp(ts int64) (int64, error)
	// StartOffset is the log start offset: the first offset readers may
	// ask for. It is at or above the first segment's base offset.
	StartOffset() int64
	// AdvanceStart moves the log start offset forward to off (never back,
	// never past NextOffset) and makes it durable before returning. Whole
	// segments below it are left to DeleteOldest.
	AdvanceStart(off int64) error
	// NextOffset is the offset the next batch gets (log end offset).
	NextOffset() int64
	// TruncateTo removes every batch holding an offset >= offset (a batch
	// that holds offset goes whole) and returns the new NextOffset. It is
	// durable when it returns. Readers holding chunks of the removed bytes
	// keep reading them unchanged; reads that start afterwards do not see
	// them. A crash in the middle leaves a valid log between the new and the
	// old end. The engine serialises it with Append and DeleteOldest.
	TruncateTo(offset int64) (int64, error)
	// TruncateFullyAndStartAt removes every segment and starts the log
	// over, empty, at offset, which must be past NextOffset: afterwards
	// StartOffset and NextOffset are offset (Kafka's
	// Log.truncateFullyAndStartAt). Readers holding chunks of the removed
	// bytes keep reading them unchanged. It is durable when it returns,
	// and a crash in the middle leaves either the old log or the new one:
	// the log start offset past the old end is written first and decides
	// (a log whose persisted start lies past its last segment's end is
	// started over there when it is opened). The engine serialises it as
	// it does TruncateTo.
	TruncateFullyAndStartAt(offset int64) error
	// Sync makes everything appended so far durable.
	Sync() error
	// Segments describes the log's segments, oldest first, for retention.
	Segments() []SegmentInfo
	// DeleteOldest removes the n oldest segments; it never removes the
	// active (last) segment.
	DeleteOldest(n int) error
	// SaveState atomically replaces the small state file name beside the
	// log (the engine keeps idempotent producer snapshots there); with sync
	// the new content is durable when it returns, without it a machine
	// crash may leave the old content or a torn file.
	SaveState(name string, data []byte, sync bool) error
	// LoadState returns what SaveState stored, or nil if nothing was.
	LoadState(name string) ([]byte, error)
	// States lists the names of the state files ending in suffix.
	States(suffix string) ([]string, error)
	// RemoveState removes a state file, durably; a missing one is no error.
	RemoveState(name string) error
	// Stats reports resource use, for accounting.
	Stats() LogStats
	// Close flushes and releases the log's resources.
	Close() error
}

// SegmentRewriter is implemented by logs whose sealed segments log
// compaction can replace (both built-in stores do; compaction skips a log
// that does not).
type SegmentRewriter interface {
	// RewriteSegments replaces the consecutive segments with base offsets
	// in [from, to) by one segment with base offset from, holding the
	// batches that write hands to add, in order. from and to must be base
	// offsets of segments of the log, so the active segment is never
	// replaced. Each batch must pass record.ValidateStored and lie in
	// [from, to), its offsets above the previous batch's. If write (or an
	// add) fails, nothing changes and its error is returned. Readers keep
	// the bytes of chunks they hold; reads that start after the swap see
	// the new segment. The swap is crash-safe: a crash before its commit
	// leaves the old segments, one after it the new one, and the next open
	// finishes or undoes what was interrupted. The engine serialises it with
	// DeleteOldest, both truncations and Close; appends and reads go on.
	RewriteSegments(from, to int64, write func(add func(batch []byte) error) error) error
}

// SegmentInfo describes one segment of a log.
type SegmentInfo struct {
	BaseOffset       int64
	Size             int64
	LargestTimestamp int64 // newest batch maxTimestamp, -1 if unknown
}

// LogStats counts the resources a log holds.
type LogStats struct {
	Segments    int   // number of segments
	OpenFiles   int   // file descriptors held
	MappedFiles int   // index files mapped (log views made by ReadBatches are not counted)
	MappedBytes int64 // bytes of those index mappings
	Recovered   int   // segments scanned by crash recovery when opened
	Bytes       int64 // bytes of the log's segments
}

// Chunk is a run of whole batches read from a log (the last one may be cut
// short by the byte limit; clients skip a partial last batch). Either Bytes
// is set (an in-memory or memory-mapped view) or File, Pos and Len are (a
// region of a segment file, for sendfile). The chunk keeps its segment alive:
// call Release exactly once when done; afterwards Bytes and File are invalid.
type Chunk struct {
	Bytes       []byte
	File        *os.File
	Pos, Len    int64
	FirstOffset int64 // base offset of the first batch; may be below the offset asked for
	seg         releaser
}

// releaser is what a Chunk holds on to: a segment of the disk store.
type releaser interface{ Release() error }

// Size is the number of bytes in the chunk.
func (c *Chunk) Size() int64 {
	if c.File != nil {
		return c.Len
	}
	return int64(len(c.Bytes))
}

// Records counts the records of the chunk's whole batches (a batch cut by
// maxBytes is not counted), reading only their headers; 0 if they cannot be
// read.
func (c *Chunk) Records() int64 {
	if c.File == nil {
		return record.CountRecords(c.Bytes)
	}
	if s, ok := c.seg.(interface {
		RecordsIn(pos, n int64) (int64, error)
	}); ok {
		n, _ := s.RecordsIn(c.Pos, c.Len)
		return n
	}
	return 0
}

// Release frees the chunk's hold on its segment. It is safe to call on a
// zero Chunk and more than once.
func (c *Chunk) Release() {
	if c.seg != nil {
		c.seg.Release()
		c.seg = nil
	}
}
