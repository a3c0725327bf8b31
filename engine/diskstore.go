package engine

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/easel-io/easel/segment"
)

// DiskStore keeps each partition log as a directory of mmap-indexed segment
// files under one root directory. It is the default Store.
type DiskStore struct {
	dir string
	seg segment.Config
	log *slog.Logger // set by the engine that creates the store; nil: slog.Default()
}

var _ Store = (*DiskStore)(nil)

// NewDiskStore returns a store rooted at dir, which must exist. seg holds
// the segment settings not set per topic (index sizes and interval).
func NewDiskStore(dir string, seg segment.Config) *DiskStore {
	return &DiskStore{dir: dir, seg: seg}
}

// Logs lists the partition directories ("<topic>-<partition>").
func (d *DiskStore) Logs() ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, _, err := splitLogName(e.Name()); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveLog deletes a partition directory.
func (d *DiskStore) RemoveLog(name string) error {
	if err := os.RemoveAll(filepath.Join(d.dir, name)); err != nil {
		return fmt.Errorf("engine: remove log %s: %w", name, err)
	}
	return nil
}

// OpenLog opens or creates a partition directory and its segments. After an
// unclean shutdown, segments from the recovery point on are scanned and torn
// tails cut; after a clean one only the tail of each segment after its last
// index entry is read.
func (d *DiskStore) OpenLog(name string, cfg LogConfig, clean bool) (Log, error) {
	dir := filepath.Join(d.dir, name)
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: open log %s: %w", name, err)
	}
	lg := d.log
	if lg == nil {
		lg = slog.Default()
	}
	l := &diskLog{dir: dir, cfg: cfg, seg: d.seg, log: lg}
	l.seg.MaxBytes = cfg.SegmentBytes
	if l.seg.Now == nil {
		l.seg.Now = time.Now
	}
	if statErr != nil {
		// A new directory: its entry in the parent must be durable before
		// anything in it is called durable.
		l.parentDirty.Store(true)
	}
	if err := l.load(clean); err != nil {
		l.closeSegments(l.segments())
		return nil, fmt.Errorf("engine: open log %s: %w", name, err)
	}
	return l, nil
}

// splitLogName splits "<topic>-<partition>" at the last dash.
func splitLogName(name string) (string, int32, error) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, fmt.Errorf("engine: bad log name %q", name)
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, fmt.Errorf("engine: bad log name %q", name)
	}
	return name[:i], int32(p), nil
}

// logName is the directory name of a partition.
func logName(topic string, partition int32) string {
	return topic + "-" + strconv.FormatInt(int64(partition), 10)
}
