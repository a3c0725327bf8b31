package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/gossip"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"

	"github.com/easel-io/easel/internal/kclient"
)

// Errors of Start and of a running Node.
var (
	// ErrConfig: the Config is invalid or does not match the node's state.
	ErrConfig = errors.New("controller: invalid config")
	// ErrNotController: a controller request reached a node whose raft
	// node does not lead (or has not yet taken over as controller).
	ErrNotController = errors.New("controller: this node is not the controller")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("controller: node closed")
)

// gossipLabel is the gossip cluster id of clusters with no configured id.
const gossipLabel = "default"

// Node is one broker's part in the control plane: its raft node on the
// metadata log, its gossip membership and, while its raft node leads, the
// controller loop. Its methods are safe for concurrent use.
type Node struct {
	cfg      Config
	id       int32
	info     cluster.BrokerInfo // this broker, as it registers
	log      *slog.Logger
	voters   map[int32]Voter
	voterSet uint64
	isVoter  bool
	timing   RaftTiming

	fsm   *cluster.FSM
	wal   *wal.WAL
	snaps *raft.FileSnapshotStore
	layer *StreamLayer // nil when Config.RaftTransport was given
	raft  *raft.Raft
	ml    *gossip.Membership // nil without gossip
	kc    *kclient.Client    // the default Forward's client; nil when Config.Forward was given

	applied atomic.Uint64
	changed struct {
		sync.Mutex
		ch chan struct{}
	}
	// epochs says at which log index each broker's current epoch was set
	// (its registration or fencing): a broker has caught up once its
	// applied index reaches it. After a restore the map is empty and floor
	// is the snapshot's index, an upper bound for every broker.
	epochs struct {
		sync.Mutex
		m     map[int32]epochAt
		floor uint64
	}

	ready     chan struct{}
	readyOnce sync.Once
	fatal     struct {
		sync.Mutex
		err error
	}

	// term is the running controller loop; nil while this node does not
	// lead.
	term   atomic.Pointer[term]
	events eventQueue
	// refused remembers the refusals logged, so each is logged once per
	// member incarnation and reason.
	refused sync.Map

	pid struct {
		sem       chan struct{} // held while handing out or fetching ids
		next, end int64         // Invariant: next <= end
	}

	stopping atomic.Bool // Shutdown began: no more heartbeats
	stop     chan struct{}
	wg       sync.WaitGroup
	close    struct {
		once sync.Once
		err  error
	}
}

type epochAt struct {
	epoch int64
	index uint64
}

// lastIncarnation makes incarnations unique per start within a process.
var lastIncarnation atomic.Int64

func nextIncarnation() uint64 {
	for {
		now, old := time.Now().UnixNano(), lastIncarnation.Load()
		if now <= old {
			now = old + 1
		}
		if lastIncarnation.CompareAndSwap(old, now) {
			return uint64(now)
		}
	}
}

// Start opens the node's raft state, bootstraps the log from Voters when
// this node is a voter with no raft state (exactly once: a node with state
// is never bootstrapped again, and one whose latest raft configuration has
// other voters than Voters is refused), starts gossip and the node's
// loops, and returns without waiting for an election.
func Start(cfg Config) (*Node, error) {
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.open(); err != nil {
		n.closeAll()
		return nil, err
	}
	return n, nil
}

func newNode(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: Dir is required", ErrConfig)
	}
	if cfg.Broker.ID < 0 {
		return nil, fmt.Errorf("%w: broker id %d", ErrConfig, cfg.Broker.ID)
	}
	if err := checkVoters(cfg.Voters); err != nil {
		return nil, err
	}
	if cfg.PreferredLeaderInterval <= 0 {
		cfg.PreferredLeaderInterval = 30 * time.Second
	}
	if cfg.WALSegmentSize <= 0 {
		cfg.WALSegmentSize = 16 << 20
	}
	n := &Node{
		id:       cfg.Broker.ID,
		log:      cfg.Logger.With("node", cfg.Broker.ID),
		voters:   make(map[int32]Voter, len(cfg.Voters)),
		voterSet: voterSet(cfg.Voters),
		timing:   cfg.Raft.withDefaults(),
		ready:    make(chan struct{}),
		stop:     make(chan struct{}),
	}
	for _, v := range cfg.Voters {
		n.voters[v.ID] = v
	}
	v, isVoter := n.voters[n.id]
	n.isVoter = isVoter
	cfg.Broker.ControllerEligible = isVoter
	if isVoter {
		if cfg.Broker.RaftAddr == "" {
			cfg.Broker.RaftAddr = v.Addr
		} else if cfg.Broker.RaftAddr != v.Addr {
			return nil, fmt.Errorf("%w: raft address %s differs from the voter list's %d@%s", ErrConfig, cfg.Broker.RaftAddr, v.ID, v.Addr)
		}
	} else {
		for _, v := range cfg.Voters {
			if cfg.Broker.RaftAddr == v.Addr {
				return nil, fmt.Errorf("%w: raft address %s is voter %d's, and node %d is not a voter", ErrConfig, v.Addr, v.ID, n.id)
			}
		}
	}
	if cfg.RaftBind == "" {
		cfg.RaftBind = cfg.Broker.RaftAddr
	}
	if cfg.RaftBind == "" && cfg.RaftTransport == nil {
		return nil, fmt.Errorf("%w: no raft address (Broker.RaftAddr or RaftBind)", ErrConfig)
	}
	if cfg.Broker.Incarnation == 0 {
		cfg.Broker.Incarnation = nextIncarnation()
	}
	if cfg.Gossip.BindAddr == "" && (len(cfg.Voters) != 1 || !isVoter) {
		return nil, fmt.Errorf("%w: gossip is required unless this node is the only voter", ErrConfig)
	}
	if cfg.Broker.Port <= 0 || cfg.Broker.Port > 65535 || cfg.Broker.Host == "" {
		return nil, fmt.Errorf("%w: Kafka address %s:%d", ErrConfig, cfg.Broker.Host, cfg.Broker.Port)
	}
	if cfg.Forward == nil {
		n.kc = kclient.New(kclient.Config{ClientID: "easel-controller", Logger: cfg.Logger})
		cfg.Forward = n.kc.Request
	}
	n.cfg = cfg
	n.changed.ch = make(chan struct{})
	n.epochs.m = make(map[int32]epochAt)
	n.pid.sem = make(chan struct{}, 1)
	n.events.wake = make(chan struct{}, 1)
	return n, nil
}

func (n *Node) open() error {
	cfg := &n.cfg
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "wal"), 0o755); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	hl := newHCLogger(cfg.Logger.With("node", n.id), "raft")
	w, err := wal.Open(filepath.Join(cfg.Dir, "wal"), wal.WithLogger(hl.Named("wal")), wal.WithSegmentSize(cfg.WALSegmentSize))
	if err != nil {
		return fmt.Errorf("controller: opening the raft log in %s: %w", cfg.Dir, err)
	}
	n.wal = w
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("controller: opening snapshots in %s: %w", cfg.Dir, err)
	}
	n.snaps = snaps

	trans := cfg.RaftTransport
	if trans == nil {
		l, err := NewStreamLayer(cfg.RaftBind, cfg.Broker.RaftAddr)
		if err != nil {
			return err
		}
		n.layer = l
		trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  l,
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  hl.Named("transport"),
		})
		if cfg.Broker.RaftAddr == "" || strings0Port(cfg.Broker.RaftAddr) {
			cfg.Broker.RaftAddr = l.Addr().String()
		}
	} else if cfg.Broker.RaftAddr == "" {
		cfg.Broker.RaftAddr = string(trans.LocalAddr())
	}
	n.info = cfg.Broker

	existing, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		closeTransport(trans)
		return fmt.Errorf("controller: reading raft state: %w", err)
	}

	n.fsm = cluster.NewFSM(cluster.NewState())
	n.fsm.OnApply = n.onApply
	n.fsm.OnRestore = n.onRestore

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.FormatInt(int64(n.id), 10))
	rc.HeartbeatTimeout = n.timing.HeartbeatTimeout
	rc.ElectionTimeout = n.timing.ElectionTimeout
	rc.LeaderLeaseTimeout = n.timing.LeaderLeaseTimeout
	rc.CommitTimeout = n.timing.CommitTimeout
	rc.SnapshotInterval = n.timing.SnapshotInterval
	rc.SnapshotThreshold = n.timing.SnapshotThreshold
	rc.TrailingLogs = n.timing.TrailingLogs
	rc.ShutdownOnRemove = false // a removed non-voter keeps its copy and may be added again
	rc.Logger = hl
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	if err := raft.ValidateConfig(rc); err != nil {
		closeTransport(trans)
		return fmt.Errorf("%w: raft: %w", ErrConfig, err)
	}
	r, err := raft.NewRaft(rc, n.fsm, w, w, snaps, trans)
	if err != nil {
		closeTransport(trans)
		return fmt.Errorf("controller: starting raft: %w", err)
	}
	n.raft = r

	if existing {
		if err := n.checkConfiguration(); err != nil {
			return err
		}
	} else if n.isVoter {
		var servers []raft.Server
		for _, v := range sortedVoters(cfg.Voters) {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(strconv.FormatInt(int64(v.ID), 10)), Address: raft.ServerAddress(v.Addr)})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			return fmt.Errorf("controller: bootstrapping raft from the voter list: %w", err)
		}
		n.log.Info("controller: bootstrapped the metadata log", "voters", FormatVoters(sortedVoters(cfg.Voters)))
	}
	if id := n.localClusterID(); id != "" && cfg.ClusterID != "" && id != cfg.ClusterID {
		return fmt.Errorf("%w: the metadata log in %s belongs to cluster %q, not the configured %q", cluster.ErrClusterIDMismatch, cfg.Dir, id, cfg.ClusterID)
	}

	if cfg.Gossip.BindAddr != "" {
		g := cfg.Gossip
		g.ClusterID = cfg.ClusterID
		if g.ClusterID == "" {
			g.ClusterID = gossipLabel
		}
		g.Meta = gossip.Meta{
			NodeID:             n.id,
			KafkaAddr:          n.kafkaAddr(),
			RaftAddr:           n.info.RaftAddr,
			Rack:               n.info.Rack,
			ControllerEligible: n.isVoter,
			Incarnation:        int64(n.info.Incarnation),
			VoterSet:           n.voterSet,
		}
		if g.Logger == nil {
			g.Logger = cfg.Logger.With("node", n.id)
		}
		ml, err := gossip.Start(g)
		if err != nil {
			return err
		}
		n.ml = ml
		n.goFunc(n.pumpEvents)
	}
	n.goFunc(func() { n.monitorLeadership(notify) })
	n.goFunc(n.brokerLoop)
	return nil
}

// strings0Port reports whether addr has port 0 (bound at start).
func strings0Port(addr string) bool {
	_, p, err := net.SplitHostPort(addr)
	return err == nil && p == "0"
}

func closeTransport(t raft.Transport) {
	if c, ok := t.(raft.WithClose); ok {
		c.Close()
	}
}

// goFunc runs f on a goroutine that Close waits for.
func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// checkConfiguration compares the voters of the latest raft configuration
// (from the snapshot and log) with the configured voter list.
func (n *Node) checkConfiguration() error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("controller: reading the raft configuration: %w", err)
	}
	var have []Voter
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		id, err := strconv.ParseInt(string(s.ID), 10, 32)
		if err != nil {
			return fmt.Errorf("%w: raft configuration has server id %q", ErrConfig, s.ID)
		}
		have = append(have, Voter{ID: int32(id), Addr: string(s.Address)})
	}
	if len(have) == 0 {
		return nil // a non-voter that was never added: nothing to compare
	}
	want := sortedVoters(n.cfg.Voters)
	have = sortedVoters(have)
	if !slices.Equal(have, want) {
		return fmt.Errorf("%w: the raft state in %s has voters %s, the configured voter list is %s (a node with raft state is never bootstrapped again)",
			ErrConfig, n.cfg.Dir, FormatVoters(have), FormatVoters(want))
	}
	return nil
}

// localClusterID is the cluster id this node's state or log holds, "" if
// none: the FSM's (restored from a snapshot) or, before the log is
// replayed, the first cluster-id record in the log.
func (n *Node) localClusterID() string {
	var id string
	n.fsm.View(func(s *cluster.State) { id = s.ClusterID() })
	if id != "" {
		return id
	}
	first, err1 := n.wal.FirstIndex()
	last, err2 := n.wal.LastIndex()
	if err1 != nil || err2 != nil || first == 0 {
		return ""
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if n.wal.GetLog(i, &l) != nil || l.Type != raft.LogCommand {
			continue
		}
		recs, err := cluster.DecodeEntry(l.Data)
		if err != nil {
			continue
		}
		for _, r := range recs {
			if c, ok := r.(cluster.ClusterIDRecord); ok {
				return c.ClusterID
			}
		}
	}
	return ""
}

func (n *Node) kafkaAddr() string {
	return net.JoinHostPort(n.info.Host, strconv.Itoa(int(n.info.Port)))
}

// onApply runs after each committed command entry, on raft's FSM goroutine.
func (n *Node) onApply(index uint64, recs []cluster.Record, err error) {
	if err == nil {
		n.epochs.Lock()
		for _, r := range recs {
			switch r := r.(type) {
			case cluster.RegisterBrokerRecord:
				n.epochs.m[r.ID] = epochAt{r.Epoch, index}
			case cluster.FenceBrokerRecord:
				n.epochs.m[r.Broker] = epochAt{r.Epoch, index}
			}
		}
		n.epochs.Unlock()
		for _, r := range recs {
			if c, ok := r.(cluster.ClusterIDRecord); ok {
				n.checkClusterID(c.ClusterID)
			}
		}
	}
	if index > n.applied.Load() {
		n.applied.Store(index)
	}
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(index, recs, err)
	}
	n.notifyChanged()
}

// onRestore runs after a snapshot replaced the state, on raft's FSM
// goroutine: the snapshot restored is the newest in the store.
func (n *Node) onRestore() {
	var index uint64
	if list, err := n.snaps.List(); err == nil && len(list) > 0 {
		index = list[0].Index
	}
	n.epochs.Lock()
	clear(n.epochs.m)
	n.epochs.floor = index
	n.epochs.Unlock()
	if index > n.applied.Load() {
		n.applied.Store(index)
	}
	var id string
	n.fsm.View(func(s *cluster.State) { id = s.ClusterID() })
	if id != "" {
		n.checkClusterID(id)
	}
	if n.cfg.OnRestore != nil {
		n.cfg.OnRestore()
	}
	n.notifyChanged()
}

// caughtUpIndex returns the log index a broker at epoch must have applied
// to have caught up; ok is false when the epoch is not the one this node
// has seen set last (its record is applying right now).
func (n *Node) caughtUpIndex(id int32, epoch int64) (uint64, bool) {
	n.epochs.Lock()
	defer n.epochs.Unlock()
	if e, ok := n.epochs.m[id]; ok {
		return e.index, e.epoch == epoch
	}
	return n.epochs.floor, true
}

func (n *Node) checkClusterID(id string) {
	if n.cfg.ClusterID != "" && id != n.cfg.ClusterID {
		n.fail(fmt.Errorf("%w: the metadata log names cluster %q, this node is configured for %q", cluster.ErrClusterIDMismatch, id, n.cfg.ClusterID))
	}
}

// fail records a fatal condition and stops the node (in the background:
// fail may run on raft's goroutines, which Close waits for).
func (n *Node) fail(err error) {
	n.fatal.Lock()
	first := n.fatal.err == nil
	if first {
		n.fatal.err = err
	}
	n.fatal.Unlock()
	if first {
		n.log.Error("controller: stopping", "err", err)
		go n.Close()
	}
}

func (n *Node) notifyChanged() {
	n.changed.Lock()
	close(n.changed.ch)
	n.changed.ch = make(chan struct{})
	n.changed.Unlock()
}

// ID returns this broker's node id.
func (n *Node) ID() int32 { return n.id }

// Info returns this broker as it registers (with its incarnation and raft
// address filled in).
func (n *Node) Info() cluster.BrokerInfo { return n.info }

// View runs fn on the local copy of the metadata (see cluster.FSM.View: fn
// must neither keep nor modify s).
func (n *Node) View(fn func(s *cluster.State)) { n.fsm.View(fn) }

// Applied returns the index of the last metadata log entry applied here
// (of a command entry or a restored snapshot).
func (n *Node) Applied() uint64 { return n.applied.Load() }

// Changed returns a channel closed at the next applied entry or restore
// (then replaced): take it before reading the state, then wait on it.
func (n *Node) Changed() <-chan struct{} {
	n.changed.Lock()
	defer n.changed.Unlock()
	return n.changed.ch
}

// Controller returns the broker id of the current raft leader, -1 if it is
// not known.
func (n *Node) Controller() int32 {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return -1
	}
	v, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(v)
}

// IsController reports whether this node runs the controller loop (its
// raft node leads).
func (n *Node) IsController() bool { return n.term.Load() != nil }

// BrokerEpoch returns this broker's registration as the local state has it;
// ok is false until this incarnation is registered.
func (n *Node) BrokerEpoch() (epoch int64, fenced bool, ok bool) {
	n.fsm.View(func(s *cluster.State) {
		if b := s.Broker(n.id); b != nil && b.Incarnation == n.info.Incarnation {
			epoch, fenced, ok = b.Epoch, b.Fenced, true
		}
	})
	return
}

// Ready returns a channel closed once this broker is registered with its
// incarnation and unfenced (it has caught up on the metadata log).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Members returns the live gossip members, this one included; without
// gossip, this broker alone.
func (n *Node) Members() []gossip.Member {
	if n.ml == nil {
		return []gossip.Member{{Meta: n.selfMeta()}}
	}
	return n.ml.Members()
}

func (n *Node) selfMeta() gossip.Meta {
	return gossip.Meta{
		NodeID: n.id, KafkaAddr: n.kafkaAddr(), RaftAddr: n.info.RaftAddr, Rack: n.info.Rack,
		ControllerEligible: n.isVoter, Incarnation: int64(n.info.Incarnation), VoterSet: n.voterSet,
	}
}

// Faults returns the raft StreamLayer, whose Block and Heal cut and restore
// raft links (tests); nil when Config.RaftTransport was given.
func (n *Node) Faults() *StreamLayer { return n.layer }

// Err returns the fatal condition found after Start (a cluster id
// mismatch), nil otherwise.
func (n *Node) Err() error {
	n.fatal.Lock()
	defer n.fatal.Unlock()
	return n.fatal.err
}

// Close stops the node hard, as a crash looks to the others (no gossip
// leave, no controlled shutdown): gossip, raft, the loops, the log. It is
// safe to call more than once and after Shutdown.
func (n *Node) Close() error {
	n.close.once.Do(func() { n.close.err = n.closeAll() })
	return n.close.err
}

func (n *Node) closeAll() error {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	var errs []error
	if n.ml != nil {
		errs = append(errs, n.ml.Close())
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	} else if n.layer != nil {
		n.layer.Close()
	}
	n.wg.Wait()
	if n.kc != nil {
		n.kc.Close()
	}
	if n.wal != nil {
		errs = append(errs, n.wal.Close())
	}
	return errors.Join(errs...)
}

// GossipAddr returns this member's advertised gossip address, "" without
// gossip.
func (n *Node) GossipAddr() string {
	if n.ml == nil {
		return ""
	}
	return n.ml.Addr()
}
