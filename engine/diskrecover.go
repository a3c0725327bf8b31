package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/easel-io/easel/segment"
)

// recoveryFile names the per-partition checkpoint: the base offset of the
// oldest segment that may hold unflushed bytes. Crash recovery scans only
// segments from there on. Format: decimal offset and a newline. It is a hint
// written without fsync: a lost or torn file only makes recovery scan more.
const recoveryFile = "recovery-point"

// logStartFile names the per-partition log start offset: the base offset of
// the oldest segment retention kept. It is written durably before retention
// removes any file, so segments below it that a crash left behind in the
// middle of a deletion are removed at the next open instead of coming back
// with a hole in the offsets after them. A start past the end of the last
// segment means the log starts over there (TruncateFullyAndStartAt writes it
// first): every segment goes at open. Format: decimal offset and a newline.
const logStartFile = "log-start-offset"

func (l *diskLog) load(clean bool) error {
	// A compaction swap that a crash (or a failure) interrupted.
	if err := l.finishSwap(); err != nil {
		return err
	}
	// Files of segments that a crash caught half-deleted or half-truncated.
	if n, err := segment.RemoveLeftovers(l.dir); err != nil {
		return err
	} else if n > 0 {
		l.log.Info("removed leftover segment files", "dir", l.dir, "files", n)
	}
	bases, err := segment.List(l.dir)
	if err != nil {
		return err
	}
	if bases, err = l.dropBelowLogStart(bases); err != nil {
		return err
	}
	rp := l.readOffsetFile(recoveryFile)
	var segs []*segment.Segment
	scanned := make([]bool, 0, len(bases))
	mayTear := make([]bool, 0, len(bases))
	for i, base := range bases {
		last := i == len(bases)-1
		var s *segment.Segment
		// Only segments past the recovery point can have lost bytes in a
		// crash; anything wrong before it is damage from outside.
		torn := !clean && base >= rp
		needScan := torn
		if !needScan {
			s, err = segment.Open(l.dir, base, l.segConfig(), last)
			if errors.Is(err, segment.ErrCorrupt) {
				needScan = true // a clean marker but a bad tail: trust the bytes, not the marker
			} else if err != nil {
				l.closeSegments(segs)
				return err
			} else if s.Size() > 0 && s.NextOffset() == s.BaseOffset() {
				// Bytes but no offsets: the tail was read from a stale
				// index entry past the end of the log. Scan it.
				s.Close()
				needScan = true
			}
		}
		if needScan {
			if s, err = l.recoverSegment(base, last); err != nil {
				l.closeSegments(segs)
				return err
			}
		}
		segs = append(segs, s)
		scanned = append(scanned, needScan)
		mayTear = append(mayTear, torn)
	}
	if segs, err = l.checkContiguous(segs, scanned, mayTear); err != nil {
		l.closeSegments(segs)
		return err
	}
	start := l.readOffsetFile(logStartFile)
	if n := len(segs); n > 0 && start > segs[n-1].NextOffset() {
		// Nothing is left at or above the log start: the log was being
		// started over there (TruncateFullyAndStartAt: the start is
		// written first) or a crash took the tail below a start that
		// DeleteRecords had moved. As in Kafka's LogLoader, every
		// segment goes and the log begins at its start.
		l.log.Warn("log start past the end of the log; starting the log over at its start", "dir", l.dir,
			"log_start", start, "end", segs[n-1].NextOffset(), "removed", n)
		for _, s := range segs {
			err = errors.Join(err, s.Delete())
		}
		if segs = nil; err != nil {
			return err
		}
	}
	if len(segs) == 0 {
		s, err := segment.Create(l.dir, start, l.segConfig())
		if err != nil {
			return err
		}
		l.dirDirty.Store(true)
		segs = append(segs, s)
	}
	l.segs.Store(&segs)
	l.next.Store(segs[len(segs)-1].NextOffset())
	l.start.Store(min(max(l.readOffsetFile(logStartFile), segs[0].BaseOffset()), l.next.Load()))
	l.recovery.Store(rp)
	return nil
}

// dropBelowLogStart removes the files of segments wholly below the persisted
// log start offset: retention or DeleteRecords decided to delete them and a
// crash interrupted it.
func (l *diskLog) dropBelowLogStart(bases []int64) ([]int64, error) {
	start := l.readOffsetFile(logStartFile)
	// A segment goes when the one after it starts at or below the log start:
	// it holds nothing at or above it. (DeleteRecords moves the start into
	// the middle of a segment, which stays.)
	n := 0
	for n+1 < len(bases) && bases[n+1] <= start {
		n++
	}
	for _, base := range bases[:n] {
		l.log.Warn("removing segment below the log start offset", "dir", l.dir, "base", base, "log_start", start)
		for _, suf := range []string{segment.LogSuffix, segment.IndexSuffix, segment.TimeIndexSuffix} {
			if err := os.Remove(filepath.Join(l.dir, segment.FileName(base)+suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	return bases[n:], nil
}

// checkContiguous makes sure every segment ends where the next one begins.
// A segment that may have been torn by the crash (one past the recovery
// point) and ends early lost its tail, so the segments after it hold offsets
// that no longer follow on: they are deleted and the short segment becomes
// the active one, as Kafka does. Any other segment that ends early is
// scanned (if it was not already); if it still ends early (damage from
// outside, not a crash), the hole is kept and logged: reads skip it.
func (l *diskLog) checkContiguous(segs []*segment.Segment, scanned, mayTear []bool) ([]*segment.Segment, error) {
	for i := 0; i+1 < len(segs); i++ {
		s := segs[i]
		if s.NextOffset() == segs[i+1].BaseOffset() {
			continue
		}
		if !mayTear[i] {
			if scanned[i] {
				l.log.Warn("hole in the offsets between segments", "dir", l.dir,
					"end", s.NextOffset(), "next_base", segs[i+1].BaseOffset())
				continue
			}
			base := s.BaseOffset()
			s.Close()
			r, err := l.recoverSegment(base, false)
			if err != nil {
				segs = append(segs[:i], segs[i+1:]...)
				return segs, err
			}
			segs[i], scanned[i] = r, true
			if r.NextOffset() != segs[i+1].BaseOffset() {
				// It was durable before any crash: not a torn tail.
				l.log.Warn("hole in the offsets between segments", "dir", l.dir,
					"end", r.NextOffset(), "next_base", segs[i+1].BaseOffset())
			}
			continue
		}
		// A torn tail: drop everything after it.
		l.log.Warn("segment lost its tail in a crash; removing the segments after it", "dir", l.dir,
			"base", segs[i].BaseOffset(), "end", segs[i].NextOffset(), "removed", len(segs)-i-1)
		var err error
		for _, t := range segs[i+1:] {
			err = errors.Join(err, t.Delete())
		}
		segs = segs[:i+1]
		if err != nil {
			return segs, err
		}
		// Reopen it as the active segment, with writable indexes.
		base := segs[i].BaseOffset()
		segs[i].Close()
		a, err := segment.Open(l.dir, base, l.segConfig(), true)
		if err != nil {
			return segs[:i], err
		}
		segs[i] = a
		return segs, nil
	}
	return segs, nil
}

// recoverSegment opens a segment whose tail may be torn and scans it.
func (l *diskLog) recoverSegment(base int64, last bool) (*segment.Segment, error) {
	s, err := segment.OpenForRecovery(l.dir, base, l.segConfig(), last)
	if err != nil {
		return nil, err
	}
	if _, err := s.Recover(); err != nil {
		s.Close()
		return nil, err
	}
	l.recovered++
	return s, nil
}

// readOffsetFile reads a file holding one decimal offset; a missing or
// unreadable file reads as 0.
func (l *diskLog) readOffsetFile(name string) int64 {
	b, err := os.ReadFile(filepath.Join(l.dir, name))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 {
		return 0 // unreadable: scan everything
	}
	return v
}
