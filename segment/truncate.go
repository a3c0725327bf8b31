package segment

import (
	"errors"
	"fmt"
	"os"

	"github.com/easel-io/easel/index"
)

// TruncateTo cuts the segment so that it holds exactly the batches whose
// last offset is below offset, as Kafka's truncateTo does for a follower
// that truncates its log by leader epoch (KIP-101). A batch holding offset
// is cut whole, so the result's NextOffset() may be below offset: it is the
// offset after the last kept batch (the base offset of the first cut batch,
// since appended offsets are contiguous), or BaseOffset() if no batch is
// kept. Locate(offset) tells beforehand where the cut falls.
//
// If nothing is cut (offset >= NextOffset()), TruncateTo returns s itself
// and changes nothing. Otherwise it returns the segment to append to from
// now on: active (its indexes writable) even if s was sealed, with
// NextOffset, Size, LargestTimestamp (the largest maxTimestamp of the kept
// batches), indexes and index spacing exactly as on a segment that never
// held the cut batches, and s's Created. That is s itself when the cut
// could be made in place, or a new *Segment (a replacement) otherwise. On a
// replacement the caller swaps it in wherever s is published and then
// drops its owner reference on s with Close: s is retired, its readers go
// on reading what they were given, and its files are closed (not removed)
// when the last of them releases it.
//
// Readers. From the moment TruncateTo is called, reads of s that start
// afterwards see only the kept batches. The bytes already handed to a
// reader (a Region, a View slice) are never cut or overwritten while it
// holds its reference: no SIGBUS from a mapping past the end of a file, and
// no new bytes under old offsets. Two ways meet that rule:
//
//   - In place, when only the owner holds s: the kept end is published
//     first, then the reference count is checked. A reader that acquires
//     after the check sees the kept end, so it is handed no cut byte; one
//     that acquired before is seen by the check. With no other reference,
//     no Region or View of s exists (they are valid only under a
//     reference), so the index entries past the cut are dropped and the
//     log is ftruncated at the cut, and appends go on in the same file.
//   - By copy, otherwise: the kept prefix of the log is copied into
//     <name>.log.tmp (copy_file_range), copies of the indexes cut to the
//     kept entries into <name>.index.tmp and <name>.timeindex.tmp, all
//     fsynced; then the log is renamed over <name>.log (the commit point),
//     the indexes over theirs, the directory is fsynced, and the
//     replacement is opened from the new files. s's files are only
//     unlinked by the renames, never truncated, so its readers keep
//     reading the old inodes, through the index mappings s already had.
//     The copy costs time and disk space in proportion to the kept bytes
//     (see BenchmarkTruncateTo).
//
// Crash safety. A crash at any point leaves, after Open (or OpenForRecovery
// and Recover), either the old segment or the truncated one, plus
// leftovers (.tmp files) that RemoveLeftovers removes. In place: the log is
// the old one or the cut one (ftruncate is atomic), and each index is the
// old one or the cut one (its mapping is written back at any time). By
// copy: before the log's rename the old files are untouched; each rename is
// atomic and any subset of the three may reach the disk first, since the
// directory is fsynced once, after all of them; the .tmp files were fsynced
// before any rename. Every such mix is valid: the cut log is a byte prefix
// of the old one, and the cut indexes hold exactly the old entries below the
// cut, so an old index under a cut log either holds nothing past the cut
// (and equals the cut index) or has an entry past the log's end, which Open
// detects and rebuilds the indexes from the log; and a cut index under the
// old log is a valid but sparser index of it (Open rebuilds it too when the
// time index misses the cut batches' entries). When TruncateTo returns nil
// the truncation is durable.
//
// Errors. If TruncateTo fails with an error that does not wrap ErrRetired,
// s holds all its batches again and stays usable as it was (its indexes may
// have lost entries past the cut, which only makes lookups there scan
// further). An error wrapping ErrRetired means the files were replaced or
// cut but the result could not be made durable or opened: s is retired;
// the caller must Close it and reopen the segment with Open, which finds
// the truncated log. It returns ErrClosed after Close or Delete and
// ErrRetired on a segment already retired.
//
// TruncateTo is a writer operation: the caller serialises it with Append,
// Seal, Recover, Close and Delete.
func (s *Segment) TruncateTo(offset int64) (*Segment, error) {
	switch {
	case s.closed.Load():
		return nil, ErrClosed
	case s.retired.Load():
		return nil, ErrRetired
	}
	next, size := s.tail()
	if offset >= next {
		return s, nil
	}
	keptSize, cutBase := int64(0), s.base
	if offset > s.base {
		pos, h, err := s.locate(offset, next, size)
		if err != nil {
			return nil, fmt.Errorf("segment %s: truncate: %w", s.name(), err)
		}
		keptSize, cutBase = pos, h.BaseOffset
	}
	// Hide the cut batches from reads that start from now on. cutBase is a
	// valid end for keptSize: every kept batch ends below it.
	s.publish(cutBase, keptSize)
	restore := func() { s.publish(next, size) }
	if s.refs.Load() == 1 {
		err := s.truncateInPlace(keptSize, cutBase)
		switch {
		case err == nil:
			return s, nil
		case errors.Is(err, errStaleIndex):
			// The indexes do not match the log (this should not happen):
			// the copy rebuilds them from the log if it must.
		case s.retired.Load():
			return nil, err
		default:
			restore()
			return nil, err
		}
	}
	r, err := s.truncateCopy(keptSize, cutBase)
	if err != nil && !s.retired.Load() {
		restore()
	}
	return r, err
}

// Steps of TruncateTo at which tests look at the directory (testHook).
const (
	stepIndexesCut   = "in place: indexes cut"    // next: ftruncate the log
	stepLogCut       = "in place: log cut"        // next: fdatasync the log
	stepCopied       = "copy: .tmp files written" // next: rename the log (commit)
	stepRenamedLog   = "copy: renamed .log"
	stepRenamedIndex = "copy: renamed .index"
	stepRenamedTime  = "copy: renamed .timeindex" // next: fsync the directory
)

// testHook, when set by a test, is called at each step of TruncateTo; an
// error it returns is taken as the failure of the step's next operation.
var testHook func(step string) error

func hook(step string) error {
	if testHook == nil {
		return nil
	}
	return testHook(step)
}

func retiredErr(s *Segment, err error) error {
	return fmt.Errorf("%w: segment %s: truncate: %w", ErrRetired, s.name(), err)
}

// truncateInPlace cuts s's indexes and log at (keptSize, cutBase). Only the
// owner holds s, and reads that start now see keptSize at most.
func (s *Segment) truncateInPlace(keptSize, cutBase int64) error {
	var lastOff index.OffsetEntry
	var lastTime index.TimeEntry
	var haveOff, haveTime bool
	s.idx.Lock()
	wasWritable := s.idx.writable
	err := s.setWritableLocked(true) // a sealed segment becomes the active one
	if err == nil {
		err = s.openIndexesLocked()
	}
	if err == nil {
		err = errors.Join(s.idx.offsets.TruncateTo(cutBase), s.idx.times.TruncateTo(cutBase))
		lastOff, haveOff = s.idx.offsets.Last()
		lastTime, haveTime = s.idx.times.Last()
	}
	s.idx.Unlock()
	var t tailState
	if err == nil {
		t, err = s.scanTail(keptSize, lastOff, haveOff, lastTime, haveTime)
	}
	if err == nil {
		err = hook(stepIndexesCut)
	}
	if err == nil {
		err = s.log.Truncate(keptSize)
	}
	if err != nil {
		s.idx.Lock()
		err = errors.Join(err, s.setWritableLocked(wasWritable))
		s.idx.Unlock()
		return fmt.Errorf("segment %s: truncate: %w", s.name(), err)
	}
	err = hook(stepLogCut)
	if err == nil {
		err = fdatasync(s.log)
	}
	if err != nil {
		// The cut is made but may not be durable, and the file now ends
		// below what s last published before the call: retire s so that
		// nothing appends to it; the caller reopens the segment.
		s.idx.Lock()
		err = errors.Join(err, s.detachIndexesLocked(true))
		s.idx.Unlock()
		s.retired.Store(true)
		return retiredErr(s, err)
	}
	s.sinceIndex = t.sinceIndex
	s.maxTimestamp.Store(t.maxTS)
	s.publish(t.next, keptSize)
	return nil
}

// truncateCopy builds the truncated segment in .tmp files, renames them
// over s's files and opens the replacement.
func (s *Segment) truncateCopy(keptSize, cutBase int64) (*Segment, error) {
	s.idx.Lock()
	wasWritable := s.idx.writable
	// Keep the mappings of the old indexes for s's readers: after the
	// renames s can no longer map them by name.
	err := s.detachIndexesLocked(true)
	offsets, times := -1, -1 // entries to copy; -1: no usable index
	if s.idx.offsets != nil {
		offsets, times = s.idx.offsets.Len(), s.idx.times.Len()
	}
	s.idx.Unlock()
	if err == nil {
		err = s.writeTruncated(keptSize, cutBase, offsets, times)
	}
	if err == nil {
		err = hook(stepCopied)
	}
	if err == nil {
		err = os.Rename(s.path(LogSuffix+tmpSuffix), s.path(LogSuffix))
	}
	if err != nil {
		for _, suf := range suffixes {
			err = errors.Join(err, removeIfExists(s.path(suf+tmpSuffix)))
		}
		s.idx.Lock()
		s.idx.detached = false
		err = errors.Join(err, s.setWritableLocked(wasWritable))
		s.idx.Unlock()
		return nil, fmt.Errorf("segment %s: truncate: %w", s.name(), err)
	}
	// Committed: the name is the truncated log's.
	s.retired.Store(true)
	err = hook(stepRenamedLog)
	steps := [...]string{stepRenamedLog, stepRenamedIndex, stepRenamedTime}
	for i, suf := range suffixes[1:] {
		if err != nil {
			break
		}
		if (i == 0 && offsets < 0) || (i == 1 && times < 0) {
			// No copy was made: the old index stays and Open checks it
			// against the log.
			continue
		}
		if err = os.Rename(s.path(suf+tmpSuffix), s.path(suf)); err == nil {
			err = hook(steps[i+1])
		}
	}
	if err == nil {
		err = syncDir(s.directory())
	}
	var r *Segment
	if err == nil {
		r, err = Open(s.directory(), s.base, s.cfg, true)
	}
	if err != nil {
		return nil, retiredErr(s, err)
	}
	r.created = s.created
	// Readers that acquire s from now on see what r holds.
	s.maxTimestamp.Store(r.maxTimestamp.Load())
	s.publish(r.NextOffset(), r.Size())
	return r, nil
}

// writeTruncated writes the .tmp files of the truncated segment: the first
// keptSize bytes of the log, and copies of the first offsets and times
// entries of the indexes (skipped if negative) without the entries at or
// past cutBase. Each is fsynced.
func (s *Segment) writeTruncated(keptSize, cutBase int64, offsets, times int) error {
	f, err := createTemp(s.path(LogSuffix + tmpSuffix))
	if err != nil {
		return err
	}
	err = copyPrefix(f, s.log, keptSize)
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if offsets >= 0 {
		err = s.writeIndex(IndexSuffix, int64(offsets)*index.OffsetEntrySize, func(path string) (indexFile, error) {
			return index.OpenOffset(path, s.base, s.cfg.MaxIndexBytes)
		}, cutBase)
		if err != nil {
			return err
		}
	}
	if times >= 0 {
		err = s.writeIndex(TimeIndexSuffix, int64(times)*index.TimeEntrySize, func(path string) (indexFile, error) {
			return index.OpenTime(path, s.base, s.cfg.MaxIndexBytes)
		}, cutBase)
	}
	return err
}

// indexFile is what writeIndex needs of an offset or time index.
type indexFile interface {
	TruncateTo(offset int64) error
	Close() error
}

// writeIndex copies the first n bytes of the index file with suffix to its
// .tmp name, drops the entries at or past cutBase (package index zeroes
// them, and Close trims the file), and fsyncs the copy.
func (s *Segment) writeIndex(suffix string, n int64, open func(path string) (indexFile, error), cutBase int64) error {
	tmp := s.path(suffix + tmpSuffix)
	src, err := os.Open(s.path(suffix))
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	defer src.Close()
	dst, err := createTemp(tmp)
	if err != nil {
		return err
	}
	err = copyPrefix(dst, src, n)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	x, err := open(tmp)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	err = x.TruncateTo(cutBase)
	if cerr := x.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	return syncPath(tmp)
}
