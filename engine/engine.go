package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/internal/fsutil"
	"github.com/easel-io/easel/segment"
)

// Sentinel errors, for errors.Is. Errors from the record and codec packages
// (record.ErrCorrupt, record.ErrInvalid, codec.ErrUnknownCodec) are wrapped
// and pass through too.
var (
	ErrClosed           = errors.New("engine: closed")
	ErrUnknownTopic     = errors.New("engine: unknown topic")
	ErrUnknownPartition = errors.New("engine: unknown partition")
	ErrTopicExists      = errors.New("engine: topic already exists")
	ErrInvalidTopic     = errors.New("engine: invalid topic name")
	ErrInvalidConfig    = errors.New("engine: invalid topic config")
	ErrOffsetOutOfRange = errors.New("engine: offset out of range")
	ErrMessageTooLarge  = errors.New("engine: batch larger than max.message.bytes")
	// ErrInvalidTimestamp: a record's timestamp is outside the topic's
	// message.timestamp.before.max.ms / after.max.ms (Kafka's
	// INVALID_TIMESTAMP).
	ErrInvalidTimestamp     = errors.New("engine: record timestamp out of the allowed range")
	ErrOutOfOrderSequence   = errors.New("engine: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("engine: producer epoch is older than the current one")
	// ErrNotLeader is returned by Append on a follower replica (see
	// Partition.BecomeFollower). Kafka: NOT_LEADER_OR_FOLLOWER.
	ErrNotLeader = errors.New("engine: partition is not the leader")
	// ErrFencedLeaderEpoch is returned when a leader epoch older than the
	// partition's current one is used: a stale leader or replica.
	ErrFencedLeaderEpoch = errors.New("engine: leader epoch is older than the current one")
	// ErrBelowHighWatermark is returned by TruncateTo when asked to cut
	// committed records without allowing it.
	ErrBelowHighWatermark = errors.New("engine: truncation below the high watermark")
	// ErrNotContiguous is returned by AppendReplica for batches that start
	// below the log end or whose offsets or epochs go back.
	ErrNotContiguous = errors.New("engine: replica batches do not follow the log")
	// ErrTopicBusy is returned for a topic that is being created or deleted
	// by another call right now.
	ErrTopicBusy = errors.New("engine: topic is being created or deleted")
	// ErrExternalMetadata is returned by CreateTopic and DeleteTopic of an
	// engine whose topic metadata the caller owns (Options.ExternalMetadata).
	ErrExternalMetadata = errors.New("engine: topic metadata is owned by the caller")
	// ErrLogFailed is returned by Append and Flush after an fsync of the
	// partition failed: what was acknowledged may not be on disk, so the
	// partition takes no more appends until the engine is reopened (Kafka:
	// KAFKA_STORAGE_ERROR).
	ErrLogFailed = errors.New("engine: partition log failed")
)

// ConsumerOffsetsTopic is the internal topic holding committed offsets and
// group metadata. Package group owns its contents; the engine only marks it
// internal (TopicInfo.Internal).
const ConsumerOffsetsTopic = "__consumer_offsets"

// isInternalTopic reports the names Kafka treats as internal.
func isInternalTopic(name string) bool {
	return name == ConsumerOffsetsTopic || name == "__transaction_state"
}

const (
	metaDir     = ".meta"
	cleanMarker = ".clean-shutdown"
)

// Options configures an Engine. The zero value is valid.
type Options struct {
	// Defaults fills the zero fields of every created topic's config;
	// its own zero fields take DefaultTopicConfig's values.
	Defaults TopicConfig
	// Store is the storage backend. Default: a DiskStore in the engine's
	// directory with Segment's settings.
	Store Store
	// Segment sets the index sizes and index interval of DiskStore segments
	// (segment.index.bytes, index.interval.bytes). Default: Kafka's.
	Segment segment.Config
	// RetentionCheckInterval is log.retention.check.interval.ms: how often
	// retention and compaction run. Default 5 minutes. Negative disables the background
	// pass (EnforceRetention still works).
	RetentionCheckInterval time.Duration
	// HWCheckpointInterval is replica.high.watermark.checkpoint.interval.ms:
	// how often moved high watermarks are written to the data directory's
	// replication-offset-checkpoint (also written on Close). Default 5 s;
	// negative: only on Close. A longer interval means that after a crash a
	// managed high watermark (see Partition.ManageHighWatermark) may restart
	// further back.
	HWCheckpointInterval time.Duration
	// ManagedHighWatermarks hands every partition's high watermark to the
	// replica layer: it starts at the checkpointed value (or the log start)
	// and moves only by Partition.SetHighWatermark. Default false: each
	// partition is its own only replica and its high watermark follows the
	// log end.
	ManagedHighWatermarks bool
	// ExternalMetadata says the caller owns topic metadata (in a cluster,
	// the controller's metadata log): the engine keeps no .meta files,
	// opens no partition at Open, hosts those it is given with
	// HostPartition, and sets aside unclaimed logs only when told
	// (SetAsideUnhosted). Default false: the engine owns its topics
	// (CreateTopic, DeleteTopic) and hosts all their partitions.
	ExternalMetadata bool
	// CleanerDedupeBufferSize is log.cleaner.dedupe.buffer.size: the memory
	// of log compaction's key map (24 bytes a key; one map, as compaction
	// runs one partition at a time). A pass maps as many keys as fit and
	// cleans up to there; a batch with more records than fit at all fails
	// with ErrCleanerBuffer. Default 128 MiB (Kafka's). The map is sized
	// for the log at hand, so a small log never takes it all.
	CleanerDedupeBufferSize int64
	// CleanerIOMaxBytesPerSecond is log.cleaner.io.max.bytes.per.second:
	// the bytes compaction reads and writes per second, at most. Default
	// 0: no limit (Kafka's default is Double.MAX_VALUE). A low limit makes
	// a pass long, and truncations of a partition being cleaned stop it.
	CleanerIOMaxBytesPerSecond float64
	// Logger receives the engine's log lines. Default slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told of appends and fsyncs, for metrics.
	Observer Observer
	// Now is the clock (timestamps, segment.ms, flush.ms bookkeeping), for
	// tests. Default time.Now. Timers and tickers (flush.ms, retention,
	// checkpoints) run on real time.
	Now func() time.Time
}

// Engine is an open data directory. See the package doc.
type Engine struct {
	dir   string
	opts  Options
	store Store
	clean bool // the previous shutdown was clean
	log   *slog.Logger

	// mu guards the registry of hosted partitions. It is held only to look
	// up or swap entries, never during I/O.
	mu struct {
		sync.RWMutex
		topics map[string]*topic
		// busy names topics being created or deleted (the I/O runs
		// without mu); they are neither usable nor creatable meanwhile.
		busy   map[string]bool
		closed bool
	}
	stop chan struct{}
	wg   sync.WaitGroup
	// cfgMu serialises SetTopicConfig calls (their metadata writes run
	// without mu).
	cfgMu sync.Mutex

	// hwCkpt serialises writes of the high watermark checkpoint and keeps
	// what was last written, to skip writes when nothing moved.
	hwCkpt struct {
		sync.Mutex
		last map[TopicPartition]int64
	}
	// hwAtOpen holds the checkpointed high watermarks read at Open.
	hwAtOpen map[TopicPartition]int64

	// ctrs holds each topic's counters (counters.go); entries are never
	// removed.
	ctrs struct {
		sync.Mutex
		m map[string]*TopicCounters
	}
	// cleaner is log compaction's shared state (one pass at a time).
	cleaner *cleaner
}

// topic is one topic's hosted partitions.
type topic struct {
	name   string
	id     TopicID
	cfg    TopicConfig
	parts  []*Partition // index = partition number; nil where not hosted here
	policy CleanupPolicy
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name     string
	Config   TopicConfig // Config.Partitions is the partition count
	Internal bool        // an internal topic such as __consumer_offsets
	ID       TopicID     // the topic's unique id (KIP-516)
}

// Open opens the data directory dir, creating it if needed, and loads every
// topic. After an unclean shutdown, partitions are recovered: segments after
// each partition's recovery point are scanned and torn tails cut.
func Open(dir string, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetentionCheckInterval == 0 {
		opts.RetentionCheckInterval = 5 * time.Minute
	}
	if opts.HWCheckpointInterval == 0 {
		opts.HWCheckpointInterval = DefaultHWCheckpointInterval
	}
	opts.Defaults = opts.Defaults.withDefaults(DefaultTopicConfig())
	if err := opts.Defaults.Validate(); err != nil {
		return nil, fmt.Errorf("engine: defaults: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, metaDir), 0o755); err != nil {
		return nil, fmt.Errorf("engine: open: %w", err)
	}
	e := &Engine{dir: dir, opts: opts, store: opts.Store, log: opts.Logger, stop: make(chan struct{})}
	e.cleaner = newCleaner(opts, e.stop)
	if e.store == nil {
		if opts.Segment.Now == nil {
			opts.Segment.Now = opts.Now // segment.ms measures with the engine's clock
		}
		ds := NewDiskStore(dir, opts.Segment)
		ds.log, ds.obs = opts.Logger, opts.Observer
		e.store = ds
		if n, err := ds.RemoveLeftovers(); err != nil {
			return nil, err
		} else if n > 0 {
			e.log.Info("removed partition logs a crash left half deleted", "logs", n)
		}
	}
	e.mu.topics = make(map[string]*topic)
	e.mu.busy = make(map[string]bool)
	marker := filepath.Join(dir, cleanMarker)
	if _, err := os.Stat(marker); err == nil {
		e.clean = true
		// From now on the directory is in use: a crash must be detected.
		if err := os.Remove(marker); err != nil {
			return nil, fmt.Errorf("engine: open: %w", err)
		}
		if err := fsutil.SyncDir(dir); err != nil {
			return nil, fmt.Errorf("engine: open: %w", err)
		}
	}
	start := time.Now()
	e.hwAtOpen = e.loadHWCheckpoint()
	e.hwCkpt.last = e.hwAtOpen
	if err := e.loadTopics(); err != nil {
		e.closeTopics()
		return nil, err
	}
	e.log.Info("engine opened", "dir", dir, "topics", len(e.mu.topics), "clean", e.clean, "took", time.Since(start))
	if opts.RetentionCheckInterval > 0 {
		e.goFunc(e.retentionLoop)
	}
	if opts.HWCheckpointInterval > 0 {
		e.goFunc(e.hwCheckpointLoop)
	}
	return e, nil
}

// goFunc starts a goroutine that Close waits for.
func (e *Engine) goFunc(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// ioWorkers bounds the goroutines that open or close partitions at once.
// Opening and closing are mostly waiting on the file system (fsyncs, file
// creation), which serves many requests at once far better than one by one.
const ioWorkers = 64

// parallel calls f(0) ... f(n-1) on up to ioWorkers goroutines and returns
// every error, joined.
func parallel(n int, f func(i int) error) error {
	if n == 1 {
		return f(0)
	}
	var (
		mu   sync.Mutex
		errs []error
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(n, ioWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats counts what an open engine holds, summed over all partitions.
type Stats struct {
	Topics, Partitions int
	LogStats
}

// Stats reports the engine's resource use.
func (e *Engine) Stats() Stats {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var s Stats
	for _, t := range e.mu.topics {
		s.Topics++
		for _, p := range t.parts {
			if p == nil {
				continue
			}
			s.Partitions++
			s.add(p.log.Stats())
		}
	}
	return s
}

// Close flushes every partition, closes all files and writes the
// clean-shutdown marker, so the next Open skips recovery. Every method of a
// closed engine returns ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.mu.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.mu.closed = true
	e.mu.Unlock()
	close(e.stop)
	e.wg.Wait()
	err := errors.Join(e.closeTopics(), e.checkpointHW())
	if err != nil {
		return err
	}
	if _, ok := e.store.(*DiskStore); ok {
		if err := fsutil.WriteFileAtomic(filepath.Join(e.dir, cleanMarker), nil, true); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) closeTopics() error {
	parts := e.allPartitions()
	return parallel(len(parts), func(i int) error { return parts[i].close() })
}

// allPartitions returns every open partition.
func (e *Engine) allPartitions() []*Partition {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var parts []*Partition
	for _, t := range e.mu.topics {
		for _, p := range t.parts {
			if p != nil {
				parts = append(parts, p)
			}
		}
	}
	return parts
}
