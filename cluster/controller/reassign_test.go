package controller

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReassignment moves a partition on a cluster of three voters and two
// other brokers: from [1,2,3] to two new brokers and one voter that stays.
// The new replicas' ISR joins are what their leader would propose
// (AlterPartition through Forward; the follower fetching is the broker's).
// Fault: the controller is killed (Close) after the first new replica has
// joined; the reassignment, in the log, is carried on by the next one.
// Timings: FastRaftTiming, gossip.FastConfig; every wait has a deadline.
func TestReassignment(t *testing.T) {
	c := newTestCluster(t, []int32{1, 2, 3}, []int32{4, 5})
	for _, id := range c.ids() {
		c.start(id)
	}
	c.allReady()
	c.do("create", func(ctx context.Context, n *Node) error {
		return n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "r", Partitions: -1, ReplicationFactor: -1,
			Assignment: [][]int32{{1, 2, 3}, {1, 2, 3}}})
	})
	c.caughtUp()
	ctrl := c.controller()
	// The target keeps one voter that is not the controller, which dies.
	var keep int32
	for _, id := range []int32{1, 2, 3} {
		if id != ctrl.ID() {
			keep = id
			break
		}
	}
	target := []int32{4, 5, keep}

	// Kafka's errors, one per entry, in order.
	var errs []error
	c.do("reassign", func(ctx context.Context, n *Node) error {
		errs = n.AlterReassignments(ctx, []Reassignment{
			{Topic: "r", Partition: 0, Replicas: target},
			{Topic: "r", Partition: 1, Replicas: nil},
			{Topic: "nope", Partition: 0, Replicas: []int32{1}},
			{Topic: "r", Partition: 1, Replicas: []int32{4, 4}},
		})
		if errors.Is(errs[0], ErrNotController) {
			return errs[0]
		}
		return nil
	})
	for i, want := range []*kerr.Error{nil, kerr.NoReassignmentInProgress, kerr.UnknownTopicOrPartition, kerr.InvalidReplicaAssignment} {
		if got := cluster.KafkaError(errs[i]); got != want {
			t.Fatalf("entry %d: %v (%v), want %v", i, got, errs[i], want)
		}
	}
	// Not at the controller: every entry is refused.
	for _, n := range c.nodes {
		if n != ctrl {
			errs := n.AlterReassignments(context.Background(), []Reassignment{{Topic: "r", Partition: 1, Replicas: target}, {Topic: "r"}})
			if len(errs) != 2 || !errors.Is(errs[0], ErrNotController) || !errors.Is(errs[1], ErrNotController) {
				t.Fatalf("at node %d: %v", n.ID(), errs)
			}
			break
		}
	}
	wantMoving := OngoingReassignment{Topic: "r", Partition: 0,
		Replicas: append(slices.Clone(target), without(1, 2, 3, keep)...), Adding: []int32{4, 5}, Removing: without(1, 2, 3, keep)}
	c.waitFor(20*time.Second, "the reassignment on every node", func() bool {
		for _, n := range c.nodes {
			got := n.Reassignments()
			if len(got) != 1 || !equalOngoing(got[0], wantMoving) {
				return false
			}
		}
		return true
	})

	// 4 catches up; then the controller dies.
	c.joinISR(ctrl, "r", 0, 4)
	c.kill(ctrl.ID())
	next := c.controller()
	if got := next.Reassignments(); len(got) != 1 || !equalOngoing(got[0], wantMoving) {
		t.Fatalf("the new controller %d has %+v", next.ID(), got)
	}
	// 5 catches up: the target is in sync, and the move completes.
	c.joinISR(next, "r", 0, 5)
	c.waitFor(20*time.Second, "the move complete on every node", func() bool {
		for _, n := range c.nodes {
			var p cluster.Partition
			n.View(func(s *cluster.State) { p = *s.Partition("r", 0) })
			if !slices.Equal(p.Replicas, target) || p.Reassigning() || !slices.Contains(target, p.Leader) || len(n.Reassignments()) != 0 {
				return false
			}
		}
		return true
	})
}

// without returns 1, 2, 3 without keep (the original replicas removed).
func without(a, b, c, keep int32) []int32 {
	return slices.DeleteFunc([]int32{a, b, c}, func(x int32) bool { return x == keep })
}

func equalOngoing(a, b OngoingReassignment) bool {
	return a.Topic == b.Topic && a.Partition == b.Partition &&
		slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.Adding, b.Adding) && slices.Equal(a.Removing, b.Removing)
}

// joinISR adds broker to the partition's ISR as its leader would: an
// AlterPartition through Forward from the leader's node, under the epochs
// the controller's state has, retried while they move (a failover, a
// fencing) until the broker is in the ISR.
func (c *testCluster) joinISR(ctrl *Node, topic string, index int32, broker int32) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var req *kmsg.AlterPartitionRequest
		var leader *Node
		done := false
		ctrl.View(func(s *cluster.State) {
			p := s.Partition(topic, index)
			if p.InISR(broker) {
				done = true
				return
			}
			if p.Leader == cluster.NoLeader || c.nodes[p.Leader] == nil || !s.Live(p.Leader) {
				return
			}
			leader = c.nodes[p.Leader]
			req = kmsg.NewPtrAlterPartitionRequest()
			req.Version, req.BrokerID, req.BrokerEpoch = 2, p.Leader, s.Broker(p.Leader).Epoch
			rt := kmsg.NewAlterPartitionRequestTopic()
			rt.TopicID = p.Topic
			rp := kmsg.NewAlterPartitionRequestTopicPartition()
			rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch = p.Index, p.LeaderEpoch, p.PartitionEpoch
			rp.NewISR = append(slices.Clone(p.ISR), broker)
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		})
		if done {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("broker %d did not join the ISR of %s/%d", broker, topic, index)
		}
		if req == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := leader.Forward(ctx, req)
		cancel()
		if err == nil {
			ar := resp.(*kmsg.AlterPartitionResponse)
			if ar.ErrorCode == 0 && ar.Topics[0].Partitions[0].ErrorCode == 0 {
				c.waitFor(20*time.Second, "the ISR change applied at the controller", func() bool {
					in := false
					ctrl.View(func(s *cluster.State) { in = s.Partition(topic, index).InISR(broker) })
					return in
				})
				return
			}
			c.t.Logf("AlterPartition from %d: %v/%v; retrying", leader.ID(), kerr.ErrorForCode(ar.ErrorCode), kerr.ErrorForCode(ar.Topics[0].Partitions[0].ErrorCode))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
