package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/engine"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultInitialRebalanceDelay     = 3 * time.Second    // group.initial.rebalance.delay.ms
	DefaultMinSessionTimeout         = 6 * time.Second    // group.min.session.timeout.ms
	DefaultMaxSessionTimeout         = 30 * time.Minute   // group.max.session.timeout.ms
	DefaultOffsetsRetention          = 7 * 24 * time.Hour // offsets.retention.minutes
	DefaultRetentionCheckInterval    = 10 * time.Minute   // offsets.retention.check.interval.ms
	DefaultMaxMetadataBytes          = 1 << 20            // protocol metadata or assignment of one member
	DefaultMaxOffsetMetadataBytes    = 4096               // offset.metadata.max.bytes
	DefaultOffsetsTopicNumPartitions = 50                 // offsets.topic.num.partitions
	DefaultOffsetsTopicSegmentBytes  = 100 << 20          // offsets.topic.segment.bytes
	DefaultOffsetCommitTimeout       = 5 * time.Second    // offsets.commit.timeout.ms
	newMemberJoinTimeout             = 5 * time.Minute    // Kafka's GroupCoordinator.NewMemberJoinTimeoutMs
	maxLockRetries                   = 4                  // lookups of a group that keeps dying under us
	minRejoinWait                    = time.Second        // shortest wait for absent static members to rejoin
	authorizedGroupOperations        = 1<<3 | 1<<6 | 1<<8 // READ, DELETE, DESCRIBE (no ACLs: everything is allowed)
)

// Config configures a Coordinator. Each field's zero value selects its
// default; the Kafka name of the matching setting is given where one exists.
type Config struct {
	// NodeID, Host and Port are this broker, which FindCoordinator names
	// as the coordinator of every group (Easel is a single node). An empty
	// Host or a zero Port is taken from the request's Conn (see WithConn),
	// which the broker fills with the address it advertises to that client.
	NodeID int32
	Host   string
	Port   int32

	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: how long the
	// first rebalance of an empty group waits for more members (extended by
	// each newcomer, up to the rebalance timeout). Default 3 s; negative
	// means no delay. A longer delay slows every group's first start.
	InitialRebalanceDelay time.Duration

	// MinSessionTimeout and MaxSessionTimeout are group.min.session.timeout.ms
	// and group.max.session.timeout.ms: JoinGroup requests asking for a
	// session timeout outside them get INVALID_SESSION_TIMEOUT. Defaults
	// 6 s and 30 min.
	MinSessionTimeout, MaxSessionTimeout time.Duration

	// OffsetsRetention is offsets.retention.minutes: a group with no members
	// whose last commit and last member are both older than this is deleted
	// with its committed offsets (tombstones are written for them). Default
	// 7 days.
	OffsetsRetention time.Duration

	// RetentionCheckInterval is offsets.retention.check.interval.ms: how
	// often expired groups are looked for. Default 10 minutes.
	RetentionCheckInterval time.Duration

	// MaxMetadataBytes bounds the protocol metadata one member may send in
	// JoinGroup (all its protocols together) and the assignment a leader may
	// send for one member in SyncGroup; larger ones get MESSAGE_TOO_LARGE.
	// Default 1 MiB. The leader's JoinGroup response holds every member's
	// metadata, so this times the group size bounds that response.
	MaxMetadataBytes int

	// MaxOffsetMetadataBytes is offset.metadata.max.bytes: commits whose
	// metadata string is longer get OFFSET_METADATA_TOO_LARGE. Default 4096.
	MaxOffsetMetadataBytes int

	// MaxGroupSize is group.max.size: members beyond it get
	// GROUP_MAX_SIZE_REACHED. Default 0, no limit (Kafka's default).
	MaxGroupSize int

	// OffsetsTopicNumPartitions is offsets.topic.num.partitions: the
	// partition count New gives __consumer_offsets when it creates it.
	// Default 50. An existing topic keeps its count (groups are placed by
	// it), so changing this later has no effect.
	OffsetsTopicNumPartitions int32

	// OffsetsTopicSegmentBytes is offsets.topic.segment.bytes: the
	// segment.bytes New gives __consumer_offsets when it creates it (the
	// topic is compacted, and compaction cleans only rolled segments).
	// Default 100 MiB (Kafka's).
	OffsetsTopicSegmentBytes int64

	// OffsetCommitTimeout is offsets.commit.timeout.ms: how long a write
	// to __consumer_offsets (a commit, a group's metadata) may wait to be
	// committed, that is replicated to the in-sync replicas, before the
	// request gets COORDINATOR_NOT_AVAILABLE. Default 5 s.
	OffsetCommitTimeout time.Duration

	// DeferLoad leaves every __consumer_offsets partition unloaded at New,
	// for a cluster that loads a partition (LoadPartition) when this broker
	// becomes its leader. Default false: a single node loads them all.
	DeferLoad bool

	// Locate, when set, puts the coordinator in a cluster: the topic's
	// metadata belongs to the cluster's controller, so New neither creates,
	// checks nor migrates __consumer_offsets (OffsetsTopicNumPartitions must
	// be its partition count, the same on every broker) and loads nothing
	// (as with DeferLoad); FindCoordinator names the broker Locate returns
	// for the group's partition: its node id and advertised address, or an
	// error for COORDINATOR_NOT_AVAILABLE (no leader yet, or the topic is
	// still being created). Locate must not block for long.
	Locate func(ctx context.Context, partition int32) (node int32, host string, port int32, err error)

	// HasPartition, when set, says whether a topic partition exists, for
	// OffsetCommit's check (UNKNOWN_TOPIC_OR_PARTITION otherwise). Default:
	// the engine has it, which in a cluster is only true where it is
	// hosted, so a cluster answers from its metadata.
	HasPartition func(topic string, partition int32) bool

	// Logger receives group events: rebalances at Info, members removed on
	// session or rebalance timeout at Info, rejected input at Debug.
	// Default slog.Default().
	Logger *slog.Logger

	// Now is the clock for commit timestamps and expiry. Default time.Now.
	// Timers (session, rebalance, retention) run on the real clock.
	Now func() time.Time
}

// Conn describes the client connection a request came on. The broker
// attaches it to a request's context with WithConn.
type Conn struct {
	// ClientID is the request header's client_id. New member ids start
	// with it, and DescribeGroups reports it.
	ClientID string
	// ClientHost is the client's address as DescribeGroups reports it;
	// Kafka writes "/" and the IP address, e.g. "/127.0.0.1".
	ClientHost string
	// Host and Port are this broker's address as that client reaches it,
	// used by FindCoordinator when Config.Host or Config.Port is unset.
	Host string
	Port int32
}

type connKey struct{}

// WithConn returns a context carrying c, for the Coordinator's methods.
func WithConn(ctx context.Context, c Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func connFrom(ctx context.Context) Conn {
	c, _ := ctx.Value(connKey{}).(Conn)
	return c
}

// Coordinator is the group coordinator of a broker: it runs the classic
// consumer-group protocol for the groups of the __consumer_offsets partitions
// it has loaded and keeps their committed offsets and membership in that
// topic (see the package doc). All methods are safe for concurrent use; each
// group has its own lock, so a slow group does not stall the others.
type Coordinator struct {
	eng  *engine.Engine
	cfg  Config
	log  *slog.Logger
	clk  clock
	done chan struct{} // closed by Close: waiting requests return

	// n is the partition count of __consumer_offsets: the topic's own when
	// it exists, else Config.OffsetsTopicNumPartitions. Fixed by New.
	n int32
	// openErr is why __consumer_offsets cannot be used (creating, checking
	// or migrating it failed), or nil; startErr adds the partitions New
	// could not load. Both are set by New and never change.
	openErr, startErr error
	// shards has one entry per partition; the slice is fixed by New, the
	// entries' fields are guarded as documented on shard.
	shards []*shard
	hooks  testHooks

	mu struct {
		sync.RWMutex
		closed bool
		expiry stopper
	}
	wg sync.WaitGroup // timer callbacks and writer goroutines in flight
}

// shardState is a __consumer_offsets partition's state on this broker.
type shardState int8

const (
	shardUnloaded shardState = iota // not coordinated here: NOT_COORDINATOR
	shardLoading                    // being replayed: COORDINATOR_LOAD_IN_PROGRESS
	shardLoaded                     // its groups are served
	shardFailed                     // its load failed: COORDINATOR_NOT_AVAILABLE
)

// shard is one __consumer_offsets partition and the groups it holds.
type shard struct {
	id int32
	// loadMu serialises LoadPartition and UnloadPartition of the partition.
	// Taken before Coordinator.mu; never held by request paths.
	loadMu sync.Mutex

	// Guarded by Coordinator.mu:
	state  shardState
	groups map[string]*group // Invariant: non-nil iff state == shardLoaded; no dead group in it
	w      *writer           // Invariant: non-nil iff state == shardLoaded
}

// testHooks let tests stop the coordinator at chosen points.
type testHooks struct {
	// migrate is called before each step of a migration; an error stops
	// the migration there, as a crash would.
	migrate func(step string) error
	// loading is called once a partition is marked loading, before it is
	// read.
	loading func(p int32)
}

// New returns a Coordinator for the groups of eng. It creates
// __consumer_offsets if it does not exist (Config.OffsetsTopicNumPartitions
// partitions), migrates one written by an earlier Easel version (see the
// package doc), and, unless Config.DeferLoad is set, loads every partition:
// groups come back with their committed offsets and, for groups that were
// stable, their members and generation.
//
// New does not fail: if the topic cannot be used, or a partition cannot be
// loaded, it logs the error, the groups concerned get COORDINATOR_NOT_AVAILABLE,
// and Err reports it (the broker binary refuses to start then).
func New(eng *engine.Engine, cfg Config) *Coordinator {
	return newCoordinator(eng, cfg, nil, testHooks{})
}

// newCoordinator is New with a clock for the timers and hooks (tests pass
// fake ones).
func newCoordinator(eng *engine.Engine, cfg Config, clk clock, hooks testHooks) *Coordinator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	} else if cfg.InitialRebalanceDelay < 0 {
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = DefaultOffsetsRetention
	}
	if cfg.RetentionCheckInterval <= 0 {
		cfg.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if cfg.MaxMetadataBytes <= 0 {
		cfg.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if cfg.MaxOffsetMetadataBytes <= 0 {
		cfg.MaxOffsetMetadataBytes = DefaultMaxOffsetMetadataBytes
	}
	if cfg.OffsetsTopicNumPartitions <= 0 {
		cfg.OffsetsTopicNumPartitions = DefaultOffsetsTopicNumPartitions
	}
	if cfg.OffsetsTopicSegmentBytes <= 0 {
		cfg.OffsetsTopicSegmentBytes = DefaultOffsetsTopicSegmentBytes
	}
	if cfg.OffsetCommitTimeout <= 0 {
		cfg.OffsetCommitTimeout = DefaultOffsetCommitTimeout
	}
	if clk == nil {
		clk = realClock{}
	}
	c := &Coordinator{
		eng:   eng,
		cfg:   cfg,
		log:   cfg.Logger,
		clk:   clk,
		done:  make(chan struct{}),
		hooks: hooks,
	}
	if cfg.Locate != nil {
		c.n = cfg.OffsetsTopicNumPartitions
	} else {
		c.n, c.openErr = c.openTopic()
	}
	if c.openErr != nil {
		c.n = cfg.OffsetsTopicNumPartitions
		c.openErr = fmt.Errorf("group: cannot use %s: %w", engine.ConsumerOffsetsTopic, c.openErr)
		c.log.Error("group: consumer groups unavailable", "err", c.openErr)
	}
	c.shards = make([]*shard, c.n)
	for i := range c.shards {
		c.shards[i] = &shard{id: int32(i)}
		if c.openErr != nil {
			c.shards[i].state = shardFailed
		}
	}
	c.startErr = c.openErr
	if c.openErr == nil && !cfg.DeferLoad && cfg.Locate == nil {
		start := time.Now()
		var errs []error
		for p := range c.n {
			if err := c.LoadPartition(p); err != nil {
				errs = append(errs, err)
			}
		}
		c.startErr = errors.Join(errs...)
		groups, _ := c.snapshot()
		c.log.Info("group: loaded "+engine.ConsumerOffsetsTopic, "partitions", c.n, "groups", len(groups), "failed", len(errs), "took", time.Since(start))
	}
	c.mu.expiry = c.after(cfg.RetentionCheckInterval, c.expireGroups)
	return c
}

// Err returns why New could not open __consumer_offsets or load some of its
// partitions, or nil. While it is set, the groups concerned answer
// COORDINATOR_NOT_AVAILABLE.
func (c *Coordinator) Err() error { return c.startErr }

// Close ends the coordinator: requests waiting in JoinGroup or SyncGroup
// return NOT_COORDINATOR (clients look for the coordinator again), timers
// stop, and later requests get NOT_COORDINATOR. Close waits for the writes
// already accepted to be appended and for running timer callbacks; it does
// not close the engine. Nothing is written at Close: stable groups are
// already stored as they are.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	close(c.done)
	stop(c.mu.expiry)
	var groups []*group
	var writers []*writer
	for _, s := range c.shards {
		for _, g := range s.groups {
			groups = append(groups, g)
		}
		if s.w != nil {
			writers = append(writers, s.w)
		}
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.shutdownLocked()
		g.mu.Unlock()
	}
	for _, w := range writers {
		w.close()
	}
	c.wg.Wait()
}

// shardFor returns the shard holding group id.
func (c *Coordinator) shardFor(id string) *shard { return c.shards[PartitionFor(id, c.n)] }

// stateCode is the error code for requests about a group whose partition
// is not loaded, or 0 if it is. c.mu is held.
func (s *shard) stateCode() int16 {
	switch s.state {
	case shardLoaded:
		return 0
	case shardLoading:
		return kerr.CoordinatorLoadInProgress.Code
	case shardFailed:
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.NotCoordinator.Code
}

// lockGroup finds the group id and locks it (first its commit lock, with
// commit set). With create, a missing group is created empty. It returns nil
// and 0 for a missing group, or nil and an error code when the coordinator is
// closed, the group's partition is not loaded here, or the group keeps being
// deleted under it.
func (c *Coordinator) lockGroup(id string, create, commit bool) (*group, int16) {
	s := c.shardFor(id)
	for range maxLockRetries {
		c.mu.RLock()
		if c.mu.closed {
			c.mu.RUnlock()
			return nil, kerr.NotCoordinator.Code
		}
		if code := s.stateCode(); code != 0 {
			c.mu.RUnlock()
			return nil, code
		}
		g := s.groups[id]
		c.mu.RUnlock()
		if g == nil {
			if !create {
				return nil, 0
			}
			c.mu.Lock()
			if c.mu.closed {
				c.mu.Unlock()
				return nil, kerr.NotCoordinator.Code
			}
			if code := s.stateCode(); code != 0 {
				c.mu.Unlock()
				return nil, code
			}
			if g = s.groups[id]; g == nil {
				g = newGroup(c, s, s.w, strings.Clone(id))
				s.groups[g.id] = g
			}
			c.mu.Unlock()
		}
		if commit {
			g.commitMu.Lock()
		}
		g.mu.Lock()
		if g.state != stateDead {
			return g, 0
		}
		g.mu.Unlock()
		if commit {
			g.commitMu.Unlock()
		}
	}
	return nil, kerr.CoordinatorNotAvailable.Code
}

// removeGroupLocked marks g dead and drops it from its shard. g.mu is held;
// lock order is g.mu, then c.mu.
func (c *Coordinator) removeGroupLocked(g *group) {
	g.state = stateDead
	g.shutdownLocked()
	c.mu.Lock()
	if g.shard.groups[g.id] == g {
		delete(g.shard.groups, g.id)
	}
	c.mu.Unlock()
}

// snapshot returns the groups of the loaded partitions, and a code for the
// whole coordinator: NOT_COORDINATOR once closed, COORDINATOR_LOAD_IN_PROGRESS
// while a partition loads (as Kafka's ListGroups answers).
func (c *Coordinator) snapshot() ([]*group, int16) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.mu.closed {
		return nil, kerr.NotCoordinator.Code
	}
	var out []*group
	code := int16(0)
	for _, s := range c.shards {
		if s.state == shardLoading {
			code = kerr.CoordinatorLoadInProgress.Code
		}
		for _, g := range s.groups {
			out = append(out, g)
		}
	}
	return out, code
}

// after runs f after d on the coordinator's clock, unless the coordinator
// is closed by then. It returns nil once the coordinator is closed.
func (c *Coordinator) after(d time.Duration, f func()) stopper {
	c.mu.RLock()
	closed := c.mu.closed
	c.mu.RUnlock()
	if closed {
		return nil
	}
	return c.clk.AfterFunc(d, func() {
		c.mu.RLock()
		if c.mu.closed {
			c.mu.RUnlock()
			return
		}
		c.wg.Add(1)
		c.mu.RUnlock()
		defer c.wg.Done()
		f()
	})
}

// expireGroups deletes the groups whose retention has passed, writing
// tombstones for their offsets and metadata, and re-arms itself. As in
// Kafka, a group expires only while it has no members: once both its last
// member and its last commit are older than OffsetsRetention (a group without
// offsets goes at the first check after it empties).
func (c *Coordinator) expireGroups() {
	now := c.cfg.Now()
	groups, _ := c.snapshot()
	for _, g := range groups {
		g.commitMu.Lock()
		g.mu.Lock()
		if g.state == stateEmpty && len(g.pending) == 0 {
			switch {
			case len(g.offsets) == 0:
				g.deleteLocked(nil)
			case !now.Before(g.emptySince.Add(c.cfg.OffsetsRetention)) &&
				!now.Before(g.lastCommit.Add(c.cfg.OffsetsRetention)):
				c.log.Info("group: expired", "group", g.id, "offsets", len(g.offsets))
				g.deleteLocked(nil)
			}
		}
		g.mu.Unlock()
		g.commitMu.Unlock()
	}
	t := c.after(c.cfg.RetentionCheckInterval, c.expireGroups)
	c.mu.Lock()
	if c.mu.closed {
		stop(t)
	} else {
		c.mu.expiry = t
	}
	c.mu.Unlock()
}

// newMemberID returns prefix, "-" and a random UUID, as Kafka names members
// (prefix is the group.instance.id of static members, else the client id).
func newMemberID(prefix string) string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails (crypto/rand, Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	b := make([]byte, 0, len(prefix)+37)
	b = append(b, prefix...)
	b = append(b, '-')
	b = hex.AppendEncode(b, u[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[8:10])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[10:16])
	return string(b)
}

// clock runs timers; tests replace the real one.
type clock interface {
	AfterFunc(d time.Duration, f func()) stopper
}

type stopper interface{ Stop() bool }

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

func stop(s stopper) {
	if s != nil {
		s.Stop()
	}
}

// Partitions is the partition count of __consumer_offsets that groups are
// placed by (PartitionFor).
func (c *Coordinator) Partitions() int32 { return c.n }
