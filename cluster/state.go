package cluster

import (
	"slices"
	"strings"

	"github.com/easel-io/easel/engine"
)

// State is the cluster's metadata: what the metadata log's records add up to
// when applied in order. It does no I/O and reads no clock. It is not safe
// for concurrent use: one goroutine applies (raft's FSM goroutine; see FSM),
// and readers share it under a lock or wait their turn.
//
// The *Broker, *Topic and *Partition values it returns are immutable: a
// change replaces them, so a value stays a consistent picture of the moment
// it was read, for as long as the caller keeps it. Callers must not modify
// them or their slices.
type State struct {
	clusterID string
	brokers   map[int32]*Broker
	topics    map[engine.TopicID]*Topic
	names     map[string]engine.TopicID
	parts     map[TopicPartition]*Partition
	// hosted indexes parts by replica. Invariant: p is in hosted[b] exactly
	// when b is in p.Replicas.
	hosted map[int32]map[TopicPartition]struct{}
	// moving indexes the partitions with a reassignment in progress.
	// Invariant: p is in moving exactly when p.Reassigning().
	moving map[TopicPartition]struct{}
	// brokerConfigs are the dynamic broker settings by broker id
	// (DefaultBrokerConfigs: the cluster-wide defaults), each sorted by
	// name. Invariant: no empty entry.
	brokerConfigs map[int32][]Config
	// nextProducerID is the first producer id no block has covered.
	// Invariant: only grows.
	nextProducerID int64

	// journal undoes the entry being applied, newest last; nil outside Apply.
	journal []func()
}

// Broker is a registered broker as the metadata knows it.
type Broker struct {
	BrokerInfo
	// Epoch is the broker epoch: set by each registration and each fencing.
	// Invariant: only grows.
	Epoch int64
	// Fenced brokers lead no partition and are in no led partition's ISR.
	Fenced bool
}

// Topic is a topic's name, id, settings and partition count.
type Topic struct {
	Name string
	ID   engine.TopicID
	// Configs are the explicit settings, sorted by name.
	Configs []Config
	// Partitions is the partition count; partitions are 0..Partitions-1.
	Partitions int32
}

// Config returns the topic's explicit setting of name.
func (t *Topic) Config(name string) (string, bool) { return LookupConfig(t.Configs, name) }

// TopicPartition names a partition by topic id and index.
type TopicPartition struct {
	Topic     engine.TopicID
	Partition int32
}

// Partition is one partition's replicas, ISR, leader and epochs.
type Partition struct {
	Topic engine.TopicID
	Index int32
	// Replicas lists the replica brokers, the preferred leader first.
	Replicas []int32
	// ISR is the in-sync replica set. Invariant: non-empty, a subset of
	// Replicas; while the partition has a leader, every member is unfenced.
	ISR []int32
	// Leader is NoLeader (offline) or a member of ISR on an unfenced broker.
	Leader int32
	// LeaderEpoch grows by one with each leader change. Invariant: only
	// grows; one leader per epoch.
	LeaderEpoch int32
	// PartitionEpoch grows by one with each change. Invariant: only grows.
	PartitionEpoch int32
	// Adding and Removing are the replicas an ongoing reassignment (KIP-455)
	// adds and removes; both nil when none is in progress. While one is,
	// Replicas is the target (in its order, preferred leader first) followed
	// by Removing, and Adding are the target's replicas the partition did not
	// have before. Invariant: each is a subset of Replicas with no broker
	// twice, they are disjoint, and Removing is not all of Replicas.
	Adding, Removing []int32
	// UncleanEpoch is the leader epoch of the partition's latest leader
	// elected from outside its ISR (an unclean election: records the old
	// ISR committed may be missing from it), 0 if there was none. A
	// follower whose log predates that epoch may have to cut committed
	// records to follow. Invariant: at most LeaderEpoch.
	UncleanEpoch int32
}

// Reassigning reports whether a reassignment is in progress.
func (p *Partition) Reassigning() bool { return len(p.Adding) > 0 || len(p.Removing) > 0 }

// Target returns the replicas the partition will have once its
// reassignment completes: Replicas without Removing, in order (Replicas
// itself when none is in progress). The slice is the caller's.
func (p *Partition) Target() []int32 { return minus(p.Replicas, p.Removing) }

// Original returns the replicas the partition had before its reassignment
// started, which a cancel returns to: Replicas without Adding, in order
// (Kafka's revert; the order before the reassignment is not kept). The
// slice is the caller's.
func (p *Partition) Original() []int32 { return minus(p.Replicas, p.Adding) }

// Key is the partition's TopicPartition.
func (p *Partition) Key() TopicPartition { return TopicPartition{p.Topic, p.Index} }

// InISR reports whether broker is in the ISR.
func (p *Partition) InISR(broker int32) bool { return slices.Contains(p.ISR, broker) }

// NewState returns the empty state: the metadata before the log's first
// entry.
func NewState() *State {
	return &State{
		brokers: map[int32]*Broker{},
		topics:  map[engine.TopicID]*Topic{},
		names:   map[string]engine.TopicID{},
		parts:   map[TopicPartition]*Partition{},
		hosted:  map[int32]map[TopicPartition]struct{}{},
		moving:  map[TopicPartition]struct{}{},

		brokerConfigs: map[int32][]Config{},
	}
}

// BrokerConfigs returns the dynamic settings of broker id, or with
// DefaultBrokerConfigs the cluster-wide defaults, sorted by name. Do not
// modify the slice.
func (s *State) BrokerConfigs(id int32) []Config { return s.brokerConfigs[id] }

// BrokerConfig returns the dynamic setting of name (a broker name, such as
// log.retention.ms) that applies to broker id: its own, else the
// cluster-wide default. With id DefaultBrokerConfigs only the default.
func (s *State) BrokerConfig(id int32, name string) (string, bool) {
	if v, ok := LookupConfig(s.brokerConfigs[id], name); ok {
		return v, true
	}
	return LookupConfig(s.brokerConfigs[DefaultBrokerConfigs], name)
}

// LookupConfig returns the value of name in cs, sorted by name (as every
// list of configs the State holds is).
func LookupConfig(cs []Config, name string) (string, bool) {
	i, ok := slices.BinarySearchFunc(cs, name, func(c Config, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return "", false
	}
	return cs[i].Value, true
}

// ClusterID returns the cluster id, "" before it is set.
func (s *State) ClusterID() string { return s.clusterID }

// NextProducerID returns the first producer id no block has handed out.
func (s *State) NextProducerID() int64 { return s.nextProducerID }

// Broker returns the registered broker id, or nil.
func (s *State) Broker(id int32) *Broker { return s.brokers[id] }

// Brokers returns every registered broker, by id. The slice is the caller's.
func (s *State) Brokers() []*Broker {
	bs := make([]*Broker, 0, len(s.brokers))
	for _, b := range s.brokers {
		bs = append(bs, b)
	}
	slices.SortFunc(bs, func(a, b *Broker) int { return int(a.ID) - int(b.ID) })
	return bs
}

// LiveBrokers returns the unfenced brokers, by id: the ones that may lead,
// join ISRs and get new replicas.
func (s *State) LiveBrokers() []*Broker {
	bs := s.Brokers()
	return slices.DeleteFunc(bs, func(b *Broker) bool { return b.Fenced })
}

// Live reports whether broker id is registered and unfenced.
func (s *State) Live(id int32) bool {
	b := s.brokers[id]
	return b != nil && !b.Fenced
}

// Topic returns the topic named name, or nil.
func (s *State) Topic(name string) *Topic {
	id, ok := s.names[name]
	if !ok {
		return nil
	}
	return s.topics[id]
}

// TopicByID returns the topic with the id, or nil.
func (s *State) TopicByID(id engine.TopicID) *Topic { return s.topics[id] }

// Topics returns every topic, by name. The slice is the caller's.
func (s *State) Topics() []*Topic {
	ts := make([]*Topic, 0, len(s.topics))
	for _, t := range s.topics {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *Topic) int { return strings.Compare(a.Name, b.Name) })
	return ts
}

// Partition returns partition index of the topic named topic, or nil.
func (s *State) Partition(topic string, index int32) *Partition {
	id, ok := s.names[topic]
	if !ok {
		return nil
	}
	return s.parts[TopicPartition{id, index}]
}

// PartitionByID returns partition index of the topic with the id, or nil.
func (s *State) PartitionByID(id engine.TopicID, index int32) *Partition {
	return s.parts[TopicPartition{id, index}]
}

// Partitions returns the topic's partitions by index (nil for an unknown
// topic). The slice is the caller's.
func (s *State) Partitions(id engine.TopicID) []*Partition {
	t := s.topics[id]
	if t == nil {
		return nil
	}
	ps := make([]*Partition, t.Partitions)
	for i := range ps {
		ps[i] = s.parts[TopicPartition{id, int32(i)}]
	}
	return ps
}

// ReplicatedOn returns the partitions with a replica on broker, by topic
// name and index. The slice is the caller's.
func (s *State) ReplicatedOn(broker int32) []*Partition {
	ps := make([]*Partition, 0, len(s.hosted[broker]))
	for tp := range s.hosted[broker] {
		ps = append(ps, s.parts[tp])
	}
	s.sortPartitions(ps)
	return ps
}

// Reassignments returns the partitions with a reassignment in progress, by
// topic name and index. The slice is the caller's.
func (s *State) Reassignments() []*Partition {
	ps := make([]*Partition, 0, len(s.moving))
	for tp := range s.moving {
		ps = append(ps, s.parts[tp])
	}
	s.sortPartitions(ps)
	return ps
}

// LedBy returns the partitions broker leads, by topic name and index.
func (s *State) LedBy(broker int32) []*Partition {
	ps := s.ReplicatedOn(broker)
	return slices.DeleteFunc(ps, func(p *Partition) bool { return p.Leader != broker })
}

// OfflineReplicas returns p's replicas on fenced brokers (Metadata's
// offline_replicas).
func (s *State) OfflineReplicas(p *Partition) []int32 {
	var off []int32
	for _, r := range p.Replicas {
		if !s.Live(r) {
			off = append(off, r)
		}
	}
	return off
}

// Counts returns the number of brokers, topics and partitions.
func (s *State) Counts() (brokers, topics, partitions int) {
	return len(s.brokers), len(s.topics), len(s.parts)
}

// sortPartitions orders ps by topic name, then index.
func (s *State) sortPartitions(ps []*Partition) {
	slices.SortFunc(ps, func(a, b *Partition) int {
		if a.Topic != b.Topic {
			return strings.Compare(s.topics[a.Topic].Name, s.topics[b.Topic].Name)
		}
		return int(a.Index) - int(b.Index)
	})
}

// allPartitions returns every partition, by topic name and index.
func (s *State) allPartitions() []*Partition {
	var ps []*Partition
	for _, t := range s.Topics() {
		ps = append(ps, s.Partitions(t.ID)...)
	}
	return ps
}

// The setters below are the only writers of the maps. Each journals how to
// undo itself while an entry is being applied.

func (s *State) setClusterID(id string) {
	if s.journal != nil {
		old := s.clusterID
		s.journal = append(s.journal, func() { s.clusterID = old })
	}
	s.clusterID = id
}

func (s *State) setNextProducerID(next int64) {
	if s.journal != nil {
		old := s.nextProducerID
		s.journal = append(s.journal, func() { s.nextProducerID = old })
	}
	s.nextProducerID = next
}

// setBrokerConfigs stores the dynamic settings of broker id (none: the
// entry goes).
func (s *State) setBrokerConfigs(id int32, cs []Config) {
	if s.journal != nil {
		old, had := s.brokerConfigs[id]
		s.journal = append(s.journal, func() {
			if had {
				s.brokerConfigs[id] = old
			} else {
				delete(s.brokerConfigs, id)
			}
		})
	}
	if len(cs) == 0 {
		delete(s.brokerConfigs, id)
		return
	}
	s.brokerConfigs[id] = cs
}

func (s *State) setBroker(b *Broker) {
	id := b.ID
	if s.journal != nil {
		old := s.brokers[id]
		s.journal = append(s.journal, func() {
			if old == nil {
				delete(s.brokers, id)
			} else {
				s.brokers[id] = old
			}
		})
	}
	s.brokers[id] = b
}

// setTopic stores t, or with del removes the topic with t's id (its
// partitions go separately, through setPartition).
func (s *State) setTopic(t *Topic, del bool) {
	id := t.ID
	if s.journal != nil {
		old := s.topics[id]
		s.journal = append(s.journal, func() {
			if cur := s.topics[id]; cur != nil {
				delete(s.names, cur.Name)
				delete(s.topics, id)
			}
			if old != nil {
				s.topics[id] = old
				s.names[old.Name] = id
			}
		})
	}
	if del {
		delete(s.names, t.Name)
		delete(s.topics, id)
		return
	}
	s.topics[id] = t
	s.names[t.Name] = id
}

// setPartition stores p under key, or removes the partition when p is nil,
// keeping hosted in step.
func (s *State) setPartition(key TopicPartition, p *Partition) {
	old := s.parts[key]
	if s.journal != nil {
		s.journal = append(s.journal, func() { s.putPartition(key, old) })
	}
	s.putPartition(key, p)
}

func (s *State) putPartition(key TopicPartition, p *Partition) {
	delete(s.moving, key)
	if old := s.parts[key]; old != nil {
		for _, r := range old.Replicas {
			delete(s.hosted[r], key)
			if len(s.hosted[r]) == 0 {
				delete(s.hosted, r)
			}
		}
	}
	if p == nil {
		delete(s.parts, key)
		return
	}
	s.parts[key] = p
	if p.Reassigning() {
		s.moving[key] = struct{}{}
	}
	for _, r := range p.Replicas {
		m := s.hosted[r]
		if m == nil {
			m = map[TopicPartition]struct{}{}
			s.hosted[r] = m
		}
		m[key] = struct{}{}
	}
}
