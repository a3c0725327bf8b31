package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/gossip"
	"github.com/easel-io/easel/internal/freeport"
)

// testLogger logs at EASEL_TEST_LOG's level (debug, info, warn, error);
// default: errors only.
func testLogger() *slog.Logger {
	level := slog.LevelError + 4
	switch os.Getenv("EASEL_TEST_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// hostOf gives node id its own loopback address, 127.0.0.(10+id).
func hostOf(id int32) string { return "127.0.0." + strconv.Itoa(10+int(id)) }

// freePort returns a port free for TCP and UDP on host (see package
// freeport: outside the ephemeral range, so a restarted node gets it back).
func freePort(t testing.TB, host string) int {
	t.Helper()
	p, err := freeport.Pick(host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spec is one node's fixed addresses and directory, kept across restarts.
type spec struct {
	id                   int32
	dir                  string
	raftAddr, gossipAddr string
	kafkaHost            string
	kafkaPort            int32
	voter                bool
	restarts             int
	gfault               *gossip.FaultTransport
}

func (s *spec) kafkaAddr() string {
	return net.JoinHostPort(s.kafkaHost, strconv.Itoa(int(s.kafkaPort)))
}

// testCluster runs brokers in-process on loopback: raft over TCP
// (StreamLayer), gossip over UDP/TCP with FaultTransport, Kafka requests
// through a LocalNet. Every poll observes each live node's state with one
// History (a view per node incarnation).
type testCluster struct {
	t      *testing.T
	net    *LocalNet
	voters []Voter
	specs  map[int32]*spec
	nodes  map[int32]*Node
	views  map[int32]int
	nview  int
	hist   cluster.History
	policy cluster.Policy
	mutate func(*Config) // optional per-test config change
	mu     sync.Mutex    // guards hist (observe may run from helpers)
}

func newTestCluster(t *testing.T, voters, others []int32) *testCluster {
	c := &testCluster{t: t, net: NewLocalNet(), specs: map[int32]*spec{}, nodes: map[int32]*Node{}, views: map[int32]int{}}
	for _, id := range append(append([]int32(nil), voters...), others...) {
		h := hostOf(id)
		s := &spec{id: id, dir: t.TempDir(), kafkaHost: h, kafkaPort: 9092,
			raftAddr: net.JoinHostPort(h, strconv.Itoa(freePort(t, h))), gossipAddr: net.JoinHostPort(h, strconv.Itoa(freePort(t, h)))}
		c.specs[id] = s
	}
	for _, id := range voters {
		c.specs[id].voter = true
		c.voters = append(c.voters, Voter{ID: id, Addr: c.specs[id].raftAddr})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	return c
}

func (c *testCluster) config(id int32) Config {
	s := c.specs[id]
	var seeds []string
	for _, o := range c.specs {
		if o.id != id {
			seeds = append(seeds, o.gossipAddr)
		}
	}
	g := gossip.FastConfig()
	g.BindAddr = s.gossipAddr
	g.Seeds = seeds
	g.Wrap = func(inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		s.gfault = gossip.NewFaultTransport(inner)
		return s.gfault
	}
	cfg := Config{
		Broker:                  cluster.BrokerInfo{ID: id, Host: s.kafkaHost, Port: s.kafkaPort, RaftAddr: s.raftAddr},
		Dir:                     s.dir,
		Voters:                  c.voters,
		Gossip:                  g,
		Policy:                  c.policy,
		Raft:                    FastRaftTiming(),
		Forward:                 c.net.Forwarder(s.kafkaAddr()),
		PreferredLeaderInterval: time.Second,
		WALSegmentSize:          1 << 20,
		Logger:                  testLogger(),
	}
	if c.mutate != nil {
		c.mutate(&cfg)
	}
	return cfg
}

func (c *testCluster) start(id int32) *Node {
	c.t.Helper()
	n, err := Start(c.config(id))
	if err != nil {
		c.t.Fatalf("start %d: %v", id, err)
	}
	c.nodes[id] = n
	c.net.Handle(c.specs[id].kafkaAddr(), n.ServeInterBroker)
	c.mu.Lock()
	c.nview++
	c.views[id] = c.nview
	c.mu.Unlock()
	c.specs[id].restarts++
	return n
}

func (c *testCluster) ids() []int32 {
	var ids []int32
	for id := range c.specs {
		ids = append(ids, id)
	}
	return sortIDs(ids)
}

func sortIDs(ids []int32) []int32 {
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[j] < ids[i] {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	return ids
}

// kill stops a node hard (Close: no leave, no controlled shutdown).
func (c *testCluster) kill(id int32) {
	c.t.Helper()
	n := c.nodes[id]
	c.net.Handle(c.specs[id].kafkaAddr(), nil)
	delete(c.nodes, id)
	if err := n.Close(); err != nil {
		c.t.Logf("close %d: %v", id, err)
	}
}

// observe checks every live node's state against the History.
func (c *testCluster) observe() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.nodes {
		var err error
		n.View(func(s *cluster.State) {
			if err = s.Check(); err == nil {
				err = c.hist.Observe(c.views[id], s)
			}
		})
		if err != nil {
			c.t.Fatalf("node %d: %v", id, err)
		}
	}
}

// waitFor polls cond, observing every state at each poll.
func (c *testCluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	waitFor(c.t, timeout, what, func() bool {
		c.observe()
		return cond()
	})
}

// controller waits for a live node that runs the controller loop and that
// every live node names as controller.
func (c *testCluster) controller() *Node {
	c.t.Helper()
	var ctrl *Node
	c.waitFor(20*time.Second, "a controller", func() bool {
		ctrl = nil
		for _, n := range c.nodes {
			if n.IsController() {
				ctrl = n
			}
		}
		if ctrl == nil {
			return false
		}
		for _, n := range c.nodes {
			if n.Controller() != ctrl.ID() {
				return false
			}
		}
		return true
	})
	return ctrl
}

// do runs a controller request at whichever node is the controller,
// retrying while leadership moves.
func (c *testCluster) do(what string, f func(ctx context.Context, n *Node) error) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := c.controller()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := f(ctx, n)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotController) && !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
			c.t.Fatalf("%s at controller %d: %v", what, n.ID(), err)
		}
	}
}

// allReady waits until every live node is Ready and every live node's
// state shows every live node registered with its incarnation, unfenced.
func (c *testCluster) allReady() {
	c.t.Helper()
	c.waitFor(30*time.Second, "every broker registered and unfenced everywhere", func() bool {
		for _, n := range c.nodes {
			select {
			case <-n.Ready():
			default:
				return false
			}
		}
		for _, n := range c.nodes {
			ok := true
			n.View(func(s *cluster.State) {
				for _, m := range c.nodes {
					b := s.Broker(m.ID())
					if b == nil || b.Fenced || b.Incarnation != m.Info().Incarnation {
						ok = false
					}
				}
			})
			if !ok {
				return false
			}
		}
		return true
	})
}

// caughtUp waits until every live node has applied what the controller has.
func (c *testCluster) caughtUp() {
	c.t.Helper()
	ctrl := c.controller()
	want := ctrl.Applied()
	c.waitFor(20*time.Second, fmt.Sprintf("every node at index %d", want), func() bool {
		for _, n := range c.nodes {
			if n.Applied() < want {
				return false
			}
		}
		return true
	})
}

// partition cuts node id off from every other node: gossip, raft, Kafka.
func (c *testCluster) partition(id int32) {
	s := c.specs[id]
	for _, o := range c.specs {
		if o.id == id {
			continue
		}
		if s.gfault != nil {
			s.gfault.Block(o.gossipAddr)
		}
		if o.gfault != nil {
			o.gfault.Block(s.gossipAddr)
		}
		if n := c.nodes[id]; n != nil {
			n.Faults().Block(o.raftAddr)
		}
		if n := c.nodes[o.id]; n != nil {
			n.Faults().Block(s.raftAddr)
		}
		c.net.Block(s.kafkaAddr(), o.kafkaAddr())
	}
}

// heal restores every link.
func (c *testCluster) heal() {
	for _, s := range c.specs {
		if s.gfault != nil {
			s.gfault.Heal()
		}
		if n := c.nodes[s.id]; n != nil {
			n.Faults().Heal()
		}
	}
	c.net.Heal()
}

// leaders returns, as node id's state has it, each partition's leader and
// leader epoch by "topic/index".
func leaders(n *Node) map[string][2]int32 {
	out := map[string][2]int32{}
	n.View(func(s *cluster.State) {
		for _, t := range s.Topics() {
			for _, p := range s.Partitions(t.ID) {
				out[t.Name+"/"+strconv.Itoa(int(p.Index))] = [2]int32{p.Leader, p.LeaderEpoch}
			}
		}
	})
	return out
}
