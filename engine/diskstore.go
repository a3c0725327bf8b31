package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/easel-io/easel/internal/fsutil"
	"github.com/easel-io/easel/segment"
)

// DiskStore keeps each partition log as a directory of mmap-indexed segment
// files under one root directory. It is the default Store.
type DiskStore struct {
	dir string
	seg segment.Config
	log *slog.Logger // set by the engine that creates the store; nil: slog.Default()
	// obs, set by the engine that creates the store, is told how long each
	// rolled segment's fsync took.
	obs Observer
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

// Suffixes of partition directories that are not logs any more, as Kafka
// names them: being deleted, and set aside.
const (
	deleteSuffix = "-delete"
	straySuffix  = "-stray"
)

// RemoveLog deletes a partition directory: it is first renamed to
// "<name>.<nanos>-delete" (durably), so that a crash in the middle of the
// removal cannot leave a half-deleted log under the log's name, and a new
// log of the same name can start at once; RemoveLeftovers finishes what a
// crash interrupted.
func (d *DiskStore) RemoveLog(name string) error {
	tmp, err := d.moveAside(name, strconv.FormatInt(time.Now().UnixNano(), 10)+deleteSuffix)
	if err == nil && tmp != "" {
		err = os.RemoveAll(tmp)
	}
	if err != nil {
		return fmt.Errorf("engine: remove log %s: %w", name, err)
	}
	return nil
}

// SetAsideLog renames a partition directory to "<name>.<tag>-stray" (with a
// number added if that exists), as Kafka does with stray logs (KIP-858).
func (d *DiskStore) SetAsideLog(name, tag string) error {
	if tag == "" {
		tag = "unknown"
	}
	if _, err := d.moveAside(name, tag+straySuffix); err != nil {
		return fmt.Errorf("engine: set aside log %s: %w", name, err)
	}
	return nil
}

// moveAside renames dir/name to dir/name.suffix (or name.suffix.N if taken)
// and fsyncs dir. It returns the new path, or "" if there was no log.
func (d *DiskStore) moveAside(name, suffix string) (string, error) {
	from := filepath.Join(d.dir, name)
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	to := from + "." + suffix
	for i := 1; ; i++ {
		if _, err := os.Stat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = from + "." + suffix + "." + strconv.Itoa(i)
	}
	if err := os.Rename(from, to); err != nil {
		return "", err
	}
	return to, fsutil.SyncDir(d.dir)
}

// RemoveLeftovers removes the partition directories a crash left half
// deleted ("...-delete"). It returns how many it removed.
func (d *DiskStore) RemoveLeftovers() (int, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return 0, fmt.Errorf("engine: %w", err)
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), deleteSuffix) {
			if err := os.RemoveAll(filepath.Join(d.dir, e.Name())); err != nil {
				return n, fmt.Errorf("engine: %w", err)
			}
			n++
		}
	}
	return n, nil
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
	l := &diskLog{dir: dir, seg: d.seg, log: lg, obs: d.obs}
	l.cfg.Store(&cfg)
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
