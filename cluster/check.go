package cluster

import (
	"fmt"
	"slices"
)

// Check verifies the state's invariants and returns the first one broken:
// every partition's leader is NoLeader or in its ISR, the ISR is a non-empty
// subset of the replicas, a led partition's ISR holds only unfenced brokers
// (so no fenced broker leads), replicas are registered brokers, a
// reassignment's adding and removing replicas are disjoint subsets of the
// replicas that leave a target, every topic
// has its partitions 0..n-1 and nothing else exists, and the indexes agree.
// It costs a walk of the whole state; State.Apply checks what each entry
// touched when built with -race or -tags invariants.
func (s *State) Check() error {
	if len(s.names) != len(s.topics) {
		return fmt.Errorf("cluster: %d topic names for %d topics", len(s.names), len(s.topics))
	}
	n := 0
	for id, t := range s.topics {
		if t.ID != id || s.names[t.Name] != id {
			return fmt.Errorf("cluster: topic %s indexed wrongly", t.Name)
		}
		if t.Partitions < 1 {
			return fmt.Errorf("cluster: topic %s without partitions", t.Name)
		}
		for i := int32(0); i < t.Partitions; i++ {
			p := s.parts[TopicPartition{id, i}]
			if p == nil {
				return fmt.Errorf("cluster: topic %s lacks partition %d", t.Name, i)
			}
			if err := s.checkPartition(p); err != nil {
				return err
			}
		}
		n += int(t.Partitions)
	}
	if n != len(s.parts) {
		return fmt.Errorf("cluster: %d partitions stored, topics have %d", len(s.parts), n)
	}
	hosted := 0
	for b, m := range s.hosted {
		for tp := range m {
			p := s.parts[tp]
			if p == nil || !slices.Contains(p.Replicas, b) {
				return fmt.Errorf("cluster: broker %d indexed as a replica of %v", b, tp)
			}
		}
		hosted += len(m)
	}
	replicas := 0
	for _, p := range s.parts {
		replicas += len(p.Replicas)
	}
	if hosted != replicas {
		return fmt.Errorf("cluster: %d replicas indexed, %d stored", hosted, replicas)
	}
	for tp := range s.moving {
		if p := s.parts[tp]; p == nil || !p.Reassigning() {
			return fmt.Errorf("cluster: %v indexed as reassigning", tp)
		}
	}
	for id, b := range s.brokers {
		if b.ID != id {
			return fmt.Errorf("cluster: broker %d stored under %d", b.ID, id)
		}
		if err := s.checkBroker(b); err != nil {
			return err
		}
	}
	return nil
}

// checkPartition checks one partition's invariants.
func (s *State) checkPartition(p *Partition) error {
	t := s.topics[p.Topic]
	if t == nil || p.Index < 0 || p.Index >= t.Partitions || s.parts[p.Key()] != p {
		return fmt.Errorf("cluster: partition %s/%d stored wrongly", p.Topic, p.Index)
	}
	name := s.partitionName(p)
	if p.LeaderEpoch < 0 || p.PartitionEpoch < 0 || p.UncleanEpoch < 0 || p.UncleanEpoch > p.LeaderEpoch {
		return fmt.Errorf("cluster: %s: epochs: leader %d, partition %d, unclean %d", name, p.LeaderEpoch, p.PartitionEpoch, p.UncleanEpoch)
	}
	if err := s.validPartition(p.Replicas, p.ISR, p.Leader); err != nil {
		return fmt.Errorf("cluster: %s: %v", name, err)
	}
	if err := validReassignment(p.Replicas, p.Adding, p.Removing); err != nil {
		return fmt.Errorf("cluster: %s: %v", name, err)
	}
	if (p.Adding != nil && len(p.Adding) == 0) || (p.Removing != nil && len(p.Removing) == 0) {
		return fmt.Errorf("cluster: %s: an empty reassignment list is not nil", name)
	}
	if _, ok := s.moving[p.Key()]; ok != p.Reassigning() {
		return fmt.Errorf("cluster: %s: reassignment index says %v", name, ok)
	}
	for _, r := range p.Replicas {
		if _, ok := s.hosted[r][p.Key()]; !ok {
			return fmt.Errorf("cluster: %s: replica %d not indexed", name, r)
		}
	}
	return nil
}

// checkBroker checks that a fenced broker leads nothing and is in no led
// partition's ISR.
func (s *State) checkBroker(b *Broker) error {
	if !b.Fenced {
		return nil
	}
	if err := s.canFence(b.ID); err != nil {
		return fmt.Errorf("cluster: fenced broker %d: %v", b.ID, err)
	}
	return nil
}

// checkTouched checks the partitions and brokers an applied entry named.
func (s *State) checkTouched(recs []Record) error {
	for _, r := range recs {
		var tp TopicPartition
		var broker int32 = -1
		switch r := r.(type) {
		case PartitionRecord:
			tp = TopicPartition{r.Topic, r.Partition}
		case PartitionChangeRecord:
			tp = TopicPartition{r.Topic, r.Partition}
		case RegisterBrokerRecord:
			broker = r.ID
		case FenceBrokerRecord:
			broker = r.Broker
		case UnfenceBrokerRecord:
			broker = r.Broker
		default:
			continue
		}
		if p := s.parts[tp]; p != nil {
			if err := s.checkPartition(p); err != nil {
				return err
			}
		}
		if b := s.brokers[broker]; b != nil {
			if err := s.checkBroker(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// History watches successive states of the metadata for the invariants that
// span changes: leader and partition epochs only grow, a leader epoch has
// one leader, broker epochs only grow. Observe each state of one log in
// order under one view number; states of several brokers' logs (which may
// lag each other) under a view number each: epochs must grow within a view,
// and no two views may see two leaders for one partition and epoch. Tests
// use it; it keeps every (partition, epoch) it has seen.
type History struct {
	leaders map[epochKey]int32
	views   map[int]*viewHistory
}

type epochKey struct {
	tp    TopicPartition
	epoch int32
}

type viewHistory struct {
	parts   map[TopicPartition][2]int32 // leader epoch, partition epoch
	brokers map[int32]int64
}

// Observe checks s against what History saw before: under view, and in any
// view for leaders per epoch. It returns the first violation.
func (h *History) Observe(view int, s *State) error {
	if h.leaders == nil {
		h.leaders = map[epochKey]int32{}
		h.views = map[int]*viewHistory{}
	}
	v := h.views[view]
	if v == nil {
		v = &viewHistory{parts: map[TopicPartition][2]int32{}, brokers: map[int32]int64{}}
		h.views[view] = v
	}
	for _, p := range s.parts {
		name := s.partitionName(p)
		if prev, ok := v.parts[p.Key()]; ok {
			if p.LeaderEpoch < prev[0] || p.PartitionEpoch < prev[1] {
				return fmt.Errorf("cluster: %s: epochs went from %d/%d to %d/%d", name, prev[0], prev[1], p.LeaderEpoch, p.PartitionEpoch)
			}
		}
		v.parts[p.Key()] = [2]int32{p.LeaderEpoch, p.PartitionEpoch}
		if p.Leader == NoLeader {
			continue
		}
		if !s.Live(p.Leader) {
			return fmt.Errorf("cluster: %s led by fenced broker %d", name, p.Leader)
		}
		k := epochKey{p.Key(), p.LeaderEpoch}
		if l, ok := h.leaders[k]; ok && l != p.Leader {
			return fmt.Errorf("cluster: %s has leaders %d and %d in epoch %d", name, l, p.Leader, p.LeaderEpoch)
		}
		h.leaders[k] = p.Leader
	}
	for id, b := range s.brokers {
		if prev, ok := v.brokers[id]; ok && b.Epoch < prev {
			return fmt.Errorf("cluster: broker %d epoch went from %d to %d", id, prev, b.Epoch)
		}
		v.brokers[id] = b.Epoch
	}
	return nil
}
