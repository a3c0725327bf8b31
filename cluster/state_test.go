package cluster

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/easel-io/easel/engine"
)

func broker(id int32, epoch int64, fenced bool) RegisterBrokerRecord {
	return RegisterBrokerRecord{BrokerInfo: BrokerInfo{ID: id, Host: "h", Port: 9092}, Epoch: epoch, Fenced: fenced}
}

// baseState has brokers 1-3 unfenced at epoch 1, 4 fenced at epoch 2, and
// topic t (testID) with t/0 replicas [1,2,3], ISR [1,2], leader 1, epochs
// 5/7.
func baseState(t *testing.T) *State {
	t.Helper()
	s := NewState()
	err := s.Apply([]Record{
		ClusterIDRecord{"c"},
		broker(1, 1, false), broker(2, 1, false), broker(3, 1, false), broker(4, 2, true),
		TopicRecord{Name: "t", ID: testID},
		PartitionRecord{Topic: testID, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyRejects(t *testing.T) {
	other := engine.TopicID{9}
	change := func(mod func(*PartitionChangeRecord)) PartitionChangeRecord {
		c := PartitionChangeRecord{Topic: testID, LeaderEpoch: 5, PartitionEpoch: 7, Leader: NoLeaderChange}
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		recs []Record
		want error
	}{
		{"cluster id again", []Record{ClusterIDRecord{"c"}}, ErrRejected},
		{"other cluster id", []Record{ClusterIDRecord{"d"}}, ErrClusterIDMismatch},
		{"empty cluster id", []Record{ClusterIDRecord{""}}, ErrInvalidRequest},
		{"register same epoch", []Record{broker(2, 1, false)}, ErrStaleBrokerEpoch},
		{"register bad port", []Record{RegisterBrokerRecord{BrokerInfo: BrokerInfo{ID: 5, Host: "h"}, Epoch: 1}}, ErrInvalidRequest},
		{"register negative id", []Record{broker(-1, 1, false)}, ErrInvalidRequest},
		{"register leader fenced", []Record{broker(1, 2, true)}, ErrInvalidRequest},
		{"fence the leader", []Record{FenceBrokerRecord{1, 2}}, ErrInvalidRequest},
		{"fence a led ISR member", []Record{FenceBrokerRecord{2, 2}}, ErrInvalidRequest},
		{"fence, same epoch", []Record{FenceBrokerRecord{3, 1}}, ErrStaleBrokerEpoch},
		{"fence fenced", []Record{FenceBrokerRecord{4, 3}}, ErrRejected},
		{"fence unknown", []Record{FenceBrokerRecord{9, 3}}, ErrUnknownBroker},
		{"unfence stale", []Record{UnfenceBrokerRecord{4, 1}}, ErrStaleBrokerEpoch},
		{"unfence live", []Record{UnfenceBrokerRecord{3, 1}}, ErrRejected},
		{"topic name taken", []Record{TopicRecord{Name: "t", ID: other}}, ErrTopicExists},
		{"topic id taken", []Record{TopicRecord{Name: "u", ID: testID}}, ErrTopicExists},
		{"topic zero id", []Record{TopicRecord{Name: "u"}}, ErrInvalidRequest},
		{"topic bad name", []Record{TopicRecord{Name: "..", ID: other}}, ErrInvalidTopic},
		{"topic configs unsorted", []Record{TopicRecord{Name: "u", ID: other, Configs: []Config{{"b", ""}, {"a", ""}}}}, ErrInvalidConfig},
		{"topic without partitions", []Record{TopicRecord{Name: "u", ID: other}}, ErrInvalidPartitions},
		{"partition unknown topic", []Record{PartitionRecord{Topic: other, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1}}, ErrUnknownTopicID},
		{"partition not next", []Record{PartitionRecord{Topic: testID, Partition: 2, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1}}, ErrInvalidPartitions},
		{"partition unregistered replica", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1, 9}, ISR: []int32{1}, Leader: 1}}, ErrInvalidReplicaAssignment},
		{"partition fenced leader", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{4}, ISR: []int32{4}, Leader: 4}}, ErrIneligibleReplica},
		{"partition fenced ISR member", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1, 4}, ISR: []int32{1, 4}, Leader: 1}}, ErrIneligibleReplica},
		{"partition leader not in ISR", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 1}}, ErrInvalidRequest},
		{"partition empty ISR", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1}, Leader: NoLeader}}, ErrInvalidRequest},
		{"partition replica twice", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1, 1}, ISR: []int32{1}, Leader: 1}}, ErrInvalidReplicaAssignment},
		{"change stale leader epoch", []Record{change(func(c *PartitionChangeRecord) { c.LeaderEpoch = 4; c.ISR = []int32{1} })}, ErrFencedLeaderEpoch},
		{"change stale partition epoch", []Record{change(func(c *PartitionChangeRecord) { c.PartitionEpoch = 6; c.ISR = []int32{1} })}, ErrInvalidUpdateVersion},
		{"change nothing", []Record{change(func(c *PartitionChangeRecord) {})}, ErrInvalidRequest},
		{"change ISR outside replicas", []Record{change(func(c *PartitionChangeRecord) { c.ISR = []int32{1, 4} })}, ErrInvalidRequest},
		{"change ISR without leader", []Record{change(func(c *PartitionChangeRecord) { c.ISR = []int32{2} })}, ErrInvalidRequest},
		{"change leader to fenced", []Record{change(func(c *PartitionChangeRecord) { c.Leader = 4 })}, ErrInvalidRequest},
		{"change leader out of ISR", []Record{change(func(c *PartitionChangeRecord) { c.Leader = 3 })}, ErrInvalidRequest},
		{"change adding outside replicas", []Record{change(func(c *PartitionChangeRecord) { c.Adding = []int32{4} })}, ErrInvalidReplicaAssignment},
		{"change removing outside replicas", []Record{change(func(c *PartitionChangeRecord) { c.Removing = []int32{4} })}, ErrInvalidReplicaAssignment},
		{"change adding and removing one", []Record{change(func(c *PartitionChangeRecord) { c.Adding, c.Removing = []int32{3}, []int32{3} })}, ErrInvalidReplicaAssignment},
		{"change removing all", []Record{change(func(c *PartitionChangeRecord) { c.Removing = []int32{1, 2, 3} })}, ErrInvalidReplicaAssignment},
		{"change adding twice", []Record{change(func(c *PartitionChangeRecord) { c.Adding = []int32{3, 3} })}, ErrInvalidReplicaAssignment},
		{"change replicas leaving removing behind", []Record{
			change(func(c *PartitionChangeRecord) { c.Removing = []int32{3} }),
			PartitionChangeRecord{Topic: testID, LeaderEpoch: 5, PartitionEpoch: 8, Leader: NoLeaderChange, Replicas: []int32{1, 2}},
		}, ErrInvalidReplicaAssignment},
		{"partition adding outside replicas", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, Adding: []int32{2}}}, ErrInvalidReplicaAssignment},
		{"change unclean without a leader change", []Record{change(func(c *PartitionChangeRecord) { c.ISR, c.Unclean = []int32{1}, true })}, ErrInvalidRequest},
		{"partition unclean epoch past its leader epoch", []Record{PartitionRecord{Topic: testID, Partition: 1, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, UncleanEpoch: 2}}, ErrInvalidRequest},
		{"change bad leader", []Record{change(func(c *PartitionChangeRecord) { c.Leader = -3 })}, ErrInvalidRequest},
		{"change unknown partition", []Record{change(func(c *PartitionChangeRecord) { c.Partition = 1; c.ISR = []int32{1} })}, ErrUnknownTopic},
		{"remove unknown topic", []Record{RemoveTopicRecord{other}}, ErrUnknownTopicID},
		{"producer ids gap", []Record{ProducerIDsRecord{Broker: 1, BrokerEpoch: 1, Start: 5, Size: 10}}, ErrInvalidRequest},
		{"producer ids stale epoch", []Record{ProducerIDsRecord{Broker: 1, BrokerEpoch: 0, Size: 10}}, ErrStaleBrokerEpoch},
		{"producer ids empty", []Record{ProducerIDsRecord{Broker: 1, BrokerEpoch: 1, Size: 0}}, ErrProducerIDsExhausted},
		{"producer ids unknown broker", []Record{ProducerIDsRecord{Broker: 8, Size: 1}}, ErrUnknownBroker},
		// Atomicity: the good records before the bad one are undone.
		{"entry half good", []Record{
			FenceBrokerRecord{3, 2},
			change(func(c *PartitionChangeRecord) { c.ISR = []int32{1} }),
			TopicRecord{Name: "u", ID: other},
			PartitionRecord{Topic: other, Replicas: []int32{2}, ISR: []int32{2}, Leader: 2},
			ProducerIDsRecord{Broker: 1, BrokerEpoch: 1, Size: 10},
			RemoveTopicRecord{testID},
			broker(5, 1, false),
			UnfenceBrokerRecord{4, 2},
			UnfenceBrokerRecord{4, 2},
		}, ErrRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := baseState(t)
			before := s.Snapshot()
			err := s.Apply(tc.recs)
			var re *RejectError
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrRejected) || !errors.As(err, &re) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if re.Index != len(tc.recs)-1 && tc.name != "topic without partitions" {
				t.Errorf("rejected record %d, want the last", re.Index)
			}
			if !bytes.Equal(s.Snapshot(), before) {
				t.Fatal("a rejected entry changed the state")
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestApplyChangeEpochs(t *testing.T) {
	s := baseState(t)
	apply := func(c PartitionChangeRecord) *Partition {
		t.Helper()
		c.Topic = testID
		if err := s.Apply([]Record{c}); err != nil {
			t.Fatal(err)
		}
		return s.Partition("t", 0)
	}
	old := s.Partition("t", 0)
	// An ISR change bumps the partition epoch only.
	p := apply(PartitionChangeRecord{LeaderEpoch: 5, PartitionEpoch: 7, Leader: NoLeaderChange, ISR: []int32{1}})
	if p.LeaderEpoch != 5 || p.PartitionEpoch != 8 || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("%+v", p)
	}
	// Naming the current leader is no leader change.
	p = apply(PartitionChangeRecord{LeaderEpoch: 5, PartitionEpoch: 8, Leader: 1, ISR: []int32{1, 2}})
	if p.LeaderEpoch != 5 || p.PartitionEpoch != 9 {
		t.Fatalf("%+v", p)
	}
	// A leader change bumps both.
	p = apply(PartitionChangeRecord{LeaderEpoch: 5, PartitionEpoch: 9, Leader: 2})
	if p.Leader != 2 || p.LeaderEpoch != 6 || p.PartitionEpoch != 10 {
		t.Fatalf("%+v", p)
	}
	// Offline is a leader change too; replicas can change (reassignment).
	p = apply(PartitionChangeRecord{LeaderEpoch: 6, PartitionEpoch: 10, Leader: NoLeader, Replicas: []int32{2, 1}})
	if p.Leader != NoLeader || p.LeaderEpoch != 7 || !slices.Equal(p.Replicas, []int32{2, 1}) {
		t.Fatalf("%+v", p)
	}
	if got := s.ReplicatedOn(3); len(got) != 0 {
		t.Fatalf("3 still indexed as a replica: %v", got)
	}
	// Values read before stay as they were.
	if old.LeaderEpoch != 5 || old.Leader != 1 || !slices.Equal(old.ISR, []int32{1, 2}) {
		t.Fatalf("a read partition changed: %+v", old)
	}
}

func TestQueries(t *testing.T) {
	s := baseState(t)
	u := engine.TopicID{9}
	if err := s.Apply([]Record{
		TopicRecord{Name: "a", ID: u, Configs: []Config{{"x", "1"}, {"y", "2"}}},
		PartitionRecord{Topic: u, Partition: 0, Replicas: []int32{2, 3}, ISR: []int32{2, 3}, Leader: 2},
		PartitionRecord{Topic: u, Partition: 1, Replicas: []int32{3, 1, 4}, ISR: []int32{3}, Leader: 3},
	}); err != nil {
		t.Fatal(err)
	}
	names := func(ps []*Partition) []string {
		var out []string
		for _, p := range ps {
			out = append(out, s.partitionName(p))
		}
		return out
	}
	if got := names(s.ReplicatedOn(3)); !slices.Equal(got, []string{"a/0", "a/1", "t/0"}) {
		t.Errorf("ReplicatedOn(3) = %v", got)
	}
	if got := names(s.LedBy(3)); !slices.Equal(got, []string{"a/1"}) {
		t.Errorf("LedBy(3) = %v", got)
	}
	if got := names(s.LedBy(4)); len(got) != 0 {
		t.Errorf("LedBy(4) = %v", got)
	}
	var live []int32
	for _, b := range s.LiveBrokers() {
		live = append(live, b.ID)
	}
	if !slices.Equal(live, []int32{1, 2, 3}) || len(s.Brokers()) != 4 || !s.Live(1) || s.Live(4) || s.Live(9) {
		t.Errorf("live brokers %v", live)
	}
	if p := s.PartitionByID(u, 1); p == nil || !slices.Equal(s.OfflineReplicas(p), []int32{4}) {
		t.Errorf("OfflineReplicas = %v", s.OfflineReplicas(p))
	}
	if s.Partition("a", 2) != nil || s.Partition("zz", 0) != nil || s.Topic("zz") != nil || s.TopicByID(engine.TopicID{7}) != nil {
		t.Error("lookups of what does not exist")
	}
	if v, ok := s.Topic("a").Config("y"); !ok || v != "2" {
		t.Errorf("Config(y) = %q, %v", v, ok)
	}
	if _, ok := s.Topic("a").Config("z"); ok {
		t.Error("Config(z) found")
	}
	if ts := s.Topics(); len(ts) != 2 || ts[0].Name != "a" || ts[1].Name != "t" {
		t.Errorf("Topics = %v", ts)
	}
	if b, tp, p := s.Counts(); b != 4 || tp != 2 || p != 3 {
		t.Errorf("Counts = %d %d %d", b, tp, p)
	}
	// Removing a topic removes its partitions from the indexes.
	if err := s.Apply([]Record{RemoveTopicRecord{u}}); err != nil {
		t.Fatal(err)
	}
	if got := names(s.ReplicatedOn(3)); !slices.Equal(got, []string{"t/0"}) || s.Topic("a") != nil || s.Partitions(u) != nil {
		t.Errorf("after removal: %v", got)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotErrors(t *testing.T) {
	s := baseState(t)
	snap := s.Snapshot()
	flip := func(i int) []byte {
		b := bytes.Clone(snap)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"magic", flip(0), ErrCorrupt},
		{"checksum", flip(len(snap) - 1), ErrCorrupt},
		{"body", flip(20), ErrCorrupt},
		{"truncated", snap[:len(snap)-9], ErrCorrupt},
	} {
		r := NewState()
		if err := r.Restore(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if len(r.brokers) != 0 {
			t.Errorf("%s: a failed restore changed the state", tc.name)
		}
	}
	// A snapshot restores over a state with other content.
	r := NewState()
	if err := r.Apply([]Record{broker(9, 1, false)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(snap); err != nil || r.Broker(9) != nil || !bytes.Equal(r.Snapshot(), snap) {
		t.Fatalf("restore over content: %v", err)
	}
	// The records of a snapshot are its state, in a fixed order.
	recs := s.Records()
	if len(recs) != 7 || recs[0].Type() != TypeClusterID || recs[5].Type() != TypeTopic || recs[6].Type() != TypePartition {
		t.Fatalf("Records = %v", recs)
	}
}
