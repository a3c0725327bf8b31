// Package engine is Easel's storage engine and its embedded Go API: topics of
// partitions, each an append-only log of Kafka record batches (v2), with
// offset and timestamp reads, committed consumer offsets, idempotent
// producer state, retention and durability policies.
//
//	e, err := engine.Open("data", engine.Options{})
//	err = e.CreateTopic("events", engine.TopicConfig{Partitions: 3})
//	offs, err := e.Produce("events", codec.Zstd, record.Record{Key: k, Value: v})
//	p, err := e.Partition("events", 0)
//	it := p.Records(0)
//	for it.Next() { use(it.Record()) }
//	err = it.Close()
//	err = e.Close()
//
// On disk (DiskStore, the default), the data directory holds:
//
//	<dir>/.meta/<topic>.json        topic settings (JSON, written atomically and fsynced)
//	<dir>/.clean-shutdown           present only while the engine is cleanly closed
//	<dir>/<topic>-<partition>/      one partition:
//	    <20-digit base>.log, .index, .timeindex   segments (see package segment)
//	    recovery-point              decimal base offset + "\n": segments below it are durable
//	    log-start-offset            decimal offset + "\n": retention deleted everything below
//	    producers.snapshot          idempotent producer state (layout at producerSnapshotName)
//
// Recovery: Open removes the clean-shutdown marker at once, so a crash of
// this engine is always noticed. After an unclean shutdown every segment
// from each partition's recovery point on is scanned (CRC of every batch),
// its indexes rebuilt and a torn tail cut; a segment that lost its tail
// takes the segments after it along (their offsets no longer follow on),
// as in Kafka. Segments below log-start-offset that a crash left behind
// are removed. The recovery point moves when a rolled segment's background
// fsync completes (and every earlier one has), and to the active segment
// on Close. The recovery point and producer snapshot are hints written
// without fsync: losing them only makes the next open scan or replay more.
//
// Concurrency: all methods are safe for concurrent use. Appends to one
// partition are serialised; appends to different partitions and all reads
// run in parallel. A reader never sees a partially written batch.
package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/segment"
)

// Sentinel errors, for errors.Is. Errors from the record and codec packages
// (record.ErrCorrupt, record.ErrInvalid, codec.ErrUnknownCodec) are wrapped
// and pass through too.
var (
	ErrClosed               = errors.New("engine: closed")
	ErrUnknownTopic         = errors.New("engine: unknown topic")
	ErrUnknownPartition     = errors.New("engine: unknown partition")
	ErrTopicExists          = errors.New("engine: topic already exists")
	ErrInvalidTopic         = errors.New("engine: invalid topic name")
	ErrInvalidConfig        = errors.New("engine: invalid topic config")
	ErrOffsetOutOfRange     = errors.New("engine: offset out of range")
	ErrMessageTooLarge      = errors.New("engine: batch larger than max.message.bytes")
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
	// ErrNotContiguous is returned by AppendReplica for batches that do not
	// start at the log end or whose offsets or epochs go back.
	ErrNotContiguous = errors.New("engine: replica batches do not follow the log")
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
	// retention runs. Default 5 minutes. Negative disables the background
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
	// Logger receives the engine's log lines. Default slog.Default().
	Logger *slog.Logger
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

	mu struct {
		sync.RWMutex
		topics map[string]*topic
		closed bool
	}
	stop chan struct{}
	wg   sync.WaitGroup

	// hwCkpt serialises writes of the high watermark checkpoint and keeps
	// what was last written, to skip writes when nothing moved.
	hwCkpt struct {
		sync.Mutex
		last map[TopicPartition]int64
	}
	// hwAtOpen holds the checkpointed high watermarks read at Open.
	hwAtOpen map[TopicPartition]int64
}

type topic struct {
	name   string
	cfg    TopicConfig
	parts  []*Partition
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
	Internal bool        // an engine-managed topic such as __consumer_offsets
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
	if e.store == nil {
		if opts.Segment.Now == nil {
			opts.Segment.Now = opts.Now // segment.ms measures with the engine's clock
		}
		ds := NewDiskStore(dir, opts.Segment)
		ds.log = opts.Logger
		e.store = ds
	}
	e.mu.topics = make(map[string]*topic)
	marker := filepath.Join(dir, cleanMarker)
	if _, err := os.Stat(marker); err == nil {
		e.clean = true
		// From now on the directory is in use: a crash must be detected.
		if err := os.Remove(marker); err != nil {
			return nil, fmt.Errorf("engine: open: %w", err)
		}
		if err := syncDir(dir); err != nil {
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

type topicMeta struct {
	Name   string      `json:"name"`
	Config TopicConfig `json:"config"`
	// Explicit lists the settings given by name (TopicConfig.IsSet).
	Explicit []string `json:"explicit,omitempty"`
}

func (e *Engine) metaPath(name string) string {
	return filepath.Join(e.dir, metaDir, name+".json")
}

func (e *Engine) loadTopics() error {
	ents, err := os.ReadDir(filepath.Join(e.dir, metaDir))
	if err != nil {
		return fmt.Errorf("engine: open: %w", err)
	}
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".json")
		if !ok || ent.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.dir, metaDir, ent.Name()))
		if err != nil {
			return fmt.Errorf("engine: open: %w", err)
		}
		var m topicMeta
		if err := json.Unmarshal(b, &m); err != nil || m.Name != name {
			return fmt.Errorf("engine: open: topic metadata %s is corrupt: %v", ent.Name(), err)
		}
		for _, k := range m.Explicit {
			m.Config.markSet(k)
		}
		t, err := e.openTopic(name, m.Config)
		if err != nil {
			return err
		}
		e.mu.topics[name] = t
	}
	// Partition logs without topic metadata are left over from a create or
	// delete that crashed half-way: remove them.
	logs, err := e.store.Logs()
	if err != nil {
		return err
	}
	for _, l := range logs {
		name, p, _ := splitLogName(l)
		if t, ok := e.mu.topics[name]; ok && p < int32(len(t.parts)) {
			continue
		}
		e.log.Warn("removing orphaned partition log", "log", l)
		if err := e.store.RemoveLog(l); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) openTopic(name string, cfg TopicConfig) (*topic, error) {
	policy, err := cleanupPolicy(cfg.CleanupPolicy)
	if err != nil {
		return nil, err
	}
	t := &topic{name: name, cfg: cfg, policy: policy, parts: make([]*Partition, cfg.Partitions)}
	err = parallel(int(cfg.Partitions), func(i int) error {
		p, err := openPartition(e, name, int32(i), cfg)
		t.parts[i] = p
		return err
	})
	if err != nil {
		for _, q := range t.parts {
			if q != nil {
				q.close()
			}
		}
		return nil, err
	}
	return t, nil
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

// ValidateTopicName checks a name as Kafka does: 1–249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopicName(name string) error {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has character %q", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// CreateTopic creates a topic; cfg's zero fields take the engine defaults.
func (e *Engine) CreateTopic(name string, cfg TopicConfig) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	cfg = cfg.withDefaults(e.opts.Defaults)
	if err := cfg.Validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return ErrClosed
	}
	if _, ok := e.mu.topics[name]; ok {
		return fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	t, err := e.openTopic(name, cfg)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(topicMeta{Name: name, Config: cfg, Explicit: cfg.Explicit()})
	if err := writeFileAtomic(e.metaPath(name), b, true); err != nil {
		e.dropTopicLocked(t)
		return err
	}
	e.mu.topics[name] = t
	return nil
}

// DeleteTopic deletes a topic and its data. Internal topics can be deleted
// too: refusing clients is the broker's business.
func (e *Engine) DeleteTopic(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return ErrClosed
	}
	t, ok := e.mu.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	delete(e.mu.topics, name)
	// Metadata goes first: a crash after this leaves orphaned logs, which
	// the next Open removes.
	if err := os.Remove(e.metaPath(name)); err != nil {
		return fmt.Errorf("engine: delete topic: %w", err)
	}
	if err := syncDir(filepath.Join(e.dir, metaDir)); err != nil {
		return fmt.Errorf("engine: delete topic: %w", err)
	}
	return e.dropTopicLocked(t)
}

func (e *Engine) dropTopicLocked(t *topic) error {
	var err error
	for _, p := range t.parts {
		err = errors.Join(err, p.close(), e.store.RemoveLog(logName(t.name, p.id)))
	}
	return err
}

// Topics lists the topics, sorted by name.
func (e *Engine) Topics() []TopicInfo {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]TopicInfo, 0, len(e.mu.topics))
	for _, t := range e.mu.topics {
		out = append(out, TopicInfo{Name: t.name, Config: t.cfg, Internal: isInternalTopic(t.name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic describes one topic.
func (e *Engine) Topic(name string) (TopicInfo, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.mu.closed {
		return TopicInfo{}, ErrClosed
	}
	t, ok := e.mu.topics[name]
	if !ok {
		return TopicInfo{}, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	return TopicInfo{Name: t.name, Config: t.cfg, Internal: isInternalTopic(t.name)}, nil
}

// Partition returns one partition of a topic.
func (e *Engine) Partition(topic string, partition int32) (*Partition, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.mu.closed {
		return nil, ErrClosed
	}
	t, ok := e.mu.topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if partition < 0 || int(partition) >= len(t.parts) {
		return nil, fmt.Errorf("%w: %s/%d", ErrUnknownPartition, topic, partition)
	}
	return t.parts[partition], nil
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
			s.Partitions++
			ls := p.log.Stats()
			s.Segments += ls.Segments
			s.OpenFiles += ls.OpenFiles
			s.MappedFiles += ls.MappedFiles
			s.Recovered += ls.Recovered
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
		if err := writeFileAtomic(filepath.Join(e.dir, cleanMarker), nil, true); err != nil {
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
		parts = append(parts, t.parts...)
	}
	return parts
}
