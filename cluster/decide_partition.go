package cluster

import (
	"slices"

	"github.com/easel-io/easel/engine"
)

// AlterPartitionRequest is a partition leader's proposal of a new ISR
// (Kafka's AlterPartition), made under the epochs it knows.
type AlterPartitionRequest struct {
	// Broker and BrokerEpoch are the proposing leader's.
	Broker      int32
	BrokerEpoch int64
	Topic       engine.TopicID
	Partition   int32
	// LeaderEpoch and PartitionEpoch are the epochs the leader holds.
	LeaderEpoch    int32
	PartitionEpoch int32
	// ISR is the proposed ISR.
	ISR []int32
}

// AlterPartition decides a leader's ISR change, checked in Kafka's order:
// ErrStaleBrokerEpoch (unknown broker or an old epoch: STALE_BROKER_EPOCH),
// ErrUnknownTopicID / ErrUnknownTopic, ErrFencedLeaderEpoch (an older leader
// epoch), ErrNotController (a newer one: this state is behind), ErrNotLeader
// (the broker does not lead), ErrInvalidUpdateVersion (an older partition
// epoch; a newer one is ErrNotController), ErrInvalidRequest (an ISR that is
// empty, names a broker twice, is not a subset of the replicas, or lacks the
// leader), ErrIneligibleReplica (an ISR member is fenced). An ISR equal to
// the current one, as a set, changes nothing: the leader already has what
// it asked for. An ISR that completes a reassignment (every target replica
// in it) completes it in the same change (see AlterReassignment), as
// Kafka's does.
func (p Policy) AlterPartition(s *State, req AlterPartitionRequest) ([]Record, error) {
	b := s.brokers[req.Broker]
	if b == nil || b.Epoch != req.BrokerEpoch {
		cur := int64(-1)
		if b != nil {
			cur = b.Epoch
		}
		return nil, errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", req.Broker, req.BrokerEpoch, cur)
	}
	if s.topics[req.Topic] == nil {
		return nil, errf(ErrUnknownTopicID, "topic id %s", req.Topic)
	}
	part := s.parts[TopicPartition{req.Topic, req.Partition}]
	if part == nil {
		return nil, errf(ErrUnknownTopic, "%s/%d", s.topics[req.Topic].Name, req.Partition)
	}
	name := s.partitionName(part)
	switch {
	case req.LeaderEpoch < part.LeaderEpoch:
		return nil, errf(ErrFencedLeaderEpoch, "%s: leader epoch %d, current %d", name, req.LeaderEpoch, part.LeaderEpoch)
	case req.LeaderEpoch > part.LeaderEpoch:
		return nil, errf(ErrNotController, "%s: leader epoch %d, newer than %d", name, req.LeaderEpoch, part.LeaderEpoch)
	case part.Leader != req.Broker:
		return nil, errf(ErrNotLeader, "%s: broker %d is not the leader (%d)", name, req.Broker, part.Leader)
	case req.PartitionEpoch < part.PartitionEpoch:
		return nil, errf(ErrInvalidUpdateVersion, "%s: partition epoch %d, current %d", name, req.PartitionEpoch, part.PartitionEpoch)
	case req.PartitionEpoch > part.PartitionEpoch:
		return nil, errf(ErrNotController, "%s: partition epoch %d, newer than %d", name, req.PartitionEpoch, part.PartitionEpoch)
	}
	if len(req.ISR) == 0 || len(req.ISR) > maxReplicas {
		return nil, errf(ErrInvalidRequest, "%s: ISR of %d brokers", name, len(req.ISR))
	}
	for i, r := range req.ISR {
		if slices.Contains(req.ISR[:i], r) {
			return nil, errf(ErrInvalidRequest, "%s: broker %d twice in the ISR", name, r)
		}
		if !slices.Contains(part.Replicas, r) {
			return nil, errf(ErrInvalidRequest, "%s: ISR member %d is not a replica %s", name, r, brokerList(part.Replicas))
		}
	}
	if !slices.Contains(req.ISR, part.Leader) {
		return nil, errf(ErrInvalidRequest, "%s: the ISR lacks the leader %d", name, part.Leader)
	}
	for _, r := range req.ISR {
		if !s.Live(r) {
			return nil, errf(ErrIneligibleReplica, "%s: ISR member %d is fenced", name, r)
		}
	}
	if sameSet(req.ISR, part.ISR) {
		return nil, nil
	}
	c := changeOf(part)
	c.ISR = slices.Clone(req.ISR)
	return []Record{completed(part, c)}, nil
}

// ElectPreferredLeaders decides moving leadership back to each partition's
// preferred replica (the first) where it is live and in the ISR and does not
// lead (Kafka's auto.leader.rebalance.enable, without its imbalance
// threshold: every such partition moves). The driver calls it after
// brokers return and their ISRs have grown, or on a timer
// (leader.imbalance.check.interval.seconds). Partitions by topic name and
// index.
func (p Policy) ElectPreferredLeaders(s *State) []Record {
	var recs []Record
	for _, part := range s.allPartitions() {
		pref := part.Replicas[0]
		if part.Leader == pref || part.Leader == NoLeader || !part.InISR(pref) || !s.Live(pref) {
			continue
		}
		c := changeOf(part)
		c.Leader = pref
		recs = append(recs, c)
	}
	return recs
}

// ElectOfflineLeaders decides a leader for each offline partition that can
// have one: its first live ISR member, else, where the topic allows unclean
// election, its first live replica (alone in the ISR). Call it after a
// topic's unclean.leader.election.enable changes, or on a timer; the broker
// decisions already elect what they can.
func (p Policy) ElectOfflineLeaders(s *State) []Record {
	var recs []Record
	for _, part := range s.allPartitions() {
		if part.Leader != NoLeader {
			continue
		}
		if c, ok := p.electOffline(s, part, s.Live); ok {
			recs = append(recs, c)
		}
	}
	return recs
}

// electOffline elects a leader for offline partition part among the brokers
// live reports: its first live ISR member (the ISR keeping its live
// members), else, with unclean election allowed, its first live replica
// alone.
func (p Policy) electOffline(s *State, part *Partition, live func(int32) bool) (PartitionChangeRecord, bool) {
	c := changeOf(part)
	if l := firstInISR(part.Replicas, part.ISR, live); l != NoLeader {
		c.Leader = l
		if isr := slices.DeleteFunc(slices.Clone(part.ISR), func(r int32) bool { return !live(r) }); len(isr) != len(part.ISR) {
			c.ISR = isr
		}
		return completed(part, c), true
	}
	if !p.unclean(s, s.topics[part.Topic]) {
		return c, false
	}
	if l := firstLive(part.Replicas, live); l != NoLeader {
		c.Leader, c.ISR, c.Unclean = l, []int32{l}, true
		return completed(part, c), true
	}
	return c, false
}

// sameSet reports whether a and b hold the same ids (each without repeats).
func sameSet(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
