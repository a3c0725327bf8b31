// Package gossip is cluster membership for Easel brokers, on
// hashicorp/memberlist (SWIM): each broker is a member named by its Kafka
// node id and carries its Meta (addresses, rack, controller eligibility,
// incarnation); joins, updates, leaves and failures come out of Events in
// the order memberlist saw them, for the controller to act on.
//
// Timing. Failure detection is ProbeInterval, ProbeTimeout and
// SuspicionMult. Measured on the 2-core build machine with 3 nodes:
// memberlist's LAN defaults (1 s / 500 ms / 4) find a dead node in about
// 5.8 s; DefaultConfig's 500 ms / 250 ms / 3 in about 2.4 s with no false
// alarm under CPU load; 200 ms / 100 ms / 2 in about 0.75 s but it flaps
// when the process is starved of CPU (GOMAXPROCS=1). Faster settings trade
// false suspicions (a broker fenced while alive, its partitions moved) for
// faster failover; FastConfig is for tests on loopback.
//
// Restarts. A broker that comes back under its node id with a new address
// is accepted once the old incarnation is known dead for
// DeadNodeReclaimTime (memberlist refuses a reused name with a new address
// by default). A second live broker with the same node id is a conflict:
// Start fails if it finds one, and the running side reports EventConflict.
//
// Partitions heal: seeds are joined again every RejoinInterval, so two
// halves that lost each other find each other once the network is back.
// Members of another cluster (a different ClusterID) never mix: it is
// memberlist's packet label.
package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a member. Start fills zero fields from DefaultConfig.
type Config struct {
	// ClusterID keeps clusters apart: members with another id are not
	// heard (memberlist's label). Required.
	ClusterID string
	// Meta describes this broker; Meta.NodeID names it. Required.
	Meta Meta
	// BindAddr is the gossip host:port to listen on (TCP and UDP). Port 0
	// picks a free one (see Addr). Required.
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this one at.
	// Default: BindAddr with the port bound.
	AdvertiseAddr string
	// Seeds are gossip addresses of other members to join at start and
	// every RejoinInterval.
	Seeds []string
	// ProbeInterval, ProbeTimeout and SuspicionMult set failure detection
	// (see the package doc). Defaults 500 ms, 250 ms, 3.
	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	// GossipInterval is how often state is gossiped. Default 100 ms.
	GossipInterval time.Duration
	// PushPullInterval is how often full state is exchanged with a random
	// member. Default 15 s.
	PushPullInterval time.Duration
	// RejoinInterval is how often seeds are joined again. Default 5 s.
	RejoinInterval time.Duration
	// DeadNodeReclaimTime is how long a dead member's name stays reserved
	// before a member at another address may take it. Default 2 s.
	DeadNodeReclaimTime time.Duration
	// Wrap, if set, wraps the network transport (tests: NewFaultTransport).
	Wrap func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// Logger receives memberlist's log lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the production timings (see the package doc).
func DefaultConfig() Config {
	return Config{
		ProbeInterval:       500 * time.Millisecond,
		ProbeTimeout:        250 * time.Millisecond,
		SuspicionMult:       3,
		GossipInterval:      100 * time.Millisecond,
		PushPullInterval:    15 * time.Second,
		RejoinInterval:      5 * time.Second,
		DeadNodeReclaimTime: 2 * time.Second,
	}
}

// FastConfig returns timings for tests on loopback: failures found in well
// under a second; not for production (it flaps under CPU starvation).
func FastConfig() Config {
	c := DefaultConfig()
	c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 100*time.Millisecond, 50*time.Millisecond, 2
	c.GossipInterval, c.PushPullInterval, c.RejoinInterval = 20*time.Millisecond, 2*time.Second, 500*time.Millisecond
	c.DeadNodeReclaimTime = 200 * time.Millisecond
	return c
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = d.ProbeInterval
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = d.ProbeTimeout
	}
	if c.SuspicionMult <= 0 {
		c.SuspicionMult = d.SuspicionMult
	}
	if c.GossipInterval <= 0 {
		c.GossipInterval = d.GossipInterval
	}
	if c.PushPullInterval <= 0 {
		c.PushPullInterval = d.PushPullInterval
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = d.RejoinInterval
	}
	if c.DeadNodeReclaimTime <= 0 {
		c.DeadNodeReclaimTime = d.DeadNodeReclaimTime
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// EventType says what happened to a member.
type EventType uint8

// Event types.
const (
	EventJoin     EventType = iota + 1 // a member is alive (new, or back)
	EventUpdate                        // a member's Meta changed
	EventLeave                         // a member left on purpose
	EventFail                          // a member is dead (failure detection)
	EventConflict                      // a second member claims a node id that is alive
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	case EventConflict:
		return "conflict"
	}
	return "unknown"
}

// Member is one broker as gossip knows it.
type Member struct {
	Meta
	// Addr is the member's gossip address.
	Addr string
}

// Event is one membership change.
type Event struct {
	Type   EventType
	Member Member
}

// Errors of Start.
var (
	ErrConfig   = errors.New("gossip: invalid config")
	ErrConflict = errors.New("gossip: another live member has this node id")
)

// Membership is this broker's view of the cluster's members. Its methods are
// safe for concurrent use.
type Membership struct {
	cfg  Config
	ml   *memberlist.Memberlist
	addr string // advertised gossip address
	log  *slog.Logger
	meta struct {
		sync.Mutex
		b []byte
	}

	// Events go through an unbounded queue: memberlist calls its delegates
	// from its own goroutines, which must not block.
	q struct {
		sync.Mutex
		items []Event
		wake  chan struct{} // capacity 1: something was queued
	}
	events chan Event
	// selfConflict holds the address of another live member that claims
	// this node's id, as memberlist reported it while joining.
	selfConflict atomic.Pointer[string]
	// leaving holds the node ids whose last Meta said they were leaving,
	// so that their departure is EventLeave, not EventFail.
	leaving sync.Map
	// members is the live membership as the delegates reported it (they
	// run under memberlist's lock; the nodes memberlist's Members returns
	// are shared with its goroutines and cannot be read without a race).
	members struct {
		sync.Mutex
		m map[int32]Member
	}
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start creates the member, listens, and joins the seeds (a seed that does
// not answer is retried every RejoinInterval; with no seed reachable the
// member runs alone until one is).
func Start(cfg Config) (*Membership, error) {
	cfg = cfg.withDefaults()
	if cfg.ClusterID == "" || cfg.BindAddr == "" {
		return nil, fmt.Errorf("%w: ClusterID and BindAddr are required", ErrConfig)
	}
	meta, err := cfg.Meta.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: BindAddr: %w", ErrConfig, err)
	}
	m := &Membership{cfg: cfg, log: cfg.Logger, events: make(chan Event), stop: make(chan struct{})}
	m.meta.b = meta
	m.q.wake = make(chan struct{}, 1)
	m.members.m = make(map[int32]Member)

	std := newStdLogger(cfg.Logger)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: std})
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", cfg.BindAddr, err)
	}
	var tr memberlist.NodeAwareTransport = nt
	if cfg.Wrap != nil {
		tr = cfg.Wrap(nt)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = strconv.FormatInt(int64(cfg.Meta.NodeID), 10)
	mc.Label = "easel/" + cfg.ClusterID
	mc.Transport = tr
	mc.BindAddr, mc.BindPort = host, nt.GetAutoBindPort()
	if cfg.AdvertiseAddr != "" {
		ah, ap, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			tr.Shutdown()
			return nil, fmt.Errorf("%w: AdvertiseAddr: %w", ErrConfig, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	} else {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			tr.Shutdown()
			return nil, fmt.Errorf("%w: BindAddr %q listens on all interfaces: set AdvertiseAddr", ErrConfig, cfg.BindAddr)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, nt.GetAutoBindPort()
	}
	mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult = cfg.ProbeInterval, cfg.ProbeTimeout, cfg.SuspicionMult
	mc.GossipInterval, mc.PushPullInterval = cfg.GossipInterval, cfg.PushPullInterval
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mc.Delegate = (*delegate)(m)
	mc.Events = (*delegate)(m)
	mc.Conflict = (*delegate)(m)
	mc.Logger = std
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	m.ml = ml
	m.addr = net.JoinHostPort(mc.AdvertiseAddr, strconv.Itoa(mc.AdvertisePort))
	m.wg.Add(2)
	go m.deliver()
	go m.rejoinLoop()
	m.join()
	if other := m.selfConflict.Load(); other != nil {
		m.Close()
		return nil, fmt.Errorf("%w: node id %d is alive at %s", ErrConflict, cfg.Meta.NodeID, *other)
	}
	return m, nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return h, n, nil
}

// Addr is this member's advertised gossip address (with the port bound).
func (m *Membership) Addr() string { return m.addr }

// join contacts the seeds that are not members already.
func (m *Membership) join() {
	var todo []string
	have := make(map[string]bool)
	for _, mem := range m.Members() {
		have[mem.Addr] = true
	}
	for _, s := range m.cfg.Seeds {
		if !have[s] && s != m.Addr() {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return
	}
	if _, err := m.ml.Join(todo); err != nil {
		m.log.Debug("gossip: join", "seeds", todo, "err", err)
	}
}

func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.join()
		}
	}
}

// Events delivers membership changes in order. Read it continuously: events
// queue up (without bound) while nobody reads. It is closed by Close.
func (m *Membership) Events() <-chan Event { return m.events }

// Members returns the live members, this one included, by node id.
func (m *Membership) Members() []Member {
	m.members.Lock()
	out := make([]Member, 0, len(m.members.m))
	for _, mem := range m.members.m {
		out = append(out, mem)
	}
	m.members.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return int(a.NodeID) - int(b.NodeID) })
	return out
}

// UpdateMeta changes this member's Meta and gossips it (EventUpdate
// elsewhere). The node id cannot change.
func (m *Membership) UpdateMeta(meta Meta, timeout time.Duration) error {
	if meta.NodeID != m.cfg.Meta.NodeID {
		return fmt.Errorf("%w: node id %d cannot become %d", ErrConfig, m.cfg.Meta.NodeID, meta.NodeID)
	}
	b, err := meta.MarshalBinary()
	if err != nil {
		return err
	}
	m.meta.Lock()
	m.meta.b = b
	m.meta.Unlock()
	return m.ml.UpdateNode(timeout)
}

// Leave tells the others this member is leaving (EventLeave there, not
// EventFail), waiting up to timeout for each message to spread: first its
// Meta marked leaving (memberlist's own leave message does not reliably
// tell a leave from a death), then the leave. Call Close afterwards.
func (m *Membership) Leave(timeout time.Duration) error {
	m.meta.Lock()
	meta := m.cfg.Meta
	meta.leaving = true
	b, err := meta.MarshalBinary()
	if err == nil {
		m.meta.b = b
	}
	m.meta.Unlock()
	if err != nil {
		return err
	}
	if err := m.ml.UpdateNode(timeout); err != nil {
		return err
	}
	return m.ml.Leave(timeout)
}

// Close stops the member without a leave message (the others see it fail)
// and closes Events.
func (m *Membership) Close() error {
	var err error
	m.once.Do(func() {
		err = m.ml.Shutdown()
		close(m.stop)
		m.wg.Wait()
	})
	return err
}

func toMember(n *memberlist.Node) (Member, bool) {
	var meta Meta
	if err := meta.UnmarshalBinary(n.Meta); err != nil || strconv.FormatInt(int64(meta.NodeID), 10) != n.Name {
		return Member{}, false
	}
	return Member{Meta: meta, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))}, true
}

func (m *Membership) enqueue(t EventType, n *memberlist.Node) {
	mem, ok := toMember(n)
	if !ok {
		m.log.Warn("gossip: ignoring a member with malformed metadata", "name", n.Name, "addr", n.Address())
		return
	}
	switch {
	case mem.leaving && t == EventUpdate:
		m.leaving.Store(mem.NodeID, true)
		return // the leave follows
	case t == EventJoin:
		m.leaving.Delete(mem.NodeID)
	case t == EventFail:
		if _, ok := m.leaving.LoadAndDelete(mem.NodeID); ok {
			t = EventLeave
		}
	}
	mem.leaving = false
	m.members.Lock()
	switch t {
	case EventJoin, EventUpdate:
		m.members.m[mem.NodeID] = mem
	case EventLeave, EventFail:
		if cur, ok := m.members.m[mem.NodeID]; ok && cur.Addr == mem.Addr {
			delete(m.members.m, mem.NodeID)
		}
	}
	m.members.Unlock()
	m.q.Lock()
	m.q.items = append(m.q.items, Event{Type: t, Member: mem})
	m.q.Unlock()
	select {
	case m.q.wake <- struct{}{}:
	default:
	}
}

// deliver moves queued events to the Events channel in order.
func (m *Membership) deliver() {
	defer m.wg.Done()
	defer close(m.events)
	for {
		m.q.Lock()
		items := m.q.items
		m.q.items = nil
		m.q.Unlock()
		for _, ev := range items {
			select {
			case m.events <- ev:
			case <-m.stop:
				return
			}
		}
		select {
		case <-m.q.wake:
		case <-m.stop:
			return
		}
	}
}

// delegate implements memberlist's delegates on Membership.
type delegate Membership

func (d *delegate) NodeMeta(limit int) []byte {
	d.meta.Lock()
	defer d.meta.Unlock()
	if len(d.meta.b) > limit {
		return nil
	}
	return d.meta.b
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { (*Membership)(d).enqueue(EventJoin, n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { (*Membership)(d).enqueue(EventUpdate, n) }
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	t := EventFail
	if n.State == memberlist.StateLeft {
		t = EventLeave
	}
	(*Membership)(d).enqueue(t, n)
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := (*Membership)(d)
	if existing.Name == strconv.FormatInt(int64(m.cfg.Meta.NodeID), 10) {
		addr := other.Address()
		m.selfConflict.CompareAndSwap(nil, &addr)
	}
	m.log.Error("gossip: a second member claims a live node id", "node_id", existing.Name, "existing", existing.Address(), "other", other.Address())
	m.enqueue(EventConflict, other)
}
