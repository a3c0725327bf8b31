package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/easel-io/easel/cluster"
)

func TestCluster3(t *testing.T) { testScenario(t, []int32{1, 2, 3}, []int32{4}) }
func TestCluster5(t *testing.T) { testScenario(t, []int32{1, 2, 3, 4, 5}, []int32{6}) }

// testScenario: voters and one non-voter; topics with RF 3; the controller
// killed (a new one elected, changes go on) and restarted; a broker killed
// (its partitions get new leaders from the ISR with bumped epochs) and
// restarted (new incarnation, same directory: it rejoins, catches up, is
// unfenced); a node partitioned away (gossip, raft and Kafka links) and
// healed. Every poll checks every live node's state with one History.
func testScenario(t *testing.T, voters, others []int32) {
	c := newTestCluster(t, voters, others)
	t0 := time.Now()
	for _, id := range voters {
		c.start(id)
	}
	c.controller()
	t.Logf("first controller after %v", time.Since(t0))
	c.allReady()
	t.Logf("%d voters ready after %v", len(voters), time.Since(t0))

	// The non-voter is added and follows the log.
	for _, id := range others {
		c.start(id)
	}
	c.allReady()
	for _, id := range others {
		waitFor(t, 10*time.Second, "non-voter in the raft configuration", func() bool {
			f := c.controller().raft.GetConfiguration()
			if f.Error() != nil {
				return false
			}
			for _, s := range f.Configuration().Servers {
				if string(s.ID) == idString(id) && s.Suffrage.String() == "Nonvoter" {
					return true
				}
			}
			return false
		})
	}

	for i := range 4 {
		name := fmt.Sprintf("t%d", i)
		c.do("create "+name, func(ctx context.Context, n *Node) error {
			return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: name, Partitions: 6, ReplicationFactor: 3})
		})
	}
	c.caughtUp()
	for _, n := range c.nodes {
		var topics int
		n.View(func(s *cluster.State) { topics = len(s.Topics()) })
		if topics != 4 {
			t.Fatalf("node %d sees %d topics", n.ID(), topics)
		}
	}

	// Kill the controller: a new one is elected and decides on.
	old := c.controller()
	oldID := old.ID()
	before := leaders(c.nodes[others[0]])
	killed := time.Now()
	c.kill(oldID)
	var elected time.Duration
	c.waitFor(20*time.Second, "a new controller", func() bool {
		for _, n := range c.nodes {
			if n.IsController() {
				elected = time.Since(killed)
				return true
			}
		}
		return false
	})
	c.do("create after controller kill", func(ctx context.Context, n *Node) error {
		return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "after-kill", Partitions: 3, ReplicationFactor: 3})
	})
	t.Logf("controller %d killed: new controller in %v, a topic created %v after the kill", oldID, elected, time.Since(killed))
	c.waitLeadersMoved(oldID, before, killed)
	c.start(oldID)
	c.allReady()
	c.caughtUp()
	t.Logf("old controller %d back and unfenced %v after the kill", oldID, time.Since(killed))

	// Kill a broker that is not the controller and leads partitions.
	ctrl := c.controller()
	var victim int32 = -1
	ctrl.View(func(s *cluster.State) {
		for _, id := range c.ids() {
			if id != ctrl.ID() && len(s.LedBy(id)) > 0 && c.specs[id].voter {
				victim = id
				return
			}
		}
	})
	if victim < 0 {
		t.Fatal("no broker besides the controller leads a partition")
	}
	before = leaders(ctrl)
	killed = time.Now()
	c.kill(victim)
	c.waitLeadersMoved(victim, before, killed)
	c.start(victim)
	c.allReady()
	c.caughtUp()
	t.Logf("broker %d back and unfenced %v after its kill", victim, time.Since(killed))

	// Partition the controller away, then heal.
	ctrl = c.controller()
	cut := ctrl.ID()
	before = leaders(c.nodes[others[0]])
	parted := time.Now()
	c.partition(cut)
	c.waitFor(30*time.Second, "a controller on the majority side", func() bool {
		for id, n := range c.nodes {
			if id != cut && n.IsController() {
				return true
			}
		}
		return false
	})
	t.Logf("controller %d partitioned away: new controller after %v", cut, time.Since(parted))
	c.waitLeadersMoved(cut, before, parted)
	c.heal()
	healed := time.Now()
	c.allReady()
	c.caughtUp()
	t.Logf("healed: %d unfenced again after %v", cut, time.Since(healed))
	c.do("create after heal", func(ctx context.Context, n *Node) error {
		return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "after-heal", Partitions: 3, ReplicationFactor: 3})
	})
	c.caughtUp()
	c.observe()
}

func idString(id int32) string { return fmt.Sprint(id) }

// waitLeadersMoved waits until every live node's state shows broker gone
// fenced and leading nothing, and each partition it led in before with a
// new leader (or none) under a higher leader epoch.
func (c *testCluster) waitLeadersMoved(gone int32, before map[string][2]int32, since time.Time) {
	c.t.Helper()
	c.waitFor(30*time.Second, fmt.Sprintf("broker %d's partitions moved", gone), func() bool {
		for id, n := range c.nodes {
			if id == gone {
				continue
			}
			ok := true
			n.View(func(s *cluster.State) {
				b := s.Broker(gone)
				if b == nil || !b.Fenced || len(s.LedBy(gone)) > 0 {
					ok = false
				}
			})
			if !ok {
				return false
			}
			now := leaders(n)
			for k, was := range before {
				if was[0] != gone {
					continue
				}
				if cur := now[k]; cur[0] == gone || cur[1] <= was[1] {
					c.t.Fatalf("node %d: %s led by %d at epoch %d, was %d at %d", id, k, cur[0], cur[1], was[0], was[1])
				}
			}
		}
		return true
	})
	c.t.Logf("broker %d fenced and its partitions moved on every node %v after the fault", gone, time.Since(since))
}
