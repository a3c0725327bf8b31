package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/easel-io/easel/internal/fsutil"
	"golang.org/x/sys/unix"
)

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("segment: %w", err)
	}
	return nil
}

// List returns the base offsets of the segments in dir (those with a .log
// file), in increasing order. Index files without a log, .deleted and .tmp
// files are ignored.
func List(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("segment: list: %w", err)
	}
	var bases []int64
	for _, e := range ents {
		base, suffix, ok := parseName(e.Name())
		if !ok || suffix != LogSuffix || e.IsDir() {
			continue
		}
		bases = append(bases, base)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// parseName splits a segment file name into its base offset and everything
// after the 20 digits (".log", ".index.deleted", ...).
func parseName(name string) (base int64, suffix string, ok bool) {
	if len(name) <= 20 {
		return 0, "", false
	}
	for _, c := range name[:20] {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	base, err := strconv.ParseInt(name[:20], 10, 64)
	if err != nil || base < 0 {
		return 0, "", false
	}
	return base, name[20:], true
}

// RemoveLeftovers removes the segment files in dir that a crash (or a
// failed operation) left behind: .deleted files, .tmp files of an
// unfinished TruncateTo, and index files whose segment has no .log (a crash
// in the middle of a Delete). It returns how many files it removed. Other
// files, and segments with a .log, are left alone. Call it when opening a
// partition directory, before opening its segments and not concurrently
// with any other operation on them. The removals are not synced: a crash
// may bring some back, for the next call to remove.
func RemoveLeftovers(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("segment: remove leftovers: %w", err)
	}
	logs := make(map[int64]bool)
	for _, e := range ents {
		if base, suffix, ok := parseName(e.Name()); ok && suffix == LogSuffix {
			logs[base] = true
		}
	}
	n := 0
	for _, e := range ents {
		base, suffix, ok := parseName(e.Name())
		if !ok || e.IsDir() || !isLeftover(suffix, logs[base]) {
			continue
		}
		if err := removeIfExists(filepath.Join(dir, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// isLeftover reports whether a segment file with this suffix is a leftover;
// haveLog says whether its segment's .log exists.
func isLeftover(suffix string, haveLog bool) bool {
	for _, suf := range suffixes {
		switch suffix {
		case suf + DeletedSuffix, suf + tmpSuffix:
			return true
		case suf:
			return suf != LogSuffix && !haveLog
		}
	}
	return false
}

// syncDir fsyncs a directory, making the creations, renames and removals
// of names in it durable.
func syncDir(dir string) error {
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("segment: fsync %s: %w", dir, err)
	}
	return nil
}

// syncPath fsyncs the file at path.
func syncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("segment: fsync %s: %w", path, err)
	}
	return nil
}

// createTemp creates path for writing, replacing a leftover of an earlier
// attempt.
func createTemp(path string) (*os.File, error) {
	if err := removeIfExists(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	return f, nil
}

// copyFileRange is unix.CopyFileRange; tests replace it to exercise the
// fallback.
var copyFileRange = unix.CopyFileRange

// errShortCopy: copy_file_range stopped early (some file systems copy
// nothing and return 0); the buffered copy takes over.
var errShortCopy = errors.New("segment: copy_file_range copied nothing")

// copyPrefix copies the first n bytes of src to the start of dst: in the
// kernel with copy_file_range where the file system supports it (no copy
// through user space; a shared extent on XFS or Btrfs), else through a
// buffer with pread/pwrite. Neither file's seek offset is used or moved, so
// src may be read concurrently.
func copyPrefix(dst, src *os.File, n int64) error {
	var off int64
	err := withFds(src, dst, func(rfd, wfd int) error {
		for off < n {
			roff, woff := off, off
			m, err := copyFileRange(rfd, &roff, wfd, &woff, int(min(n-off, 1<<30)), 0)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				return err
			case m <= 0:
				return errShortCopy
			}
			off += int64(m)
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errShortCopy), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EXDEV),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EPERM):
		// Not supported here: copy the rest through user space.
	default:
		return fmt.Errorf("segment: copy_file_range: %w", err)
	}
	m, err := io.Copy(io.NewOffsetWriter(dst, off), io.NewSectionReader(src, off, n-off))
	if err == nil && m != n-off {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("segment: copy: %w", err)
	}
	return nil
}

// withFds runs fn with the descriptors of two files.
func withFds(a, b *os.File, fn func(afd, bfd int) error) error {
	ra, err := a.SyscallConn()
	if err != nil {
		return err
	}
	rb, err := b.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = ra.Control(func(afd uintptr) {
		err := rb.Control(func(bfd uintptr) { ferr = fn(int(afd), int(bfd)) })
		if err != nil {
			ferr = err
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
