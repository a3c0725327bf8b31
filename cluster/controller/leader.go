package controller

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/gossip"
	"github.com/hashicorp/raft"
)

// applyTimeout bounds how long raft.Apply and membership changes wait to be
// enqueued; raftTimeout bounds Barrier and configuration reads.
const (
	applyTimeout = 10 * time.Second
	raftTimeout  = 10 * time.Second
)

// term is one leadership's controller loop.
type term struct {
	reqs chan *request // unbuffered: a request taken is always answered
	done chan struct{} // closed when the loop has ended
}

// request is one controller decision to make and commit.
type request struct {
	decide func(s *cluster.State) ([]cluster.Record, error)
	// after, if set, reads the state once the records have applied.
	after func(s *cluster.State)
	// unfences reports whether the request may have unfenced a broker
	// (preferred leaders are elected afterwards).
	unfences bool
	// growsISR reports whether the request may have grown an ISR
	// (reassignments are completed afterwards).
	growsISR bool
	resp     chan error // capacity 1
}

// eventQueue holds gossip events for the controller loop. It queues only
// while a loop runs (a new loop starts from gossip's member list).
type eventQueue struct {
	mu    sync.Mutex
	on    bool
	items []gossip.Event
	wake  chan struct{} // capacity 1
}

func (q *eventQueue) push(ev gossip.Event) {
	q.mu.Lock()
	if !q.on {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) enable(on bool) {
	q.mu.Lock()
	q.on, q.items = on, nil
	q.mu.Unlock()
}

func (q *eventQueue) take() []gossip.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// pumpEvents reads gossip's events (which must be read continuously) into
// the controller's queue.
func (n *Node) pumpEvents() {
	for ev := range n.ml.Events() {
		n.events.push(ev)
	}
}

// monitorLeadership starts the controller loop when raft reports this node
// leads and stops it when it no longer does (raft's NotifyCh: every change
// is delivered, unlike LeaderCh).
func (n *Node) monitorLeadership(notify <-chan bool) {
	var stop, done chan struct{}
	end := func() {
		if stop != nil {
			close(stop)
			<-done
			stop, done = nil, nil
		}
	}
	defer end()
	for {
		select {
		case leader := <-notify:
			switch {
			case leader && stop == nil:
				stop, done = make(chan struct{}), make(chan struct{})
				go n.leaderLoop(stop, done)
			case !leader:
				end()
			}
		case <-n.stop:
			return
		}
	}
}

// leaderLoop is the controller: Barrier, InitCluster, Reconcile, Import,
// then one decision at a time for gossip events, requests and timers,
// until stop.
func (n *Node) leaderLoop(stop, done chan struct{}) {
	t := &term{reqs: make(chan *request), done: done}
	n.events.enable(true)
	n.term.Store(t)
	start := time.Now()
	n.log.Info("controller: won leadership")
	defer func() {
		n.term.CompareAndSwap(t, nil)
		n.events.enable(false)
		close(done)
		n.log.Info("controller: lost leadership")
	}()

	backoff := 50 * time.Millisecond
	for {
		err := n.establish()
		if err == nil {
			break
		}
		n.log.Warn("controller: taking over failed; retrying", "err", err)
		if errors.Is(err, cluster.ErrClusterIDMismatch) {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	n.log.Info("controller: took over", "in", time.Since(start))

	elect := time.NewTicker(n.cfg.PreferredLeaderInterval)
	defer elect.Stop()
	// reconcile repairs what a lost event or failed change left behind.
	reconcile := time.NewTicker(max(10*n.timing.HeartbeatTimeout, time.Second))
	defer reconcile.Stop()
	for {
		select {
		case <-stop:
			return
		case <-n.events.wake:
			for _, ev := range n.events.take() {
				n.handleEvent(ev)
			}
		case r := <-t.reqs:
			err := n.commit(r.decide, r.after)
			r.resp <- err
			if err == nil && r.unfences {
				n.electLeaders()
			}
			if err == nil && (r.growsISR || r.unfences) {
				n.completeReassignments()
			}
		case <-elect.C:
			n.electLeaders()
		case <-reconcile.C:
			if err := n.reconcile(); err != nil {
				n.log.Warn("controller: reconcile", "err", err)
			}
			n.completeReassignments()
		}
	}
}

// establish makes this node the controller of the log it leads: Barrier
// (everything of earlier terms applied), InitCluster, Reconcile against
// gossip until it has nothing to say, raft membership of non-voters,
// Import, leaders for offline partitions.
func (n *Node) establish() error {
	if err := n.raft.Barrier(raftTimeout).Error(); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	var have string
	n.fsm.View(func(s *cluster.State) { have = s.ClusterID() })
	id := n.cfg.ClusterID
	switch {
	case id != "":
	case have != "":
		id = have
	case len(n.voters) == 1:
		id = randomClusterID()
	default:
		id = DerivedClusterID(n.cfg.Voters)
	}
	err := n.commit(func(s *cluster.State) ([]cluster.Record, error) {
		return n.cfg.Policy.InitCluster(s, id, n.cfg.NextProducerID)
	}, nil)
	if errors.Is(err, cluster.ErrClusterIDMismatch) {
		n.fail(fmt.Errorf("%w: the metadata log names cluster %q, this node is configured for %q", err, have, id))
		return err
	}
	if err != nil {
		return fmt.Errorf("init cluster: %w", err)
	}
	if err := n.reconcile(); err != nil {
		return err
	}
	if n.cfg.Import != nil {
		if err := n.commit(n.cfg.Import, nil); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	// An offsets topic from before log compaction gets Kafka's policy.
	if err := n.commit(func(s *cluster.State) ([]cluster.Record, error) {
		recs := n.cfg.Policy.CompactOffsetsTopic(s)
		if len(recs) > 0 {
			n.log.Info("controller: giving " + engine.ConsumerOffsetsTopic + " cleanup.policy=compact")
		}
		return recs, nil
	}, nil); err != nil {
		return fmt.Errorf("compact the offsets topic: %w", err)
	}
	n.electLeaders()
	n.completeReassignments()
	return nil
}

// reconcile brings raft membership and the registered brokers in line with
// gossip's live members.
func (n *Node) reconcile() error {
	members := n.liveMembers()
	for _, m := range members {
		n.ensureRaftMember(m)
	}
	live := make([]cluster.BrokerInfo, len(members))
	for i, m := range members {
		live[i] = memberInfo(m)
	}
	for range 1000 {
		applied := false
		err := n.commit(func(s *cluster.State) ([]cluster.Record, error) {
			recs, err := n.cfg.Policy.Reconcile(s, live)
			applied = len(recs) > 0
			return recs, err
		}, nil)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		if !applied {
			return nil
		}
	}
	return errors.New("reconcile: no end in sight")
}

// liveMembers returns gossip's live members this controller accepts (see
// accept); without gossip, this broker.
func (n *Node) liveMembers() []gossip.Member {
	if n.ml == nil {
		return []gossip.Member{{Meta: n.selfMeta()}}
	}
	var out []gossip.Member
	for _, m := range n.ml.Members() {
		if err := n.accept(m); err != nil {
			n.refuse(m, err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// accept checks a member's gossip metadata against this controller's
// configuration: a member configured with another voter list, one whose
// controller eligibility disagrees with the voter list (and so with the
// raft configuration, which Start checked against it), a voter at another
// raft address than the list's, a non-voter at a voter's raft address, or
// one with no usable addresses is refused.
func (n *Node) accept(m gossip.Member) error {
	if m.VoterSet != n.voterSet {
		return fmt.Errorf("configured with another controller voter list (fingerprint %016x, the controller's %016x is of %s)", m.VoterSet, n.voterSet, FormatVoters(sortedVoters(n.cfg.Voters)))
	}
	v, voter := n.voters[m.NodeID]
	switch {
	case m.ControllerEligible && !voter:
		return fmt.Errorf("claims to be controller-eligible but node %d is not in the voter list %s", m.NodeID, FormatVoters(sortedVoters(n.cfg.Voters)))
	case !m.ControllerEligible && voter:
		return fmt.Errorf("node %d is a voter (%s) but does not claim to be controller-eligible", m.NodeID, FormatVoters([]Voter{v}))
	case voter && m.RaftAddr != v.Addr:
		return fmt.Errorf("raft address %s differs from the voter list's %s", m.RaftAddr, v.Addr)
	case m.RaftAddr == "":
		return errors.New("no raft address")
	}
	if !voter {
		for _, v := range n.voters {
			if v.Addr == m.RaftAddr {
				return fmt.Errorf("raft address %s is voter %d's", m.RaftAddr, v.ID)
			}
		}
	}
	if err := checkAddr(m.KafkaAddr); err != nil {
		return fmt.Errorf("kafka %w", err)
	}
	if err := checkAddr(m.RaftAddr); err != nil {
		return fmt.Errorf("raft %w", err)
	}
	return nil
}

// refuse logs a refused member, once per incarnation and reason.
func (n *Node) refuse(m gossip.Member, err error) {
	key := fmt.Sprintf("%d/%d/%s", m.NodeID, m.Incarnation, err)
	if _, seen := n.refused.LoadOrStore(key, true); !seen {
		n.log.Error("controller: refusing a broker: not registered", "broker", m.NodeID, "gossip_addr", m.Addr, "reason", err)
	}
}

func memberInfo(m gossip.Member) cluster.BrokerInfo {
	host, port, _ := net.SplitHostPort(m.KafkaAddr)
	p, _ := strconv.Atoi(port)
	return cluster.BrokerInfo{
		ID: m.NodeID, Incarnation: uint64(m.Incarnation), Host: host, Port: int32(p),
		RaftAddr: m.RaftAddr, Rack: m.Rack, ControllerEligible: m.ControllerEligible,
	}
}

// ensureRaftMember adds an accepted non-voter to the raft configuration, or
// updates its address.
func (n *Node) ensureRaftMember(m gossip.Member) {
	if _, voter := n.voters[m.NodeID]; voter {
		return
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	id := raft.ServerID(strconv.FormatInt(int64(m.NodeID), 10))
	for _, s := range f.Configuration().Servers {
		if s.ID == id && string(s.Address) == m.RaftAddr {
			return
		}
	}
	if err := n.raft.AddNonvoter(id, raft.ServerAddress(m.RaftAddr), 0, applyTimeout).Error(); err != nil {
		n.log.Warn("controller: adding a non-voter to raft", "broker", m.NodeID, "raft_addr", m.RaftAddr, "err", err)
		return
	}
	n.log.Info("controller: added a non-voter to raft", "broker", m.NodeID, "raft_addr", m.RaftAddr)
}

// removeRaftMember removes a non-voter that left.
func (n *Node) removeRaftMember(m gossip.Member) {
	if _, voter := n.voters[m.NodeID]; voter {
		return
	}
	id := raft.ServerID(strconv.FormatInt(int64(m.NodeID), 10))
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == id && string(s.Address) == m.RaftAddr {
			if err := n.raft.RemoveServer(id, 0, applyTimeout).Error(); err != nil {
				n.log.Warn("controller: removing a non-voter from raft", "broker", m.NodeID, "err", err)
			}
			return
		}
	}
}

// handleEvent turns one gossip event into a decision.
func (n *Node) handleEvent(ev gossip.Event) {
	m := ev.Member
	var err error
	switch ev.Type {
	case gossip.EventJoin, gossip.EventUpdate:
		if aerr := n.accept(m); aerr != nil {
			n.refuse(m, aerr)
			// A registered broker that is no longer acceptable is failed.
			err = n.commit(func(s *cluster.State) ([]cluster.Record, error) {
				if b := s.Broker(m.NodeID); b != nil && !b.Fenced && b.Incarnation == uint64(m.Incarnation) {
					return n.cfg.Policy.BrokerFailed(s, m.NodeID)
				}
				return nil, nil
			}, nil)
			break
		}
		n.ensureRaftMember(m)
		info := memberInfo(m)
		err = n.commit(func(s *cluster.State) ([]cluster.Record, error) {
			return n.cfg.Policy.BrokerJoined(s, info)
		}, nil)
	case gossip.EventFail, gossip.EventLeave:
		err = n.commit(func(s *cluster.State) ([]cluster.Record, error) {
			if b := s.Broker(m.NodeID); b == nil || b.Incarnation != uint64(m.Incarnation) {
				return nil, nil // not registered, or a newer incarnation is
			}
			return n.cfg.Policy.BrokerFailed(s, m.NodeID)
		}, nil)
		if ev.Type == gossip.EventLeave {
			n.removeRaftMember(m)
		}
	case gossip.EventConflict:
		n.log.Error("controller: two live brokers claim one node id; no decision until one goes", "broker", m.NodeID, "gossip_addr", m.Addr)
		return
	}
	if err != nil {
		n.log.Warn("controller: gossip event", "event", ev.Type, "broker", m.NodeID, "err", err)
	} else {
		n.log.Debug("controller: gossip event", "event", ev.Type, "broker", m.NodeID)
	}
}

// electLeaders elects leaders for offline partitions and moves leadership
// back to preferred replicas, one decision each.
func (n *Node) electLeaders() {
	for _, d := range []func(s *cluster.State) []cluster.Record{n.cfg.Policy.ElectOfflineLeaders, n.cfg.Policy.ElectPreferredLeaders} {
		if err := n.commit(func(s *cluster.State) ([]cluster.Record, error) { return d(s), nil }, nil); err != nil {
			n.log.Warn("controller: electing leaders", "err", err)
			return
		}
	}
}

// completeReassignments completes the reassignments whose target replicas
// are all in sync (Policy.CompleteReassignments), as one decision.
func (n *Node) completeReassignments() {
	err := n.commit(func(s *cluster.State) ([]cluster.Record, error) {
		return n.cfg.Policy.CompleteReassignments(s), nil
	}, nil)
	if err != nil {
		n.log.Warn("controller: completing reassignments", "err", err)
	}
}

// commit makes one decision on the latest state and commits its records as
// one raft entry, returning once the entry has applied here (raft answers
// the leader's ApplyFuture after its FSM applied the entry). A rejected
// entry (the decision met a state that changed under it) is decided again.
// Only the controller loop calls it, so decisions are made one at a time.
func (n *Node) commit(decide func(s *cluster.State) ([]cluster.Record, error), after func(s *cluster.State)) error {
	for attempt := 0; ; attempt++ {
		var recs []cluster.Record
		var err error
		n.fsm.View(func(s *cluster.State) { recs, err = decide(s) })
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			f := n.raft.Apply(cluster.AppendEntry(nil, recs), applyTimeout)
			if err := f.Error(); err != nil {
				return fmt.Errorf("%w: %w", ErrNotController, err)
			}
			if resp, _ := f.Response().(error); resp != nil {
				if errors.Is(resp, cluster.ErrRejected) && attempt < 2 {
					n.log.Warn("controller: entry rejected; deciding again", "err", resp)
					continue
				}
				return resp
			}
		}
		if after != nil {
			n.fsm.View(after)
		}
		return nil
	}
}
