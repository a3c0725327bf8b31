// Package fsutil holds the small file-system helpers that Easel's packages
// share: replacing a file atomically and making a directory entry durable.
//
// WriteFileAtomic writes path+".tmp" and renames it over path, so a reader
// sees the old content or the new, never a mix. The ".tmp" name is part of
// every caller's directory layout: a crash may leave one behind, and the
// next write replaces it.
package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data through a temporary file
// (path+".tmp") and a rename, so that a reader sees the old or the new
// content, never a mix. With sync, the file is fsynced before the rename and
// the directory after it, so the new content survives a machine crash once
// WriteFileAtomic returns; without, a machine crash may leave the old
// content, or an empty or torn file (callers that skip sync must check what
// they read). The temporary file is removed on failure. Errors name path.
func WriteFileAtomic(path string, data []byte, sync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("fsutil: write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && sync {
		err = SyncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fsutil: write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the creations, renames and removals of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
