package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/gossip"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// NextProducerID from every node at once, then again while the controller
// is killed and replaced: no id is handed out twice.
func TestProducerIDs(t *testing.T) {
	c := newTestCluster(t, []int32{1, 2, 3}, nil)
	c.policy.ProducerIDBlockSize = 7
	for _, id := range c.ids() {
		c.start(id)
	}
	c.allReady()

	var mu sync.Mutex
	seen := map[int64]int32{}
	run := func(nodes []*Node, each int) {
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(nodes))
		for _, n := range nodes {
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					for range each {
						id, err := n.NextProducerID(ctx)
						if err != nil {
							errs <- fmt.Errorf("node %d: %w", n.ID(), err)
							return
						}
						mu.Lock()
						if other, dup := seen[id]; dup {
							errs <- fmt.Errorf("producer id %d handed out by %d and %d", id, other, n.ID())
						}
						seen[id] = n.ID()
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	all := []*Node{c.nodes[1], c.nodes[2], c.nodes[3]}
	run(all, 50)
	ctrl := c.controller().ID()
	var rest []*Node
	for _, n := range all {
		if n.ID() != ctrl {
			rest = append(rest, n)
		}
	}
	c.kill(ctrl)
	run(rest, 50)
	if len(seen) != 2*3*50+2*2*50 {
		t.Fatalf("%d ids", len(seen))
	}
	c.observe()
}

// Shutdown moves leadership off the broker (controlled shutdown) before it
// stops, for the controller itself (and raft leadership moves too) and for
// another broker.
func TestControlledShutdown(t *testing.T) {
	c := newTestCluster(t, []int32{1, 2, 3}, nil)
	for _, id := range c.ids() {
		c.start(id)
	}
	c.allReady()
	c.do("create", func(ctx context.Context, n *Node) error {
		return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "t", Partitions: 9, ReplicationFactor: 3})
	})
	c.caughtUp()

	shutdown := func(n *Node) {
		t.Helper()
		var led int
		n.View(func(s *cluster.State) { led = len(s.LedBy(n.ID())) })
		if led == 0 {
			t.Fatalf("broker %d leads nothing before its shutdown", n.ID())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		if err := n.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown %d: %v", n.ID(), err)
		}
		t.Logf("broker %d (leading %d partitions) shut down in %v", n.ID(), led, time.Since(start))
		// Its own state, applied before it stopped, already shows it.
		n.View(func(s *cluster.State) {
			if b := s.Broker(n.ID()); !b.Fenced || len(s.LedBy(n.ID())) > 0 {
				t.Fatalf("broker %d stopped while fenced=%v leading %d", n.ID(), b.Fenced, len(s.LedBy(n.ID())))
			}
		})
		c.net.Handle(c.specs[n.ID()].kafkaAddr(), nil)
		delete(c.nodes, n.ID())
		c.observe()
	}

	ctrl := c.controller()
	gone := time.Now()
	shutdown(ctrl)
	next := c.controller()
	t.Logf("controller %d shut down: %d leads %v later", ctrl.ID(), next.ID(), time.Since(gone))
	var other *Node
	for _, n := range c.nodes {
		if n != next {
			var led int
			n.View(func(s *cluster.State) { led = len(s.LedBy(n.ID())) })
			if led > 0 {
				other = n
			}
		}
	}
	if other == nil {
		t.Fatal("no other broker leads")
	}
	shutdown(other)
	next.View(func(s *cluster.State) {
		if len(s.LedBy(other.ID())) > 0 || !s.Broker(other.ID()).Fenced {
			t.Fatal("the controller still has the shut-down broker leading")
		}
	})
}

// After a broker restarts, its partitions' leaders add it back to the ISR
// (AlterPartition through Forward, as the replica layer will) and the
// controller's timer moves leadership back to the preferred replicas.
func TestAlterPartitionAndPreferredLeaders(t *testing.T) {
	c := newTestCluster(t, []int32{1, 2, 3}, nil)
	for _, id := range c.ids() {
		c.start(id)
	}
	c.allReady()
	c.do("create", func(ctx context.Context, n *Node) error {
		return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "t", Partitions: 6, ReplicationFactor: 3})
	})
	c.caughtUp()
	ctrl := c.controller()
	var victim int32 = -1
	ctrl.View(func(s *cluster.State) {
		for _, p := range s.Partitions(s.Topic("t").ID) {
			if p.Replicas[0] != ctrl.ID() && p.Leader == p.Replicas[0] {
				victim = p.Leader
			}
		}
	})
	if victim < 0 {
		t.Fatal("no partition led by its preferred replica off the controller")
	}
	c.kill(victim)
	c.waitFor(20*time.Second, "victim out of every ISR", func() bool {
		ok := true
		ctrl.View(func(s *cluster.State) {
			for _, p := range s.ReplicatedOn(victim) {
				if p.InISR(victim) {
					ok = false
				}
			}
		})
		return ok
	})
	c.start(victim)
	c.allReady()
	c.caughtUp()

	// Each leader proposes the full replica set as its ISR.
	var reqs []struct {
		leader *Node
		req    *kmsg.AlterPartitionRequest
	}
	ctrl = c.controller()
	ctrl.View(func(s *cluster.State) {
		tp := s.Topic("t")
		for _, p := range s.Partitions(tp.ID) {
			if p.InISR(victim) {
				continue
			}
			b := s.Broker(p.Leader)
			r := kmsg.NewPtrAlterPartitionRequest()
			r.Version, r.BrokerID, r.BrokerEpoch = 2, p.Leader, b.Epoch
			rt := kmsg.NewAlterPartitionRequestTopic()
			rt.TopicID = tp.ID
			rp := kmsg.NewAlterPartitionRequestTopicPartition()
			rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = p.Index, p.LeaderEpoch, p.PartitionEpoch, p.Replicas
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			reqs = append(reqs, struct {
				leader *Node
				req    *kmsg.AlterPartitionRequest
			}{c.nodes[p.Leader], r})
		}
	})
	if len(reqs) == 0 {
		t.Fatal("no ISR to grow")
	}
	for _, r := range reqs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := r.leader.Forward(ctx, r.req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ar := resp.(*kmsg.AlterPartitionResponse)
		if ar.ErrorCode != 0 || len(ar.Topics) != 1 || ar.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("AlterPartition from %d: %+v", r.leader.ID(), ar)
		}
		if got := ar.Topics[0].Partitions[0].ISR; len(got) != 3 {
			t.Fatalf("ISR %v", got)
		}
	}
	// A second, stale proposal is refused with Kafka's error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := reqs[0].leader.Forward(ctx, reqs[0].req)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.AlterPartitionResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidUpdateVersion.Code {
		t.Fatalf("stale AlterPartition: %v", kerr.ErrorForCode(code))
	}
	c.waitFor(20*time.Second, "preferred leaders back", func() bool {
		ok := true
		for _, n := range c.nodes {
			n.View(func(s *cluster.State) {
				for _, p := range s.Partitions(s.Topic("t").ID) {
					if p.Leader != p.Replicas[0] {
						ok = false
					}
				}
			})
		}
		return ok
	})
}

// Inter-broker requests at a node that does not lead answer NOT_CONTROLLER;
// other keys are not served.
func TestServeInterBrokerNotController(t *testing.T) {
	c := newTestCluster(t, []int32{1, 2, 3}, nil)
	for _, id := range c.ids() {
		c.start(id)
	}
	c.allReady()
	ctrl := c.controller()
	var follower *Node
	for _, n := range c.nodes {
		if n != ctrl {
			follower = n
		}
	}
	ctx := context.Background()
	hb := kmsg.NewPtrBrokerHeartbeatRequest()
	hb.BrokerID = follower.ID()
	resp, ok := follower.ServeInterBroker(ctx, hb)
	if !ok || resp.(*kmsg.BrokerHeartbeatResponse).ErrorCode != kerr.NotController.Code {
		t.Fatalf("heartbeat at a follower: %v %+v", ok, resp)
	}
	if _, ok := follower.ServeInterBroker(ctx, kmsg.NewPtrMetadataRequest()); ok {
		t.Fatal("Metadata served")
	}
	cs := kmsg.NewPtrControlledShutdownRequest() // v0: no broker epoch
	if _, ok := ctrl.ServeInterBroker(ctx, cs); ok {
		t.Fatal("ControlledShutdown v0 served")
	}
	if err := follower.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrNotController) {
		t.Fatalf("CreateTopic at a follower: %v", err)
	}
	// A stale epoch at the controller is Kafka's STALE_BROKER_EPOCH.
	ap := kmsg.NewPtrAllocateProducerIDsRequest()
	ap.BrokerID, ap.BrokerEpoch = follower.ID(), 999
	resp, _ = ctrl.ServeInterBroker(ctx, ap)
	if code := resp.(*kmsg.AllocateProducerIDsResponse).ErrorCode; code != kerr.StaleBrokerEpoch.Code {
		t.Fatalf("stale epoch: %v", kerr.ErrorForCode(code))
	}
}

func TestBadConfig(t *testing.T) {
	h := hostOf(1)
	addr := net.JoinHostPort(h, strconv.Itoa(freePort(t, h)))
	other := net.JoinHostPort(h, strconv.Itoa(freePort(t, h)))

	cfg := singleConfig(t, t.TempDir(), addr)
	cfg.Voters = []Voter{{1, addr}, {1, other}}
	if _, err := Start(cfg); !errors.Is(err, ErrVoters) {
		t.Fatalf("duplicate voter ids: %v", err)
	}
	cfg = singleConfig(t, t.TempDir(), addr)
	cfg.Voters = []Voter{{1, addr}, {2, other}}
	if _, err := Start(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("several voters without gossip: %v", err)
	}
	cfg = singleConfig(t, t.TempDir(), addr)
	cfg.Broker.RaftAddr = other
	if _, err := Start(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("raft address not the voter's: %v", err)
	}
	cfg = singleConfig(t, "", addr)
	if _, err := Start(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("no dir: %v", err)
	}

	dir := t.TempDir()
	cfg = singleConfig(t, dir, addr)
	cfg.ClusterID = "cluster-a"
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	n.View(func(s *cluster.State) {
		if s.ClusterID() != "cluster-a" {
			t.Fatalf("cluster id %q", s.ClusterID())
		}
	})
	n.Close()

	cfg.ClusterID = "cluster-b"
	if n, err := Start(cfg); !errors.Is(err, cluster.ErrClusterIDMismatch) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("restart under another cluster id: %v", err)
	}
	cfg = singleConfig(t, dir, other)
	if n, err := Start(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "voters") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("restart with other voters: %v", err)
	}
	// The original configuration still starts.
	cfg = singleConfig(t, dir, addr)
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitReady(t, n)
}

// recorder is a slog handler that keeps messages.
type recorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newRecorder() recorder                                 { return recorder{mu: &sync.Mutex{}, msgs: new([]string)} }
func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r recorder) WithGroup(string) slog.Handler            { return r }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	*r.msgs = append(*r.msgs, b.String())
	r.mu.Unlock()
	return nil
}
func (r recorder) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range *r.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// A broker configured with another voter list is heard through gossip but
// refused: an error log, never registered, never added to raft.
func TestRefuseOtherVoterList(t *testing.T) {
	c := newTestCluster(t, []int32{1}, []int32{2})
	rec := newRecorder()
	c.mutate = func(cfg *Config) {
		if cfg.Broker.ID == 1 {
			cfg.Logger = slog.New(rec)
		} else {
			cfg.Voters = []Voter{c.voters[0], {ID: 7, Addr: net.JoinHostPort(hostOf(7), "9093")}}
		}
	}
	n1 := c.start(1)
	waitReady(t, n1)
	c.start(2)
	c.waitFor(20*time.Second, "the refusal", func() bool {
		return rec.has("refusing a broker") && rec.has("another controller voter list")
	})
	n1.View(func(s *cluster.State) {
		if s.Broker(2) != nil {
			t.Fatal("refused broker registered")
		}
	})
	f := n1.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if len(f.Configuration().Servers) != 1 {
		t.Fatalf("raft configuration %v", f.Configuration().Servers)
	}
	var found bool
	for _, m := range n1.Members() {
		found = found || m.NodeID == 2
	}
	if !found {
		t.Fatal("broker 2 not a gossip member")
	}
}

// A restart replays from a snapshot, not the whole log.
func TestSnapshotRestart(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort(hostOf(1), strconv.Itoa(freePort(t, hostOf(1))))
	var applies, restores atomic.Int64
	cfg := singleConfig(t, dir, addr)
	cfg.Raft.SnapshotThreshold, cfg.Raft.TrailingLogs = 16, 16
	cfg.OnApply = func(uint64, []cluster.Record, error) { applies.Add(1) }
	cfg.OnRestore = func() { restores.Add(1) }
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	for i := range 60 {
		if err := n.CreateTopic(context.Background(), cluster.CreateTopicRequest{Name: fmt.Sprint("t", i), Partitions: 2, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateTopic(context.Background(), cluster.CreateTopicRequest{Name: "last", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, "snapshots")); len(ents) == 0 {
		t.Fatal("no snapshot")
	}
	applies.Store(0)
	start := time.Now()
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitReady(t, n)
	t.Logf("restart: ready in %v after %d restore(s) and %d applied entries", time.Since(start), restores.Load(), applies.Load())
	if restores.Load() != 1 || applies.Load() >= 30 {
		t.Fatalf("restores %d, applies %d", restores.Load(), applies.Load())
	}
	n.View(func(s *cluster.State) {
		if _, topics, _ := s.Counts(); topics != 61 {
			t.Fatalf("%d topics", topics)
		}
	})
}

// A broker that was down while the log moved past its end catches up from
// the leader's snapshot (InstallSnapshot), then is unfenced.
func TestSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, []int32{1, 2, 3}, nil)
	var restores [4]atomic.Int64
	c.mutate = func(cfg *Config) {
		cfg.Raft.SnapshotThreshold, cfg.Raft.TrailingLogs = 16, 16
		// raft-wal truncates the log's head a whole segment at a time:
		// small segments, so that the entries the down broker lacks are gone.
		cfg.WALSegmentSize = 8 << 10
		id := cfg.Broker.ID
		cfg.OnRestore = func() { restores[id].Add(1) }
	}
	for _, id := range c.ids() {
		c.start(id)
	}
	c.allReady()
	down := int32(3)
	if c.controller().ID() == down {
		down = 2
	}
	c.kill(down)
	for i := range 60 {
		name := fmt.Sprint("t", i)
		c.do("create", func(ctx context.Context, n *Node) error {
			return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: name, Partitions: 8, ReplicationFactor: 2})
		})
	}
	for _, n := range c.nodes {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
		first, _ := n.wal.FirstIndex()
		last, _ := n.wal.LastIndex()
		t.Logf("node %d log %d..%d", n.ID(), first, last)
	}
	c.start(down)
	c.allReady()
	c.caughtUp()
	if restores[down].Load() == 0 {
		t.Fatalf("broker %d caught up without a snapshot", down)
	}
	c.nodes[down].View(func(s *cluster.State) {
		if _, topics, _ := s.Counts(); topics != 60 {
			t.Fatalf("%d topics", topics)
		}
	})
}

func TestGossipMetaOfNode(t *testing.T) {
	c := newTestCluster(t, []int32{1}, nil)
	n := c.start(1)
	waitReady(t, n)
	ms := n.Members()
	if len(ms) != 1 {
		t.Fatalf("members %v", ms)
	}
	want := gossip.Meta{NodeID: 1, KafkaAddr: c.specs[1].kafkaAddr(), RaftAddr: c.specs[1].raftAddr, ControllerEligible: true,
		Incarnation: int64(n.Info().Incarnation), VoterSet: voterSet(c.voters)}
	if ms[0].Meta != want {
		t.Fatalf("meta %+v, want %+v", ms[0].Meta, want)
	}
}

// A non-voter that shuts down leaves gossip and is removed from raft.
func TestNonVoterLeaves(t *testing.T) {
	c := newTestCluster(t, []int32{1}, []int32{2})
	n1 := c.start(1)
	n2 := c.start(2)
	c.allReady()
	servers := func() int {
		f := n1.raft.GetConfiguration()
		if f.Error() != nil {
			return -1
		}
		return len(f.Configuration().Servers)
	}
	c.waitFor(10*time.Second, "non-voter added", func() bool { return servers() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	delete(c.nodes, 2)
	c.waitFor(10*time.Second, "non-voter removed", func() bool { return servers() == 1 })
	n1.View(func(s *cluster.State) {
		if b := s.Broker(2); b == nil || !b.Fenced {
			t.Fatalf("broker 2: %+v", b)
		}
	})
}

// A cluster id learned after Start that is not the configured one stops the
// node: Err says why and requests fail.
func TestClusterIDLearnedLater(t *testing.T) {
	addr := net.JoinHostPort(hostOf(1), strconv.Itoa(freePort(t, hostOf(1))))
	cfg := singleConfig(t, t.TempDir(), addr)
	cfg.ClusterID = "cluster-a"
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitReady(t, n)
	// As if the leader's log named another cluster.
	n.checkClusterID("cluster-b")
	if !errors.Is(n.Err(), cluster.ErrClusterIDMismatch) {
		t.Fatalf("Err: %v", n.Err())
	}
	err = n.CreateTopic(context.Background(), cluster.CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: 1})
	if !errors.Is(err, cluster.ErrClusterIDMismatch) {
		t.Fatalf("CreateTopic after the mismatch: %v", err)
	}
	waitFor(t, 10*time.Second, "node stopped", func() bool {
		select {
		case <-n.stop:
			return n.raft.State().String() == "Shutdown"
		default:
			return false
		}
	})
}
