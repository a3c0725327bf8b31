package broker

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/easel-io/easel/internal/fsutil"
)

// Files the broker keeps in Config.DataDir. Their names and formats are
// frozen: they are read back after an upgrade.
const (
	clusterIDFile  = "broker.cluster-id"  // the cluster id, text, written once
	producerIDFile = "broker.producer-id" // decimal int64 + "\n": no id >= it was handed out
)

// pidBlock is how many producer ids are reserved on disk at a time, as
// Kafka's controller hands out blocks of 1000.
const pidBlock = 1000

// defaultClusterID is the cluster id when there is no DataDir to keep one.
const defaultClusterID = "easel"

// loadClusterID returns the cluster id kept in dir, creating a random one
// (22 characters of base64url, like Kafka's) on first use. Failures are
// logged and give a random id for this run (or the constant when dir is "").
func loadClusterID(dir string, log *slog.Logger) string {
	if dir == "" {
		return defaultClusterID
	}
	path := filepath.Join(dir, clusterIDFile)
	if b, err := os.ReadFile(path); err == nil {
		if id := string(bytes.TrimSpace(b)); id != "" && len(id) <= 128 {
			return id
		}
		log.Warn("broker: ignoring malformed cluster id file", "path", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("broker: cannot read cluster id", "path", path, "err", err)
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := fsutil.WriteFileAtomic(path, []byte(id+"\n"), true); err != nil {
		log.Warn("broker: cannot persist cluster id; it will change on restart", "path", path, "err", err)
	}
	return id
}

// pidAllocator hands out producer ids that are never reused, also across
// restarts: before an id of a new block is handed out, the block's end is
// written to producerIDFile.
type pidAllocator struct {
	path string // "" when there is no DataDir

	mu struct {
		sync.Mutex
		loaded bool
		// Invariant: next <= limit; every id < limit may have been handed
		// out by an earlier run or this one, none >= limit has.
		next, limit int64
	}
}

func (a *pidAllocator) init(dir string) {
	if dir != "" {
		a.path = filepath.Join(dir, producerIDFile)
	}
}

// load reads the persisted limit on first use. Caller holds mu.
func (a *pidAllocator) loadLocked() error {
	if a.mu.loaded {
		return nil
	}
	if a.path == "" {
		// No place to persist: start from the clock in microseconds, which
		// grows faster than any real producer churn.
		a.mu.next, a.mu.limit = max(time.Now().UnixMicro(), 1), math.MaxInt64
		a.mu.loaded = true
		return nil
	}
	b, err := os.ReadFile(a.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		a.mu.next, a.mu.limit = 1, 1 // Easel never hands out producer id 0
	case err != nil:
		return fmt.Errorf("%w: %v", errProducerIDSource, err)
	default:
		n, perr := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if perr != nil || n < 1 || n > math.MaxInt64-pidBlock {
			return fmt.Errorf("%w: %s is malformed (%q)", errProducerIDSource, a.path, b)
		}
		a.mu.next, a.mu.limit = n, n
	}
	a.mu.loaded = true
	return nil
}

// alloc returns a producer id never handed out before.
func (a *pidAllocator) alloc() (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.loadLocked(); err != nil {
		return 0, err
	}
	if a.mu.next >= a.mu.limit {
		if a.mu.limit > math.MaxInt64-pidBlock {
			return 0, fmt.Errorf("%w: producer ids exhausted", errProducerIDSource)
		}
		limit := a.mu.next + pidBlock
		if err := fsutil.WriteFileAtomic(a.path, []byte(strconv.FormatInt(limit, 10)+"\n"), true); err != nil {
			return 0, fmt.Errorf("%w: %v", errProducerIDSource, err)
		}
		a.mu.limit = limit
	}
	id := a.mu.next
	a.mu.next++
	return id, nil
}

// LegacyState reads what a single-node broker kept in dir (Config.DataDir)
// before it was a member of a cluster: its cluster id ("" if it kept none)
// and the first producer id it had not handed out (0 if it kept none), for
// the metadata log to take over (cluster.Policy.InitCluster).
func LegacyState(dir string) (clusterID string, nextProducerID int64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterIDFile))
	switch {
	case err == nil:
		if id := string(bytes.TrimSpace(b)); id != "" && len(id) <= 128 {
			clusterID = id
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", 0, fmt.Errorf("broker: reading the cluster id: %w", err)
	}
	var a pidAllocator
	a.init(dir)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.loadLocked(); err != nil {
		return "", 0, err
	}
	if a.mu.limit > 1 {
		nextProducerID = a.mu.limit
	}
	return clusterID, nextProducerID, nil
}
