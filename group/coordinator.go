package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/engine"
)

// Versions lists the group APIs the Coordinator serves, by API key, with
// the lowest and highest version of each, for the broker's ApiVersions and
// dispatch.
var Versions = map[int16][2]int16{
	8:  {2, 8}, // OffsetCommit
	9:  {1, 7}, // OffsetFetch
	10: {0, 3}, // FindCoordinator
	11: {0, 7}, // JoinGroup
	12: {0, 4}, // Heartbeat
	13: {0, 4}, // LeaveGroup
	14: {0, 5}, // SyncGroup
	15: {0, 5}, // DescribeGroups
	16: {0, 4}, // ListGroups
	42: {0, 2}, // DeleteGroups
}

// Defaults applied by New to zero Config fields.
const (
	DefaultInitialRebalanceDelay  = 3 * time.Second    // group.initial.rebalance.delay.ms
	DefaultMinSessionTimeout      = 6 * time.Second    // group.min.session.timeout.ms
	DefaultMaxSessionTimeout      = 30 * time.Minute   // group.max.session.timeout.ms
	DefaultOffsetsRetention       = 7 * 24 * time.Hour // offsets.retention.minutes
	DefaultRetentionCheckInterval = 10 * time.Minute   // offsets.retention.check.interval.ms
	DefaultMaxMetadataBytes       = 1 << 20            // protocol metadata or assignment of one member
	DefaultMaxOffsetMetadataBytes = 4096               // offset.metadata.max.bytes
	newMemberJoinTimeout          = 5 * time.Minute    // Kafka's GroupCoordinator.NewMemberJoinTimeoutMs
	maxLockRetries                = 4                  // lookups of a group that keeps dying under us
	minRejoinWait                 = time.Second        // shortest wait for absent static members to rejoin
	authorizedGroupOperations     = 1<<3 | 1<<6 | 1<<8 // READ, DELETE, DESCRIBE (no ACLs: everything is allowed)
)

// Config configures a Coordinator. Each field's zero value selects its
// default; the Kafka name of the matching setting is given where one exists.
type Config struct {
	// NodeID, Host and Port are this broker, the coordinator of every group
	// (Easel is a single node). An empty Host or a zero Port is taken from
	// the request's Conn (see WithConn), then "localhost" and 9092.
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
	// with its committed offsets. Default 7 days.
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

// Coordinator is the group coordinator of a single-node broker: it runs
// the classic consumer-group protocol for every group and stores committed
// offsets in the engine. All methods are safe for concurrent use; each group
// has its own lock, so a slow group does not stall the others.
type Coordinator struct {
	eng   *engine.Engine
	cfg   Config
	log   *slog.Logger
	clk   clock
	done  chan struct{} // closed by Close: waiting requests return
	start time.Time

	mu struct {
		sync.RWMutex
		closed bool
		groups map[string]*group // Invariant: no group in it is dead
		expiry stopper
	}
	wg sync.WaitGroup // timer callbacks in flight
}

// New returns a Coordinator for the groups of eng. Groups that have
// committed offsets in eng are loaded as empty groups; their retention
// clock starts now.
func New(eng *engine.Engine, cfg Config) *Coordinator {
	return newCoordinator(eng, cfg, nil)
}

// newCoordinator is New with a clock for the timers (tests pass a fake one).
func newCoordinator(eng *engine.Engine, cfg Config, clk clock) *Coordinator {
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
	if clk == nil {
		clk = realClock{}
	}
	c := &Coordinator{
		eng:  eng,
		cfg:  cfg,
		log:  cfg.Logger,
		clk:  clk,
		done: make(chan struct{}),
	}
	c.start = cfg.Now()
	c.mu.groups = make(map[string]*group)
	for _, id := range eng.Groups() {
		g := newGroup(c, id)
		g.hasOffsets = true
		c.mu.groups[id] = g
	}
	c.mu.expiry = c.after(cfg.RetentionCheckInterval, c.expireGroups)
	return c
}

// Close ends the coordinator: requests waiting in JoinGroup or SyncGroup
// return NOT_COORDINATOR (clients look for the coordinator again), timers
// stop, and later requests get NOT_COORDINATOR. Close waits for running
// timer callbacks; it does not close the engine.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	close(c.done)
	stop(c.mu.expiry)
	groups := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.shutdownLocked()
		g.mu.Unlock()
	}
	c.wg.Wait()
}

// lockGroup finds the group id and locks it (first its commit lock, with
// commit set). With create, a missing group is created empty. It returns nil
// and 0 for a missing group, or nil and an error code when the coordinator is
// closed or the group keeps being deleted under it.
func (c *Coordinator) lockGroup(id string, create, commit bool) (*group, int16) {
	for range maxLockRetries {
		c.mu.RLock()
		g, closed := c.mu.groups[id], c.mu.closed
		c.mu.RUnlock()
		if closed {
			return nil, kerr.NotCoordinator.Code
		}
		if g == nil {
			if !create {
				return nil, 0
			}
			c.mu.Lock()
			if c.mu.closed {
				c.mu.Unlock()
				return nil, kerr.NotCoordinator.Code
			}
			if g = c.mu.groups[id]; g == nil {
				g = newGroup(c, strings.Clone(id))
				c.mu.groups[g.id] = g
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

// removeGroupLocked marks g dead and drops it from the map. g.mu is held;
// lock order is g.mu, then c.mu.
func (c *Coordinator) removeGroupLocked(g *group) {
	g.state = stateDead
	g.shutdownLocked()
	c.mu.Lock()
	if c.mu.groups[g.id] == g {
		delete(c.mu.groups, g.id)
	}
	c.mu.Unlock()
}

// snapshot returns the current groups.
func (c *Coordinator) snapshot() ([]*group, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.mu.closed {
		return nil, false
	}
	out := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		out = append(out, g)
	}
	return out, true
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

// expireGroups deletes the groups whose retention has passed and re-arms
// itself.
func (c *Coordinator) expireGroups() {
	now := c.cfg.Now()
	groups, ok := c.snapshot()
	if !ok {
		return
	}
	for _, g := range groups {
		g.commitMu.Lock()
		g.mu.Lock()
		if g.state == stateEmpty && len(g.pending) == 0 {
			switch {
			case !g.hasOffsets:
				c.removeGroupLocked(g)
			case !now.Before(g.emptySince.Add(c.cfg.OffsetsRetention)) &&
				!now.Before(g.lastCommit.Add(c.cfg.OffsetsRetention)):
				if err := c.eng.DeleteGroupOffsets(g.id); err != nil {
					c.log.Warn("group: cannot delete expired offsets", "group", g.id, "err", err)
				} else {
					c.log.Info("group: expired", "group", g.id)
					c.removeGroupLocked(g)
				}
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
