package controller

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

func singleConfig(t *testing.T, dir string, raftAddr string) Config {
	return Config{
		Broker:         cluster.BrokerInfo{ID: 1, Host: hostOf(1), Port: 9092},
		Dir:            dir,
		Voters:         []Voter{{ID: 1, Addr: raftAddr}},
		Raft:           FastRaftTiming(),
		WALSegmentSize: 1 << 20,
		Logger:         testLogger(),
	}
}

func waitReady(t *testing.T, n *Node) {
	t.Helper()
	select {
	case <-n.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("not ready")
	}
}

// A single voter with no gossip: it elects itself, names the cluster,
// registers and unfences itself, creates topics; a restart with the same
// directory keeps all of it and bootstraps nothing again.
func TestSingleVoter(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort(hostOf(1), strconv.Itoa(freePort(t, hostOf(1))))
	start := time.Now()
	n, err := Start(singleConfig(t, dir, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitReady(t, n)
	t.Logf("ready in %v", time.Since(start))
	if !n.IsController() || n.Controller() != 1 {
		t.Fatalf("controller: %v %d", n.IsController(), n.Controller())
	}
	var id string
	n.View(func(s *cluster.State) { id = s.ClusterID() })
	if len(id) != 22 {
		t.Fatalf("cluster id %q", id)
	}
	epoch, fenced, ok := n.BrokerEpoch()
	if !ok || fenced || epoch < 1 {
		t.Fatalf("broker epoch %d fenced %v ok %v", epoch, fenced, ok)
	}
	ctx := context.Background()
	if err := n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "a", Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "a", Partitions: 3, ReplicationFactor: 1}); !errors.Is(err, cluster.ErrTopicExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := n.CreatePartitions(ctx, "a", 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "b", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteTopic(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	p1, err := n.NextProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := n.NextProducerID(ctx)
	if p2 != p1+1 {
		t.Fatalf("producer ids %d then %d", p1, p2)
	}
	applied := n.Applied()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n2, err := Start(singleConfig(t, dir, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	waitReady(t, n2)
	if n2.Applied() < applied {
		t.Fatalf("applied %d after restart, %d before", n2.Applied(), applied)
	}
	var id2 string
	var parts int32
	var leader int32 = -2
	n2.View(func(s *cluster.State) {
		id2 = s.ClusterID()
		if tp := s.Topic("a"); tp != nil {
			parts = tp.Partitions
		}
		if s.Topic("b") != nil {
			t.Error("deleted topic back")
		}
	})
	if id2 != id || parts != 5 {
		t.Fatalf("after restart: cluster id %q (was %q), partitions %d", id2, id, parts)
	}
	e2, _, _ := n2.BrokerEpoch()
	if e2 <= epoch {
		t.Fatalf("epoch %d after restart, %d before", e2, epoch)
	}
	// The restart's new incarnation led its partitions again once unfenced.
	waitFor(t, 10*time.Second, "leaders back", func() bool {
		n2.View(func(s *cluster.State) { leader = s.Partition("a", 0).Leader })
		return leader == 1
	})
	p3, err := n2.NextProducerID(ctx)
	if err != nil || p3 <= p2 {
		t.Fatalf("producer id %d after restart (had %d): %v", p3, p2, err)
	}
}

// A request whose caller gives up (its context ends) may still be decided
// by the controller loop afterwards: the results the decision writes are
// returned only with a nil error, so giving up never races with the loop
// (the race detector checks this).
func TestResultsAfterGivingUp(t *testing.T) {
	n, err := Start(singleConfig(t, t.TempDir(), net.JoinHostPort(hostOf(1), strconv.Itoa(freePort(t, hostOf(1))))))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitReady(t, n)
	ctx := context.Background()
	const topics = 20
	for i := range topics {
		if err := n.CreateTopic(ctx, cluster.CreateTopicRequest{Name: "t" + strconv.Itoa(i), Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	epoch, _, _ := n.BrokerEpoch()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for round := range 50 {
		var p cluster.Partition
		var id engine.TopicID
		n.View(func(s *cluster.State) {
			tp := s.Topic("t" + strconv.Itoa(round%topics))
			if tp != nil {
				id, p = tp.ID, *s.Partition(tp.Name, 0)
			}
		})
		got, err := n.AlterPartition(cancelled, cluster.AlterPartitionRequest{
			Broker: 1, BrokerEpoch: epoch, Topic: p.Topic, Partition: 0,
			LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: p.ISR,
		})
		if err != nil && got.Leader != 0 {
			t.Fatalf("AlterPartition failed (%v) but returned %+v", err, got)
		}
		if fenced, err := n.BrokerHeartbeat(cancelled, 1, epoch, n.Applied()); err != nil && !fenced {
			t.Fatalf("BrokerHeartbeat failed (%v) but says unfenced", err)
		}
		if start, size, err := n.AllocateProducerIDs(cancelled, 1, epoch); err != nil && (start != 0 || size != 0) {
			t.Fatalf("AllocateProducerIDs failed (%v) but returned %d+%d", err, start, size)
		}
		if round >= topics {
			continue
		}
		name, err := n.DeleteTopicByID(cancelled, id)
		if err != nil && name != "" {
			t.Fatalf("DeleteTopicByID failed (%v) but returned %q", err, name)
		}
	}
}
