// Package segment is one piece of a partition's log: a .log file of Kafka
// record batches (v2) stored byte-for-byte as they travel on the wire, with a
// sparse offset index and a time index beside it.
//
// Files of the segment whose first offset is 42:
//
//	00000000000000000042.log        batch | batch | batch | ...
//	00000000000000000042.index      [relOffset uint32 | position uint32]...   one per IndexInterval bytes
//	00000000000000000042.timeindex  [timestamp int64 | relOffset uint32]...  when maxTimestamp grows
//
// and, transiently, the same names with a suffix:
//
//	00000000000000000042.log.deleted   Delete renamed it; removed when the last reference is released
//	00000000000000000042.log.tmp       TruncateTo is building the replacement; renamed over the .log
//
// (likewise .index.deleted, .timeindex.tmp, ...). A crash can leave either
// kind behind; List ignores them and RemoveLeftovers removes them.
//
// A batch in the .log is exactly the record batch v2 encoding (see package
// record) with baseOffset and partitionLeaderEpoch filled in:
//
//	+------------+-------------+----------------------------------------+
//	| baseOffset | batchLength | batchLength bytes: epoch, magic, crc ...|
//	|   int64    |    int32    |                                        |
//	+------------+-------------+----------------------------------------+
//
// The 20-digit file names, the suffixes and the index entry layouts are
// frozen: they are the on-disk format.
//
// # Concurrency
//
// One writer at a time: the caller serialises Append, TruncateTo, Seal,
// Recover, Close and Delete. Any number of concurrent readers (Locate, Read,
// ReadTo, View, ViewTo, OffsetForTimestamp, the accessors), each holding a
// reference taken with Acquire. Readers only see bytes below Size(), which is
// published after a whole batch has been written, so a reader never observes
// a partially written batch.
//
// The bytes handed to a reader (a Region of the log file, a View slice of
// its mapping) stay valid and unchanged until the reader releases its
// reference, whatever the writer does meanwhile: Delete renames the files
// and removes them only after the last Release; TruncateTo never cuts or
// overwrites a file region that a reader may hold (see TruncateTo).
package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/easel-io/easel/index"
	"github.com/easel-io/easel/record"
)

// File name suffixes. Frozen: part of the on-disk format.
const (
	LogSuffix       = ".log"
	IndexSuffix     = ".index"
	TimeIndexSuffix = ".timeindex"
	// DeletedSuffix is added to the names of a deleted segment's files
	// (00000000000000000042.log.deleted) until its last reference is
	// released.
	DeletedSuffix = ".deleted"
	// tmpSuffix is added to the names of files TruncateTo is writing.
	tmpSuffix = ".tmp"
)

// suffixes lists the suffixes of a segment's files, the log first: Delete
// and TruncateTo move the log first, so a segment exists exactly while its
// .log does.
var suffixes = [...]string{LogSuffix, IndexSuffix, TimeIndexSuffix}

var (
	// ErrOutOfRange is returned by reads for an offset the segment does not hold.
	ErrOutOfRange = errors.New("segment: offset out of range")
	// ErrFull is returned by Append when the batch does not fit: the caller
	// rolls a new segment and appends there.
	ErrFull = errors.New("segment: full")
	// ErrClosed is returned by every method after Close or Delete.
	ErrClosed = errors.New("segment: closed")
	// ErrCorrupt is returned when the log holds bytes that do not parse where a
	// batch must start.
	ErrCorrupt = errors.New("segment: corrupt log")
	// ErrRetired is returned by Append, TruncateTo and Recover on a segment
	// whose files TruncateTo replaced, and wrapped by a TruncateTo that failed
	// after it had replaced them: the caller must Close the segment and use
	// the replacement (or, after such a failure, reopen it with Open).
	ErrRetired = errors.New("segment: retired by truncation")
)

// Config holds the settings of one segment. Zero fields take the defaults.
type Config struct {
	// MaxBytes is Kafka's segment.bytes: the segment is full once it holds
	// this many bytes. Default 1 GiB. A single batch larger than MaxBytes
	// still fits in an empty segment.
	MaxBytes int64
	// MaxIndexBytes is Kafka's segment.index.bytes: the preallocated size of
	// each index file. Default 10 MiB.
	MaxIndexBytes int
	// IndexInterval is Kafka's index.interval.bytes: an offset index entry is
	// written whenever this many log bytes were appended since the last one.
	// Default 4096. Smaller means faster lookups and bigger indexes.
	IndexInterval int
	// Now is the segment's clock: Create dates a new segment with it
	// (Created, from which segment.ms rolls are measured). Default
	// time.Now; tests set it to make rolls deterministic. An opened segment
	// is dated by its log file's modification time instead.
	Now func() time.Time
	// Preallocate is Kafka's preallocate: Create (and Open of the active
	// segment) reserves MaxBytes of disk for the .log with fallocate
	// (FALLOC_FL_KEEP_SIZE: the file's size stays that of its batches, so
	// reads, recovery and copies see no difference), and Seal and Close give
	// back what was not used (see trimLog). Default false. Risks: every
	// active segment holds MaxBytes of disk whatever it holds (1,000
	// partitions at the default 1 GiB reserve 1 TB), a crash leaves the
	// active segments' reserve in place until they are sealed or closed, and
	// the fallocate runs on the roll path. Where the file system cannot
	// fallocate, or the disk has no room for the reserve, the segment is
	// made without one.
	Preallocate bool
}

func (c Config) withDefaults() Config {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.MaxIndexBytes <= 0 {
		c.MaxIndexBytes = 10 << 20
	}
	if c.IndexInterval <= 0 {
		c.IndexInterval = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// FileName returns the base name (without suffix) of the segment files for
// baseOffset: the offset zero-padded to 20 digits.
func FileName(baseOffset int64) string { return fmt.Sprintf("%020d", baseOffset) }

// Segment is one log segment. See the package doc for the concurrency rules.
type Segment struct {
	dir  atomic.Pointer[string] // the directory of the files; MoveTo changes it
	base int64
	cfg  Config
	log  *os.File

	// size is the number of bytes of whole batches in the log. Readers load
	// it; the writer stores it after the batch bytes are in the file.
	size atomic.Int64
	// next is the offset after the last batch: the base offset for the next
	// append. Invariant: next >= base.
	next atomic.Int64
	// seq guards the pair (next, size) for readers; see publish and tail.
	seq atomic.Uint64
	// maxTimestamp is the largest batch maxTimestamp in the log, -1 if none.
	// Stored by the writer, loaded by anyone (retention).
	maxTimestamp atomic.Int64

	// Written only by the writer.
	sinceIndex int // log bytes appended since the last offset index entry
	created    time.Time

	idx struct {
		sync.Mutex
		offsets  *index.OffsetIndex // nil until first needed
		times    *index.TimeIndex   // nil until first needed
		writable bool               // false once the segment is sealed
		// detached: the file names are no longer this segment's (Delete
		// renamed them, or TruncateTo put a replacement under them), so no
		// index file is opened by name again; the segment keeps the
		// read-only mappings it had, or scans the log without an index.
		// Invariant: detached implies !writable (package index resizes a
		// writable file by name).
		detached bool
	}

	// idxUnsynced: Seal trimmed the indexes and left their flush to Sync.
	idxUnsynced atomic.Bool

	// mmap views for zero-copy reads; see View.
	views viewState

	refs    atomic.Int64 // 1 for the owner plus one per Acquire
	deleted atomic.Bool  // files renamed to .deleted: remove them when refs drop to zero
	retired atomic.Bool  // TruncateTo replaced the files: close, never remove, them at the end
	closed  atomic.Bool
}

// Create makes a new, empty segment starting at base in dir, dated
// cfg.Now(). It fails if the log file already exists (a .deleted one does
// not count: a segment may be created again at the base of one just
// deleted). The new file's directory entry is not fsynced: the caller syncs
// the directory when it needs the segment to survive a crash.
func Create(dir string, base int64, cfg Config) (*Segment, error) {
	cfg = cfg.withDefaults()
	f, err := os.OpenFile(filepath.Join(dir, FileName(base)+LogSuffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("segment: create: %w", err)
	}
	s := newSegment(dir, base, cfg, f)
	s.next.Store(base)
	s.idx.writable = true
	if cfg.Preallocate {
		s.preallocate()
	}
	// A new segment must not inherit stale indexes of an earlier one.
	for _, suf := range []string{IndexSuffix, TimeIndexSuffix} {
		if err := removeIfExists(s.path(suf)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

func newSegment(dir string, base int64, cfg Config, f *os.File) *Segment {
	s := &Segment{base: base, cfg: cfg, log: f, created: cfg.Now()}
	s.dir.Store(&dir)
	s.maxTimestamp.Store(-1)
	s.refs.Store(1)
	return s
}

// Open opens an existing segment without scanning its log, trusting that it
// was closed cleanly. active says whether the segment will receive appends;
// the active segment's indexes are opened writable. Open reads the tail of
// the log (from the last offset index entry) to find the next offset; if the
// indexes are missing or corrupt they are rebuilt from the log. A tail that
// does not parse is an error wrapping ErrCorrupt: the caller should Recover.
func Open(dir string, base int64, cfg Config, active bool) (*Segment, error) {
	s, err := OpenForRecovery(dir, base, cfg, active)
	if err != nil {
		return nil, err
	}
	if err := s.loadTail(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if !active {
		// Sealed segments map their indexes only when a read needs them.
		if err := s.ReleaseIndexes(); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	return s, nil
}

// OpenForRecovery opens an existing segment without reading its log or
// indexes. The caller must call Recover before anything else. Created() of
// an opened segment is its log file's modification time (the time of its
// last append, as the file system recorded it), not cfg.Now().
func OpenForRecovery(dir string, base int64, cfg Config, active bool) (*Segment, error) {
	cfg = cfg.withDefaults()
	f, err := os.OpenFile(filepath.Join(dir, FileName(base)+LogSuffix), os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("segment: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("segment: open: %w", err)
	}
	s := newSegment(dir, base, cfg, f)
	s.created = st.ModTime()
	s.size.Store(st.Size())
	s.next.Store(base)
	s.idx.writable = active
	switch {
	case active && cfg.Preallocate:
		s.preallocate()
	case !active && reserved(st):
		// A crash left the reserve of what was the active segment.
		if err := s.trimLog(); err != nil {
			f.Close()
			return nil, fmt.Errorf("segment: open: %w", err)
		}
	}
	return s, nil
}

// preallocate reserves MaxBytes of disk for the log without changing its
// size (Config.Preallocate). It is only a hint: a file system that cannot,
// or a disk without room, leaves the segment without a reserve.
func (s *Segment) preallocate() {
	rc, err := s.log.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		for unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, 0, s.cfg.MaxBytes) == unix.EINTR {
		}
	})
}

// reserved reports whether a file holds disk blocks past its size (a
// preallocated reserve): more than its size rounded up to whole pages, with
// a little slack for extent tree blocks, which count too.
func reserved(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	const slack = 64 << 10
	used := (fi.Size() + 4095) &^ 4095
	return st.Blocks*512 > used+slack
}

// trimLog gives back the disk blocks reserved past the end of the log by
// Preallocate (or left by a crash): an ftruncate to the file's own size
// frees the blocks past it (on ext4, FALLOC_FL_PUNCH_HOLE past the end does
// nothing). It does nothing if there is no reserve. The modification time,
// from which an opened segment's Created() is taken, is put back, since
// ftruncate sets it even when the size does not change.
func (s *Segment) trimLog() error {
	fi, err := s.log.Stat()
	if err != nil || !reserved(fi) {
		return err
	}
	if err := s.log.Truncate(fi.Size()); err != nil {
		return fmt.Errorf("segment %s: trim: %w", s.name(), err)
	}
	mtime := unix.NsecToTimespec(fi.ModTime().UnixNano())
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT} // atime unchanged
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, s.path(LogSuffix), []unix.Timespec{omit, mtime}, 0); err != nil {
		return fmt.Errorf("segment %s: trim: %w", s.name(), err)
	}
	return nil
}

// loadTail finds the next offset and largest timestamp by scanning the log
// from the last offset index entry. If the indexes are missing, corrupt or
// disagree with the log (an entry past its end, left from a longer log), or
// the tail does not parse, it rebuilds them from the whole log with Recover,
// which also cuts a torn tail.
func (s *Segment) loadTail() error {
	var lastOff index.OffsetEntry
	var lastTime index.TimeEntry
	var haveOff, haveTime bool
	s.idx.Lock()
	err := s.openIndexesLocked()
	if err == nil {
		lastOff, haveOff = s.idx.offsets.Last()
		lastTime, haveTime = s.idx.times.Last()
	}
	s.idx.Unlock()
	var t tailState
	if err == nil {
		t, err = s.scanTail(s.size.Load(), lastOff, haveOff, lastTime, haveTime)
	}
	if err != nil {
		_, err = s.Recover()
		return err
	}
	s.maxTimestamp.Store(t.maxTS)
	s.next.Store(t.next)
	s.sinceIndex = t.sinceIndex
	return nil
}

// errStaleIndex reports indexes that do not match the log.
var errStaleIndex = errors.New("segment: index does not match the log")

// tailState is what a writer needs to know of a log's end to append to it.
type tailState struct {
	next       int64 // offset after the last batch
	maxTS      int64 // largest batch maxTimestamp, -1 if none
	sinceIndex int   // bytes since the last offset index entry
}

// scanTail reads the batches from the last offset index entry to size,
// checking the indexes' last entries against what it finds.
func (s *Segment) scanTail(size int64, lastOff index.OffsetEntry, haveOff bool, lastTime index.TimeEntry, haveTime bool) (tailState, error) {
	start := int64(0)
	// The first batch is always indexed, so a non-empty log has entries, and
	// every entry points into the log (an empty log has none).
	if haveOff != (size > 0) || (haveOff && int64(lastOff.Position) >= size) {
		return tailState{}, errStaleIndex
	}
	if haveOff {
		start = int64(lastOff.Position)
	}
	next, maxTS := s.base, int64(-1)
	if haveTime {
		maxTS = lastTime.Timestamp
	}
	var hdr [record.HeaderSize]byte
	for pos := start; pos < size; {
		h, err := s.readHeader(hdr[:], pos, size)
		if err != nil {
			return tailState{}, err
		}
		if pos == start && h.BaseOffset != lastOff.Offset {
			return tailState{}, errStaleIndex
		}
		// A batch that raised the largest timestamp got a time index entry
		// at its last offset; one missing means the time index lost entries.
		if h.MaxTimestamp > maxTS && (!haveTime || h.LastOffset() > lastTime.Offset) {
			return tailState{}, errStaleIndex
		}
		next = h.LastOffset() + 1
		maxTS = max(maxTS, h.MaxTimestamp)
		pos += int64(h.Size())
	}
	if haveTime && lastTime.Offset >= next {
		return tailState{}, errStaleIndex
	}
	return tailState{next: next, maxTS: maxTS, sinceIndex: int(size - start)}, nil
}

// readHeader reads and parses the batch header at pos, checking that the
// whole batch lies below limit.
func (s *Segment) readHeader(buf []byte, pos, limit int64) (record.Header, error) {
	n := int64(len(buf))
	if limit-pos < n {
		n = limit - pos
	}
	if _, err := s.log.ReadAt(buf[:n], pos); err != nil && !errors.Is(err, io.EOF) {
		return record.Header{}, fmt.Errorf("segment %s: read at %d: %w", s.name(), pos, err)
	}
	h, err := record.ParseHeader(buf[:n])
	if err != nil {
		return h, fmt.Errorf("%w: %s at position %d: %w", ErrCorrupt, s.name(), pos, err)
	}
	if pos+int64(h.Size()) > limit {
		return h, fmt.Errorf("%w: %s: batch at %d runs past the end (%d > %d)", ErrCorrupt, s.name(), pos, pos+int64(h.Size()), limit)
	}
	return h, nil
}

// openIndexesLocked maps the index files if they are not mapped yet. On a
// detached segment it opens nothing and returns nil: s.idx.offsets and
// s.idx.times stay as they are, possibly nil, and callers then scan the log
// from its start.
func (s *Segment) openIndexesLocked() error {
	if s.idx.offsets != nil || s.idx.detached {
		return nil
	}
	max := 0
	if s.idx.writable {
		max = s.cfg.MaxIndexBytes
	}
	oi, err := index.OpenOffset(s.path(IndexSuffix), s.base, max)
	if err != nil {
		return fmt.Errorf("segment %s: %w", s.name(), err)
	}
	ti, err := index.OpenTime(s.path(TimeIndexSuffix), s.base, max)
	if err != nil {
		oi.Close()
		return fmt.Errorf("segment %s: %w", s.name(), err)
	}
	s.idx.offsets, s.idx.times = oi, ti
	return nil
}

func (s *Segment) closeIndexesLocked() error {
	var err error
	if s.idx.offsets != nil {
		err = s.idx.offsets.Close()
		s.idx.offsets = nil
	}
	if s.idx.times != nil {
		err = errors.Join(err, s.idx.times.Close())
		s.idx.times = nil
	}
	return err
}

// detachIndexesLocked prepares for the segment's file names to stop being
// its own (Delete, TruncateTo). Writable indexes are trimmed and closed
// while the names still are its own, since package index resizes a
// writable file by name. If keep, the indexes are then mapped read-only so
// that readers holding references go on using them after the names move
// (a mapping holds its inode); if they cannot be mapped, readers scan the
// log instead. From then on no index file is opened by name.
func (s *Segment) detachIndexesLocked(keep bool) error {
	var err error
	if s.idx.writable {
		err = s.closeIndexesLocked()
		s.idx.writable = false
	}
	if keep && err == nil {
		_ = s.openIndexesLocked() // on failure readers scan: slower, still right
	}
	s.idx.detached = true
	return err
}

// setWritableLocked reopens the indexes writable or read-only on their next
// use, if they are not so already.
func (s *Segment) setWritableLocked(w bool) error {
	if s.idx.writable == w {
		return nil
	}
	err := s.closeIndexesLocked()
	s.idx.writable = w
	return err
}

func (s *Segment) path(suffix string) string {
	return filepath.Join(s.directory(), FileName(s.base)+suffix)
}

func (s *Segment) name() string {
	return filepath.Join(filepath.Base(s.directory()), FileName(s.base))
}

// directory is the directory holding the segment's files (MoveTo changes it).
func (s *Segment) directory() string { return *s.dir.Load() }

// BaseOffset is the offset of the first record the segment may hold.
func (s *Segment) BaseOffset() int64 { return s.base }

// NextOffset is the offset the next appended batch will get.
func (s *Segment) NextOffset() int64 { return s.next.Load() }

// Size is the number of log bytes holding whole batches.
func (s *Segment) Size() int64 { return s.size.Load() }

// Created is when the segment was created, or for an opened segment the log
// file's modification time; segment.ms rolls measure from it.
func (s *Segment) Created() time.Time { return s.created }

// Fits reports whether a batch of n bytes may be appended without rolling:
// the segment is below MaxBytes after the append (or empty), the relative
// offset of lastOffset fits in 32 bits, and the indexes have room.
func (s *Segment) Fits(n int, lastOffset int64) bool {
	size := s.size.Load()
	if size > 0 && size+int64(n) > s.cfg.MaxBytes {
		return false
	}
	if size+int64(n) > 1<<32-1 || lastOffset-s.base > 1<<32-1 || lastOffset < s.base {
		return false
	}
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.offsets == nil {
		return true
	}
	return !s.idx.offsets.Full() && !s.idx.times.Full()
}

// Append writes one batch whose baseOffset is at or above NextOffset() (a
// leader's appends are at it; a follower copying a compacted log, or the
// cleaner writing one, may leave a hole). h must be the batch's parsed
// header. It returns ErrFull, writing nothing,
// if the batch does not fit (see Fits): the caller rolls a new segment.
// After Append returns, readers see the batch.
func (s *Segment) Append(batch []byte, h record.Header) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.retired.Load() {
		return ErrRetired
	}
	if h.BaseOffset < s.next.Load() {
		// Above is fine: a follower copying a compacted log, or the cleaner
		// writing one, leaves holes in the offsets.
		return fmt.Errorf("segment %s: append at offset %d, want %d or more", s.name(), h.BaseOffset, s.next.Load())
	}
	if !s.Fits(len(batch), h.LastOffset()) {
		return ErrFull
	}
	pos := s.size.Load()
	if _, err := s.log.WriteAt(batch, pos); err != nil {
		// Whatever part was written lies beyond size and is overwritten by
		// the next append or cut by recovery.
		return fmt.Errorf("segment %s: write: %w", s.name(), err)
	}
	if err := s.indexBatch(h, pos); err != nil {
		return err
	}
	s.publish(h.LastOffset()+1, pos+int64(len(batch)))
	return nil
}

// indexBatch adds index entries for a batch written at pos, as Kafka does:
// an offset entry once IndexInterval bytes have accumulated, and a time entry
// when the batch raises the segment's largest timestamp.
func (s *Segment) indexBatch(h record.Header, pos int64) error {
	needOffset := s.sinceIndex >= s.cfg.IndexInterval || pos == 0
	needTime := h.MaxTimestamp > s.maxTimestamp.Load()
	if needOffset || needTime {
		s.idx.Lock()
		err := s.openIndexesLocked()
		if err == nil && needOffset {
			err = s.idx.offsets.Append(h.BaseOffset, uint32(pos))
		}
		if err == nil && needTime {
			err = s.idx.times.Append(h.MaxTimestamp, h.LastOffset())
		}
		s.idx.Unlock()
		if err != nil {
			return fmt.Errorf("segment %s: index: %w", s.name(), err)
		}
		if needOffset {
			s.sinceIndex = 0
		}
	}
	if needTime {
		s.maxTimestamp.Store(h.MaxTimestamp)
	}
	s.sinceIndex += h.Size()
	return nil
}

// publish makes a new end (next offset, size) visible to readers as one
// pair: a sequence lock, odd while the pair is being written.
func (s *Segment) publish(next, size int64) {
	s.seq.Add(1)
	s.size.Store(size)
	s.next.Store(next)
	s.seq.Add(1)
}

// tail returns a consistent snapshot of (next offset, size): every batch
// below size ends at or before next's position and vice versa.
func (s *Segment) tail() (next, size int64) {
	for {
		q := s.seq.Load()
		if q&1 == 0 {
			next, size = s.next.Load(), s.size.Load()
			if s.seq.Load() == q {
				return next, size
			}
		}
		runtime.Gosched()
	}
}

// Sync flushes the log to stable storage, and the indexes of a sealed
// segment the first time after Seal. An active segment's indexes are not
// flushed: they are rebuilt from the log after a crash.
func (s *Segment) Sync() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := syncFile(s.log); err != nil {
		return fmt.Errorf("segment %s: fdatasync: %w", s.name(), err)
	}
	return s.syncSealedIndexes()
}

// syncSealedIndexes flushes the index files that Seal trimmed and unmapped,
// once. They are opened by name under the index lock (so that no move or
// detach swaps the names meanwhile) and flushed outside it. A missing file
// is skipped: a missing index is rebuilt from the log when needed.
func (s *Segment) syncSealedIndexes() error {
	if !s.idxUnsynced.Load() {
		return nil
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	s.idx.Lock()
	if s.idx.detached {
		s.idx.Unlock()
		return nil // deleted or replaced: these indexes no longer matter
	}
	for _, suf := range []string{IndexSuffix, TimeIndexSuffix} {
		f, err := os.Open(s.path(suf))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			s.idx.Unlock()
			closeAll()
			return fmt.Errorf("segment %s: index fsync: %w", s.name(), err)
		}
		files = append(files, f)
	}
	s.idx.Unlock()
	defer closeAll()
	for _, f := range files {
		if err := syncFile(f); err != nil {
			return fmt.Errorf("segment %s: index fsync: %w", s.name(), err)
		}
	}
	s.idxUnsynced.Store(false)
	return nil
}

// syncFile is fdatasync; tests replace it to count or delay flushes.
var syncFile = fdatasync

// fdatasync flushes f's data and the metadata needed to read it back (its
// size), but not its timestamps: one device flush instead of two.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// Seal marks the segment read-only: its indexes are trimmed to their used
// size and closed (they are mapped again, read-only, when next needed), and
// the log's preallocated reserve, if any, is given back. Seal flushes
// nothing: the next Sync flushes the indexes with the log. It does nothing to
// a deleted or retired segment.
func (s *Segment) Seal() error {
	if err := s.sealIndexes(); err != nil || s.deleted.Load() || s.retired.Load() {
		return err
	}
	return s.trimLog()
}

func (s *Segment) sealIndexes() error {
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.detached {
		return nil
	}
	s.idx.writable = false
	if s.idx.offsets != nil {
		if err := errors.Join(s.idx.offsets.Trim(), s.idx.times.Trim()); err != nil {
			return fmt.Errorf("segment %s: seal: %w", s.name(), err)
		}
		// Sealed segments fall below the recovery point and are trusted
		// after a crash, so their indexes must reach the disk: Sync
		// flushes them. Not here, because Seal runs in the append path
		// at roll and an fsync may wait for a journal commit.
		s.idxUnsynced.Store(true)
	}
	if err := s.closeIndexesLocked(); err != nil {
		return fmt.Errorf("segment %s: seal: %w", s.name(), err)
	}
	return nil
}

// ReleaseIndexes unmaps the indexes of a sealed segment to save mappings;
// they are mapped again on the next lookup. It does nothing to an active
// segment, nor to a deleted or retired one (whose indexes cannot be mapped
// again by name).
func (s *Segment) ReleaseIndexes() error {
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.writable || s.idx.detached {
		return nil
	}
	return s.closeIndexesLocked()
}

// Close gives back the log's preallocated reserve, if any, and releases
// the owner's reference: files are closed (and, after Delete, removed) once
// the last reader has released its reference too. Calling it again does
// nothing.
func (s *Segment) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var err error
	if !s.deleted.Load() && !s.retired.Load() {
		err = s.trimLog()
	}
	return errors.Join(err, s.Release())
}

// Delete renames the segment's files to their .deleted names at once
// (00000000000000000042.log becomes 00000000000000000042.log.deleted, the
// log first), fsyncs the directory, and releases the owner's reference as
// Close does. The renamed files are removed when the last reference is
// released; readers holding references go on reading them until then.
// Because the names are free when Delete returns, a new segment may be
// created at the same base offset right away.
//
// Durability: when Delete returns nil, the renames are on stable storage: a
// crash afterwards cannot bring the segment back (at most .deleted files
// remain, which RemoveLeftovers removes). A crash during Delete leaves
// either the whole segment or none of it, since a segment exists exactly
// while its .log file does (index files left without a log are leftovers
// too). The removal of the .deleted files is not synced.
//
// Delete releases the owner's reference even when it fails; if the log
// could not be renamed, its files stay under their names. On a segment that
// TruncateTo retired, whose names belong to the replacement, Delete only
// closes it. After Close or Delete it returns ErrClosed.
func (s *Segment) Delete() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.retired.Load() {
		return s.Close()
	}
	s.idx.Lock()
	// Readers other than the owner keep the index mappings; with none the
	// mapping would be wasted (a reader that acquires in the meantime still
	// reads correctly, scanning the log).
	err := s.detachIndexesLocked(s.refs.Load() > 1)
	lerr := os.Rename(s.path(LogSuffix), s.path(LogSuffix+DeletedSuffix))
	if lerr == nil {
		s.deleted.Store(true)
		for _, suf := range suffixes[1:] {
			if rerr := os.Rename(s.path(suf), s.path(suf+DeletedSuffix)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr) // left behind as a leftover without a log
			}
		}
	}
	s.idx.Unlock()
	if lerr != nil {
		err = errors.Join(err, lerr)
	} else {
		err = errors.Join(err, syncDir(s.directory()))
	}
	err = errors.Join(err, s.Close())
	if err != nil {
		return fmt.Errorf("segment %s: delete: %w", s.name(), err)
	}
	return nil
}

// Acquire takes a reference that keeps the segment's files open (and any
// View valid) until the matching Release, even across Close, Delete or
// TruncateTo. It returns false if the segment is already gone.
func (s *Segment) Acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference taken by Acquire. The last one closes the files
// and, after Delete, removes the .deleted files; a retired segment's files
// are only closed (their names belong to the replacement).
func (s *Segment) Release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	err := s.closeFiles()
	if s.deleted.Load() {
		for _, suf := range suffixes {
			err = errors.Join(err, removeIfExists(s.path(suf+DeletedSuffix)))
		}
	}
	return err
}

func (s *Segment) closeFiles() error {
	s.idx.Lock()
	err := s.closeIndexesLocked()
	s.idx.Unlock()
	err = errors.Join(err, s.views.unmap(), s.log.Close())
	if err != nil {
		return fmt.Errorf("segment %s: close: %w", s.name(), err)
	}
	return nil
}

// MoveTo moves the files of a sealed segment into dir, which must be on the
// same file system: the indexes first, the log last (a segment is where its
// .log is), then fsyncs both directories. Readers holding references are
// not disturbed: open files and mappings follow their inodes, and no index
// is opened by name while the files move. The caller serialises it with
// the writer's methods. If a rename fails, the files already moved are
// moved back (as far as possible) and the segment stays where it was.
func (s *Segment) MoveTo(dir string) error {
	s.idx.Lock()
	defer s.idx.Unlock()
	switch {
	case s.closed.Load() || s.deleted.Load():
		return ErrClosed
	case s.retired.Load():
		return ErrRetired
	case s.idx.writable:
		return fmt.Errorf("segment %s: move: the segment is not sealed", s.name())
	}
	from := s.directory()
	order := [...]string{IndexSuffix, TimeIndexSuffix, LogSuffix}
	for i, suf := range order {
		src, dst := filepath.Join(from, FileName(s.base)+suf), filepath.Join(dir, FileName(s.base)+suf)
		err := os.Rename(src, dst)
		if err == nil || (suf != LogSuffix && errors.Is(err, fs.ErrNotExist)) {
			continue // a missing index is rebuilt from the log when needed
		}
		for _, back := range order[:i] {
			_ = os.Rename(filepath.Join(dir, FileName(s.base)+back), filepath.Join(from, FileName(s.base)+back))
		}
		return fmt.Errorf("segment %s: move to %s: %w", s.name(), dir, err)
	}
	s.dir.Store(&dir)
	return errors.Join(syncDir(dir), syncDir(from))
}
