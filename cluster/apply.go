package cluster

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/easel-io/easel/engine"
)

// Limits on what a record may hold, checked by Apply (and so by every
// decision, whose records must apply).
const (
	maxClusterIDLen = 255
	maxAddrLen      = 255   // host, raft address, rack
	maxConfigLen    = 32767 // a config's name or value
	// MaxPartitions is the most partitions a topic may have (the engine's
	// limit).
	MaxPartitions = 100000
)

// Apply applies one entry's records in order, all or none: when a record
// does not apply cleanly, the state is left as it was and the error (a
// *RejectError) says which record and why. Every replica of the log rejects
// the same entries, so a rejected entry is consumed like an applied one.
// The state keeps the records' slices: the caller must not modify them
// afterwards (decoded and decided records are nobody else's).
func (s *State) Apply(recs []Record) error { return s.applyEntry(recs, true) }

// applyEntry is Apply; without undo a failure leaves s half changed (for a
// state that is thrown away on error, as Restore's is).
func (s *State) applyEntry(recs []Record, undo bool) error {
	if undo {
		s.journal = make([]func(), 0, 2*len(recs))
		defer func() { s.journal = nil }()
	}
	for i, r := range recs {
		if err := s.apply(r); err != nil {
			s.rollback()
			var de *detailError
			errors.As(err, &de)
			return &RejectError{Record: r, Index: i, Reason: de.msg, Cause: de.cause}
		}
	}
	// A topic is created with its partitions, in one entry.
	for i, r := range recs {
		if t, ok := r.(TopicRecord); ok {
			if cur := s.topics[t.ID]; cur != nil && cur.Partitions == 0 {
				s.rollback()
				return &RejectError{Record: r, Index: i, Reason: "topic without partitions", Cause: ErrInvalidPartitions}
			}
		}
	}
	if invariants {
		if err := s.checkTouched(recs); err != nil {
			panic(fmt.Sprintf("cluster: invariant broken after applying an entry: %v", err))
		}
	}
	return nil
}

func (s *State) rollback() {
	for i := len(s.journal) - 1; i >= 0; i-- {
		s.journal[i]()
	}
}

// apply applies one record or returns a *detailError, changing nothing.
func (s *State) apply(r Record) error {
	switch r := r.(type) {
	case ClusterIDRecord:
		return s.applyClusterID(r)
	case RegisterBrokerRecord:
		return s.applyRegister(r)
	case FenceBrokerRecord:
		return s.applyFence(r)
	case UnfenceBrokerRecord:
		return s.applyUnfence(r)
	case TopicRecord:
		return s.applyTopic(r)
	case PartitionRecord:
		return s.applyPartition(r)
	case PartitionChangeRecord:
		return s.applyChange(r)
	case RemoveTopicRecord:
		return s.applyRemoveTopic(r)
	case ProducerIDsRecord:
		return s.applyProducerIDs(r)
	case TopicConfigRecord:
		return s.applyTopicConfig(r)
	case BrokerConfigRecord:
		return s.applyBrokerConfig(r)
	}
	return errf(ErrInvalidRequest, "unknown record %T", r)
}

func (s *State) applyClusterID(r ClusterIDRecord) error {
	switch {
	case r.ClusterID == "" || len(r.ClusterID) > maxClusterIDLen:
		return errf(ErrInvalidRequest, "cluster id of %d bytes (1..%d)", len(r.ClusterID), maxClusterIDLen)
	case s.clusterID == r.ClusterID:
		return errf(nil, "cluster id already set")
	case s.clusterID != "":
		return errf(ErrClusterIDMismatch, "cluster id is %q", s.clusterID)
	}
	s.setClusterID(r.ClusterID)
	return nil
}

// validBrokerInfo checks a registration's fields.
func validBrokerInfo(b BrokerInfo) error {
	switch {
	case b.ID < 0:
		return errf(ErrInvalidRequest, "broker id %d < 0", b.ID)
	case b.Host == "" || len(b.Host) > maxAddrLen:
		return errf(ErrInvalidRequest, "host of %d bytes (1..%d)", len(b.Host), maxAddrLen)
	case b.Port < 1 || b.Port > 65535:
		return errf(ErrInvalidRequest, "port %d", b.Port)
	case len(b.RaftAddr) > maxAddrLen || len(b.Rack) > maxAddrLen:
		return errf(ErrInvalidRequest, "raft address or rack longer than %d bytes", maxAddrLen)
	}
	return nil
}

func (s *State) applyRegister(r RegisterBrokerRecord) error {
	if err := validBrokerInfo(r.BrokerInfo); err != nil {
		return err
	}
	if r.Epoch < 0 {
		return errf(ErrStaleBrokerEpoch, "broker epoch %d < 0", r.Epoch)
	}
	if old := s.brokers[r.ID]; old != nil && r.Epoch <= old.Epoch {
		return errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", r.ID, r.Epoch, old.Epoch)
	}
	if r.Fenced {
		if err := s.canFence(r.ID); err != nil {
			return err
		}
	}
	s.setBroker(&Broker{BrokerInfo: r.BrokerInfo, Epoch: r.Epoch, Fenced: r.Fenced})
	return nil
}

// canFence checks that broker id leads nothing and is in no led
// partition's ISR.
func (s *State) canFence(id int32) error {
	for _, p := range s.ReplicatedOn(id) {
		if p.Leader == id {
			return errf(ErrInvalidRequest, "broker %d still leads %s", id, s.partitionName(p))
		}
		if p.Leader != NoLeader && p.InISR(id) {
			return errf(ErrInvalidRequest, "broker %d is still in the ISR of %s", id, s.partitionName(p))
		}
	}
	return nil
}

func (s *State) applyFence(r FenceBrokerRecord) error {
	b := s.brokers[r.Broker]
	switch {
	case b == nil:
		return errf(ErrUnknownBroker, "broker %d", r.Broker)
	case b.Fenced:
		return errf(nil, "broker %d already fenced", r.Broker)
	case r.Epoch <= b.Epoch:
		return errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", r.Broker, r.Epoch, b.Epoch)
	}
	if err := s.canFence(r.Broker); err != nil {
		return err
	}
	nb := *b
	nb.Epoch, nb.Fenced = r.Epoch, true
	s.setBroker(&nb)
	return nil
}

func (s *State) applyUnfence(r UnfenceBrokerRecord) error {
	b := s.brokers[r.Broker]
	switch {
	case b == nil:
		return errf(ErrUnknownBroker, "broker %d", r.Broker)
	case !b.Fenced:
		return errf(nil, "broker %d is not fenced", r.Broker)
	case r.Epoch != b.Epoch:
		return errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", r.Broker, r.Epoch, b.Epoch)
	}
	nb := *b
	nb.Fenced = false
	s.setBroker(&nb)
	return nil
}

// validConfigs checks that configs are sorted by name with no name twice,
// and within the length limits.
func validConfigs(cs []Config) error {
	if len(cs) > maxConfigs {
		return errf(ErrInvalidConfig, "%d configs (at most %d)", len(cs), maxConfigs)
	}
	for i, c := range cs {
		if c.Name == "" || len(c.Name) > maxConfigLen || len(c.Value) > maxConfigLen {
			return errf(ErrInvalidConfig, "config %q: name of 1..%d bytes, value of at most %d", c.Name, maxConfigLen, maxConfigLen)
		}
		if i > 0 && cs[i-1].Name >= c.Name {
			return errf(ErrInvalidConfig, "configs not sorted by name, or %q twice", c.Name)
		}
	}
	return nil
}

func (s *State) applyTopic(r TopicRecord) error {
	if err := engine.ValidateTopicName(r.Name); err != nil {
		return errf(ErrInvalidTopic, "%v", err)
	}
	if r.ID.IsZero() {
		return errf(ErrInvalidRequest, "topic %s with the zero id", r.Name)
	}
	if _, ok := s.names[r.Name]; ok {
		return errf(ErrTopicExists, "topic %s", r.Name)
	}
	if t := s.topics[r.ID]; t != nil {
		return errf(ErrTopicExists, "topic id %s is topic %s", r.ID, t.Name)
	}
	if err := validConfigs(r.Configs); err != nil {
		return err
	}
	s.setTopic(&Topic{Name: r.Name, ID: r.ID, Configs: r.Configs}, false)
	return nil
}

func (s *State) applyTopicConfig(r TopicConfigRecord) error {
	t := s.topics[r.Topic]
	if t == nil {
		return errf(ErrUnknownTopicID, "topic id %s", r.Topic)
	}
	if err := validConfigs(r.Configs); err != nil {
		return err
	}
	nt := *t
	nt.Configs = nilIfNoConfigs(r.Configs)
	s.setTopic(&nt, false)
	return nil
}

func (s *State) applyBrokerConfig(r BrokerConfigRecord) error {
	if r.Broker < DefaultBrokerConfigs {
		return errf(ErrInvalidRequest, "broker %d (>= 0, or %d for the defaults)", r.Broker, DefaultBrokerConfigs)
	}
	if err := validConfigs(r.Configs); err != nil {
		return err
	}
	s.setBrokerConfigs(r.Broker, nilIfNoConfigs(r.Configs))
	return nil
}

// nilIfNoConfigs makes an empty list nil, as decoding returns it, so that
// states reached by applying and by restoring compare equal.
func nilIfNoConfigs(cs []Config) []Config {
	if len(cs) == 0 {
		return nil
	}
	return cs
}

// validPartition checks a partition's replicas, ISR and leader against the
// brokers.
func (s *State) validPartition(replicas, isr []int32, leader int32) error {
	if len(replicas) == 0 || len(replicas) > maxReplicas {
		return errf(ErrInvalidReplicaAssignment, "%d replicas (1..%d)", len(replicas), maxReplicas)
	}
	for i, r := range replicas {
		if slices.Contains(replicas[:i], r) {
			return errf(ErrInvalidReplicaAssignment, "broker %d twice in the replicas", r)
		}
		if s.brokers[r] == nil {
			return errf(ErrInvalidReplicaAssignment, "replica %d is not a registered broker", r)
		}
	}
	if len(isr) == 0 {
		return errf(ErrInvalidRequest, "empty ISR")
	}
	for i, r := range isr {
		if slices.Contains(isr[:i], r) {
			return errf(ErrInvalidRequest, "broker %d twice in the ISR", r)
		}
		if !slices.Contains(replicas, r) {
			return errf(ErrInvalidRequest, "ISR member %d is not a replica", r)
		}
	}
	if leader == NoLeader {
		return nil
	}
	if !slices.Contains(isr, leader) {
		return errf(ErrInvalidRequest, "leader %d is not in the ISR", leader)
	}
	for _, r := range isr {
		if !s.Live(r) {
			return errf(ErrIneligibleReplica, "ISR member %d of a led partition is fenced", r)
		}
	}
	return nil
}

// validReassignment checks a reassignment's lists against the replicas:
// subsets of them, no broker twice, disjoint, and a target (the replicas
// without removing) left.
func validReassignment(replicas, adding, removing []int32) error {
	for _, l := range [][]int32{adding, removing} {
		for i, r := range l {
			if slices.Contains(l[:i], r) {
				return errf(ErrInvalidReplicaAssignment, "broker %d twice in a reassignment's list", r)
			}
			if !slices.Contains(replicas, r) {
				return errf(ErrInvalidReplicaAssignment, "reassignment's broker %d is not a replica %s", r, brokerList(replicas))
			}
		}
	}
	for _, r := range adding {
		if slices.Contains(removing, r) {
			return errf(ErrInvalidReplicaAssignment, "broker %d both added and removed", r)
		}
	}
	if len(removing) >= len(replicas) && len(removing) > 0 {
		return errf(ErrInvalidReplicaAssignment, "a reassignment removing every replica")
	}
	return nil
}

// nilIfEmpty keeps a partition's empty reassignment lists as nil, so a
// state has one form for "no reassignment".
func nilIfEmpty(ids []int32) []int32 {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

func (s *State) applyPartition(r PartitionRecord) error {
	t := s.topics[r.Topic]
	if t == nil {
		return errf(ErrUnknownTopicID, "topic id %s", r.Topic)
	}
	if r.Partition != t.Partitions {
		return errf(ErrInvalidPartitions, "partition %d of %s, whose next is %d", r.Partition, t.Name, t.Partitions)
	}
	if t.Partitions >= MaxPartitions {
		return errf(ErrInvalidPartitions, "topic %s has %d partitions already", t.Name, t.Partitions)
	}
	if r.LeaderEpoch < 0 || r.PartitionEpoch < 0 || r.UncleanEpoch < 0 || r.UncleanEpoch > r.LeaderEpoch {
		return errf(ErrInvalidRequest, "epochs: leader %d, partition %d, unclean %d", r.LeaderEpoch, r.PartitionEpoch, r.UncleanEpoch)
	}
	if err := s.validPartition(r.Replicas, r.ISR, r.Leader); err != nil {
		return err
	}
	if err := validReassignment(r.Replicas, r.Adding, r.Removing); err != nil {
		return err
	}
	nt := *t
	nt.Partitions++
	s.setTopic(&nt, false)
	key := TopicPartition{r.Topic, r.Partition}
	s.setPartition(key, &Partition{
		Topic: r.Topic, Index: r.Partition,
		Replicas: r.Replicas, ISR: r.ISR, Leader: r.Leader,
		LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch,
		Adding: nilIfEmpty(r.Adding), Removing: nilIfEmpty(r.Removing),
		UncleanEpoch: r.UncleanEpoch,
	})
	return nil
}

func (s *State) applyChange(r PartitionChangeRecord) error {
	if s.topics[r.Topic] == nil {
		return errf(ErrUnknownTopicID, "topic id %s", r.Topic)
	}
	p := s.parts[TopicPartition{r.Topic, r.Partition}]
	if p == nil {
		return errf(ErrUnknownTopic, "partition %d", r.Partition)
	}
	if r.LeaderEpoch != p.LeaderEpoch {
		return errf(ErrFencedLeaderEpoch, "replaces leader epoch %d, current %d", r.LeaderEpoch, p.LeaderEpoch)
	}
	if r.PartitionEpoch != p.PartitionEpoch {
		return errf(ErrInvalidUpdateVersion, "replaces partition epoch %d, current %d", r.PartitionEpoch, p.PartitionEpoch)
	}
	if r.Leader == NoLeaderChange && r.ISR == nil && r.Replicas == nil && r.Adding == nil && r.Removing == nil {
		return errf(ErrInvalidRequest, "changes nothing")
	}
	if r.Leader < NoLeaderChange {
		return errf(ErrInvalidRequest, "leader %d", r.Leader)
	}
	np := *p
	if r.Leader != NoLeaderChange && r.Leader != p.Leader {
		if p.LeaderEpoch == math.MaxInt32 {
			return errf(ErrInvalidRequest, "leader epoch exhausted")
		}
		np.Leader = r.Leader
		np.LeaderEpoch++
		if r.Unclean {
			np.UncleanEpoch = np.LeaderEpoch
		}
	} else if r.Unclean {
		return errf(ErrInvalidRequest, "an unclean election without a leader change")
	}
	if r.ISR != nil {
		np.ISR = r.ISR
	}
	if r.Replicas != nil {
		np.Replicas = r.Replicas
	}
	if r.Adding != nil {
		np.Adding = nilIfEmpty(r.Adding)
	}
	if r.Removing != nil {
		np.Removing = nilIfEmpty(r.Removing)
	}
	if p.PartitionEpoch == math.MaxInt32 {
		return errf(ErrInvalidRequest, "partition epoch exhausted")
	}
	np.PartitionEpoch++
	if err := s.validPartition(np.Replicas, np.ISR, np.Leader); err != nil {
		return err
	}
	if err := validReassignment(np.Replicas, np.Adding, np.Removing); err != nil {
		return err
	}
	s.setPartition(p.Key(), &np)
	return nil
}

func (s *State) applyRemoveTopic(r RemoveTopicRecord) error {
	t := s.topics[r.Topic]
	if t == nil {
		return errf(ErrUnknownTopicID, "topic id %s", r.Topic)
	}
	for i := int32(0); i < t.Partitions; i++ {
		s.setPartition(TopicPartition{t.ID, i}, nil)
	}
	s.setTopic(t, true)
	return nil
}

func (s *State) applyProducerIDs(r ProducerIDsRecord) error {
	if r.Start != s.nextProducerID {
		return errf(ErrInvalidRequest, "block starts at %d, next id is %d", r.Start, s.nextProducerID)
	}
	if r.Size <= 0 || r.Start > math.MaxInt64-r.Size {
		return errf(ErrProducerIDsExhausted, "block of %d ids from %d", r.Size, r.Start)
	}
	if r.Broker != -1 {
		b := s.brokers[r.Broker]
		if b == nil {
			return errf(ErrUnknownBroker, "broker %d", r.Broker)
		}
		if b.Epoch != r.BrokerEpoch {
			return errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", r.Broker, r.BrokerEpoch, b.Epoch)
		}
	}
	s.setNextProducerID(r.Start + r.Size)
	return nil
}

// partitionName renders p as topic/index.
func (s *State) partitionName(p *Partition) string {
	name := p.Topic.String()
	if t := s.topics[p.Topic]; t != nil {
		name = t.Name
	}
	return fmt.Sprintf("%s/%d", name, p.Index)
}
