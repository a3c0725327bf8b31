package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/easel-io/easel/internal/fsutil"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// The crash-safe segment swap of log compaction (RewriteSegments), in the
// partition directory:
//
//	cleaner.tmp/<from>.log, .index, .timeindex, swap-manifest   being written; removed at open (undo)
//	cleaner.swap/...                                            committed; the open finishes the swap
//
// swap-manifest is one line, "<from> <to> <size> <sum> <check>\n" (sum
// the xxhash64 of the new .log, check that of the text before it, both in
// hex): the new segment of size bytes replaces the old segments with base
// offsets in [from, to). Steps: write and fsync the new segment and the manifest in
// cleaner.tmp; rename cleaner.tmp to cleaner.swap and fsync the partition
// directory (the commit); delete the old segments, the one at from first;
// move the new segment's files into the partition directory, its .log last;
// remove cleaner.swap. At open (finishSwap), a cleaner.swap whose segment
// is still inside is checked (every batch's CRC) and moved in after the
// old segments in [from, to) are removed; if it is damaged while the old
// segment at from is still there (and so, deleted in order, all of them),
// the swap is undone instead. The directory names and the manifest line are
// frozen: they are on-disk state.
const (
	cleanerTmpDir  = "cleaner.tmp"
	cleanerSwapDir = "cleaner.swap"
	swapManifest   = "swap-manifest"
)

// swapManifestInfo is what a swap manifest says.
type swapManifestInfo struct {
	from, to, size int64
	sum            uint64
}

func (m swapManifestInfo) line() string {
	body := fmt.Sprintf("%d %d %d %x", m.from, m.to, m.size, m.sum)
	return body + " " + strconv.FormatUint(xxhash.Sum64String(body), 16) + "\n"
}

// parseManifest reads a swap manifest; ok is false if it is not one.
func parseManifest(b []byte) (m swapManifestInfo, ok bool) {
	f := strings.Fields(string(b))
	if len(f) != 5 {
		return m, false
	}
	var err [4]error
	m.from, err[0] = strconv.ParseInt(f[0], 10, 64)
	m.to, err[1] = strconv.ParseInt(f[1], 10, 64)
	m.size, err[2] = strconv.ParseInt(f[2], 10, 64)
	m.sum, err[3] = strconv.ParseUint(f[3], 16, 64)
	if errors.Join(err[:]...) != nil || m.from < 0 || m.to <= m.from || m.size < 0 || m.line() != string(b) {
		return swapManifestInfo{}, false
	}
	return m, true
}

// fileSum returns the size and xxhash64 of a file.
func fileSum(path string) (int64, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	d := xxhash.New()
	n, err := io.Copy(d, f)
	return n, d.Sum64(), err
}

// RewriteSegments replaces segments through the swap described above; see
// SegmentRewriter.
func (l *diskLog) RewriteSegments(from, to int64, write func(add func([]byte) error) error) error {
	name := filepath.Base(l.dir)
	if _, _, err := segmentRange(l.segments(), from, to); err != nil {
		return err
	}
	tmp := filepath.Join(l.dir, cleanerTmpDir)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("engine: compact %s: %w", name, err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("engine: compact %s: %w", name, err)
	}
	built, err := l.buildSegment(tmp, from, to, write)
	if err == nil {
		var m swapManifestInfo
		m.from, m.to = from, to
		if m.size, m.sum, err = fileSum(filepath.Join(tmp, segment.FileName(from)+segment.LogSuffix)); err == nil {
			err = fsutil.WriteFileAtomic(filepath.Join(tmp, swapManifest), []byte(m.line()), true)
		}
	}
	if err == nil {
		err = fsutil.SyncDir(tmp)
	}
	if err == nil {
		// The commit: from here on the new segment replaces the old ones,
		// now or at the next open.
		err = l.step("built")
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(l.dir, cleanerSwapDir))
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	swap := filepath.Join(l.dir, cleanerSwapDir)
	if err := errors.Join(fsutil.SyncDir(l.dir), l.step("committed")); err != nil {
		return fmt.Errorf("engine: compact %s: %w", name, err)
	}
	s, err := segment.Open(swap, from, l.seg, false)
	if err != nil {
		return fmt.Errorf("engine: compact %s: open the swapped segment (the next open finishes the swap): %w", name, err)
	}
	if s.NextOffset() != built {
		s.Close()
		return fmt.Errorf("engine: compact %s: swapped segment ends at %d, written to %d", name, s.NextOffset(), built)
	}
	l.listMu.Lock()
	segs := l.segments()
	i, j, err := segmentRange(segs, from, to)
	if err != nil {
		l.listMu.Unlock()
		s.Close()
		return err
	}
	old := segs[i:j:j]
	next := append(append(append(make([]*segment.Segment, 0, len(segs)-len(old)+1), segs[:i]...), s), segs[j:]...)
	l.segs.Store(&next)
	l.listMu.Unlock()
	// Oldest first: while the old segment at from is on disk, all are.
	for k, o := range old {
		err := o.Delete()
		if err == nil && k == 0 {
			err = l.step("deleted-first")
		}
		if err != nil {
			return fmt.Errorf("engine: compact %s (the next open finishes the swap): %w", name, err)
		}
	}
	err = l.step("deleted")
	if err == nil {
		err = s.MoveTo(l.dir)
	}
	if err == nil {
		err = l.step("moved")
	}
	if err != nil {
		return fmt.Errorf("engine: compact %s (the next open finishes the swap): %w", name, err)
	}
	if err := os.RemoveAll(swap); err != nil {
		return fmt.Errorf("engine: compact %s: %w", name, err)
	}
	return nil
}

// step is a point of the swap where tests stop it (diskLog.swapStep) to
// leave the directory as a crash there would.
func (l *diskLog) step(name string) error {
	if l.swapStep == nil {
		return nil
	}
	return l.swapStep(name)
}

// buildSegment writes the new segment into dir and returns its end offset.
// Its indexes have the usual size, so that recovery can rebuild them: a
// group that does not fit fails with segment.ErrFull (the cleaner then
// cleans its segments one by one; one segment's cleaned copy always fits).
func (l *diskLog) buildSegment(dir string, from, to int64, write func(add func([]byte) error) error) (int64, error) {
	cfg := l.seg
	cfg.MaxBytes = math.MaxInt64 // the cleaner sizes groups by segment.bytes
	cfg.Preallocate = false
	s, err := segment.Create(dir, from, cfg)
	if err != nil {
		return 0, err
	}
	prev := from
	err = write(func(b []byte) error {
		h, err := record.ValidateStored(b)
		if err != nil {
			return err
		}
		if h.BaseOffset < prev || h.LastOffset() >= to {
			return fmt.Errorf("%w: rewritten batch [%d, %d] after %d, segments end at %d", ErrNotContiguous, h.BaseOffset, h.LastOffset(), prev, to)
		}
		prev = h.LastOffset() + 1
		return s.Append(b, h)
	})
	if err == nil {
		err = s.Seal()
	}
	if err == nil {
		err = s.Sync()
	}
	end := s.NextOffset()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return end, err
}

// segmentRange returns the indexes of the segments based at from and at
// to (so to is never past the active segment's base).
func segmentRange(segs []*segment.Segment, from, to int64) (int, int, error) {
	i, j := findSegment(segs, from), findSegment(segs, to)
	if i < 0 || j <= i || segs[i].BaseOffset() != from || segs[j].BaseOffset() != to {
		return 0, 0, fmt.Errorf("engine: rewrite [%d, %d): not segment bounds of the log", from, to)
	}
	return i, j, nil
}

// finishSwap completes or undoes a segment swap that a crash interrupted
// (see the top of this file). It runs at open, before the segments are
// listed.
func (l *diskLog) finishSwap() error {
	tmp := filepath.Join(l.dir, cleanerTmpDir)
	if _, err := os.Stat(tmp); err == nil {
		l.log.Warn("undoing an uncommitted compaction swap", "dir", l.dir)
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	swap := filepath.Join(l.dir, cleanerSwapDir)
	if _, err := os.Stat(swap); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	bases, err := segment.List(swap)
	if err != nil {
		return err
	}
	if len(bases) > 0 {
		if err := l.finishSwapOf(swap, bases[0]); err != nil {
			return err
		}
	}
	// Moved in (or undone): what is left is the manifest and leftovers.
	if err := os.RemoveAll(swap); err != nil {
		return err
	}
	return fsutil.SyncDir(l.dir)
}

// finishSwapOf finishes the swap of the committed segment at base in swap.
func (l *diskLog) finishSwapOf(swap string, base int64) error {
	b, err := os.ReadFile(filepath.Join(swap, swapManifest))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	m, ok := parseManifest(b)
	logPath := filepath.Join(swap, segment.FileName(base)+segment.LogSuffix)
	if ok {
		size, sum, err := fileSum(logPath)
		if err != nil {
			return err
		}
		ok = m.from == base && size == m.size && sum == m.sum
	}
	_, statErr := os.Stat(filepath.Join(l.dir, segment.FileName(base)+segment.LogSuffix))
	oldThere := statErr == nil
	if !ok && oldThere {
		l.log.Warn("undoing a damaged compaction swap; the old segments are whole", "dir", l.dir, "base", base)
		return nil
	}
	// Scan it whole: CRCs, and indexes rebuilt.
	s, err := segment.OpenForRecovery(swap, base, l.seg, false)
	if err != nil {
		return err
	}
	cut, err := s.Recover()
	end := s.NextOffset()
	s.Close()
	if err != nil {
		return err
	}
	to := m.to
	if ok && cut == 0 && end <= to {
		l.log.Info("finishing an interrupted compaction swap", "dir", l.dir, "from", base, "to", to)
	} else {
		// The old segments are (partly) gone: what the swap holds is all
		// there is of them.
		l.log.Error("compaction swap damaged after its old segments went; keeping what it holds", "dir", l.dir,
			"base", base, "end", end, "manifest_ok", ok, "bytes_cut", cut)
		to = end
	}
	olds, err := segment.List(l.dir)
	if err != nil {
		return err
	}
	for _, o := range olds {
		if o < base || o >= to {
			continue
		}
		for _, suf := range []string{segment.LogSuffix, segment.IndexSuffix, segment.TimeIndexSuffix} {
			if err := os.Remove(filepath.Join(l.dir, segment.FileName(o)+suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := fsutil.SyncDir(l.dir); err != nil {
		return err
	}
	for _, suf := range []string{segment.IndexSuffix, segment.TimeIndexSuffix, segment.LogSuffix} {
		n := segment.FileName(base) + suf
		if err := os.Rename(filepath.Join(swap, n), filepath.Join(l.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return fsutil.SyncDir(l.dir)
}
