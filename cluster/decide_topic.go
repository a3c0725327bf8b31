package cluster

import (
	"slices"
	"strings"

	"github.com/easel-io/easel/engine"
)

// CreateTopicRequest is a CreateTopics entry as the controller decides it.
type CreateTopicRequest struct {
	Name string
	// ID is the new topic's id, chosen by the caller (engine.NewTopicID) so
	// that the decision stays a pure function.
	ID engine.TopicID
	// Partitions is the partition count; -1 for Policy.DefaultPartitions.
	Partitions int32
	// ReplicationFactor is the number of replicas; -1 for
	// Policy.DefaultReplicationFactor.
	ReplicationFactor int16
	// Assignment, when not nil, gives each partition's replicas (preferred
	// leader first) instead of placement; Partitions and ReplicationFactor
	// must then be -1, as in Kafka.
	Assignment [][]int32
	// Configs are the topic's explicit settings, in any order.
	Configs []Config
}

// CreateTopic decides a new topic: its TopicRecord and a PartitionRecord per
// partition, with replicas placed (see placement in place.go) or as
// assigned. A new partition's leader is its first live replica and its ISR
// its live replicas; epochs start at 0. Errors: ErrInvalidTopic (bad name,
// or colliding with an existing name once '.' and '_' are treated alike, as
// Kafka refuses), ErrTopicExists, ErrInvalidRequest (zero id, or an
// assignment with counts), ErrInvalidPartitions, ErrInvalidReplicationFactor
// (below 1 or above the live brokers), ErrInvalidReplicaAssignment,
// ErrInvalidConfig.
func (p Policy) CreateTopic(s *State, req CreateTopicRequest) ([]Record, error) {
	if err := engine.ValidateTopicName(req.Name); err != nil {
		return nil, errf(ErrInvalidTopic, "%v", err)
	}
	if s.Topic(req.Name) != nil {
		return nil, errf(ErrTopicExists, "topic %s", req.Name)
	}
	norm := collisionName(req.Name)
	for _, t := range s.topics {
		if collisionName(t.Name) == norm {
			return nil, errf(ErrInvalidTopic, "topic %s collides with existing topic %s", req.Name, t.Name)
		}
	}
	if req.ID.IsZero() {
		return nil, errf(ErrInvalidRequest, "topic %s with the zero id", req.Name)
	}
	if t := s.topics[req.ID]; t != nil {
		return nil, errf(ErrTopicExists, "topic id %s is topic %s", req.ID, t.Name)
	}
	configs, err := p.sortedConfigs(req.Configs)
	if err != nil {
		return nil, err
	}
	var replicas [][]int32
	if req.Assignment != nil {
		if req.Partitions != -1 || req.ReplicationFactor != -1 {
			return nil, errf(ErrInvalidRequest, "both an assignment and a partition count or replication factor")
		}
		if len(req.Assignment) == 0 || len(req.Assignment) > MaxPartitions {
			return nil, errf(ErrInvalidPartitions, "%d partitions assigned (1..%d)", len(req.Assignment), MaxPartitions)
		}
		if err := validAssignment(s, req.Assignment, 0, len(req.Assignment[0])); err != nil {
			return nil, err
		}
		replicas = req.Assignment
	} else {
		n := req.Partitions
		if n == -1 {
			n = p.defaultPartitions()
		}
		if n < 1 || n > MaxPartitions {
			return nil, errf(ErrInvalidPartitions, "%d partitions (1..%d, or -1 for the default)", n, MaxPartitions)
		}
		rf := int(req.ReplicationFactor)
		if rf == -1 {
			rf = p.defaultReplicationFactor()
		}
		if replicas, err = placeNew(s, req.ID, 0, n, rf); err != nil {
			return nil, err
		}
	}
	recs := make([]Record, 0, 1+len(replicas))
	recs = append(recs, TopicRecord{Name: req.Name, ID: req.ID, Configs: configs})
	return append(recs, newPartitions(s, req.ID, 0, replicas)...), nil
}

// CreatePartitions decides adding partitions to the topic named name, up to
// count in all: PartitionRecords with replicas placed (balanced together
// with the topic's existing partitions) or, when assignment is not nil, as
// it gives them for each new partition. New partitions have the replication
// factor of the topic's partition 0. Errors: ErrUnknownTopic,
// ErrInvalidPartitions (count not above the current one, or over the
// limit), ErrInvalidReplicaAssignment, ErrInvalidReplicationFactor.
func (p Policy) CreatePartitions(s *State, name string, count int32, assignment [][]int32) ([]Record, error) {
	t := s.Topic(name)
	if t == nil {
		return nil, errf(ErrUnknownTopic, "topic %s", name)
	}
	if count <= t.Partitions {
		return nil, errf(ErrInvalidPartitions, "topic %s has %d partitions; %d asked", name, t.Partitions, count)
	}
	if count > MaxPartitions {
		return nil, errf(ErrInvalidPartitions, "%d partitions (at most %d)", count, MaxPartitions)
	}
	rf := len(s.parts[TopicPartition{t.ID, 0}].Target())
	replicas := assignment
	if assignment != nil {
		if len(assignment) != int(count-t.Partitions) {
			return nil, errf(ErrInvalidReplicaAssignment, "%d assignments for %d new partitions", len(assignment), count-t.Partitions)
		}
		if err := validAssignment(s, assignment, t.Partitions, rf); err != nil {
			return nil, err
		}
	} else {
		var err error
		if replicas, err = placeNew(s, t.ID, t.Partitions, count-t.Partitions, rf); err != nil {
			return nil, err
		}
	}
	return newPartitions(s, t.ID, t.Partitions, replicas), nil
}

// DeleteTopic decides deleting the topic named name: ErrUnknownTopic if
// there is none.
func (p Policy) DeleteTopic(s *State, name string) ([]Record, error) {
	t := s.Topic(name)
	if t == nil {
		return nil, errf(ErrUnknownTopic, "topic %s", name)
	}
	return []Record{RemoveTopicRecord{Topic: t.ID}}, nil
}

// DeleteTopicByID decides deleting the topic with the id (DeleteTopics v6+):
// ErrUnknownTopicID if there is none.
func (p Policy) DeleteTopicByID(s *State, id engine.TopicID) ([]Record, error) {
	if s.topics[id] == nil {
		return nil, errf(ErrUnknownTopicID, "topic id %s", id)
	}
	return []Record{RemoveTopicRecord{Topic: id}}, nil
}

// collisionName is the name Kafka compares for collisions ('.' as '_').
func collisionName(name string) string { return strings.ReplaceAll(name, ".", "_") }

// sortedConfigs sorts a copy of cs by name and checks it.
func (p Policy) sortedConfigs(cs []Config) ([]Config, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	cs = slices.Clone(cs)
	for i := range cs {
		cs[i].Value = strings.TrimSpace(cs[i].Value) // as Kafka parses values
	}
	slices.SortStableFunc(cs, func(a, b Config) int { return strings.Compare(a.Name, b.Name) })
	if err := validConfigs(cs); err != nil {
		return nil, err
	}
	if err := p.validateConfigs(cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// validAssignment checks explicit replica lists of partitions first..: rf
// brokers each, no broker twice, all registered, at least one live.
func validAssignment(s *State, assignment [][]int32, first int32, rf int) error {
	for j, replicas := range assignment {
		i := first + int32(j)
		if len(replicas) == 0 || len(replicas) > maxReplicas {
			return errf(ErrInvalidReplicaAssignment, "partition %d: %d replicas (1..%d)", i, len(replicas), maxReplicas)
		}
		if len(replicas) != rf {
			return errf(ErrInvalidReplicaAssignment, "partition %d: %d replicas, others have %d", i, len(replicas), rf)
		}
		live := false
		for j, r := range replicas {
			if slices.Contains(replicas[:j], r) {
				return errf(ErrInvalidReplicaAssignment, "partition %d: broker %d twice", i, r)
			}
			if s.brokers[r] == nil {
				return errf(ErrInvalidReplicaAssignment, "partition %d: broker %d is not registered", i, r)
			}
			live = live || s.Live(r)
		}
		if !live {
			return errf(ErrInvalidReplicaAssignment, "partition %d: every replica's broker is fenced", i)
		}
	}
	return nil
}

// placeNew places count partitions from first.
func placeNew(s *State, id engine.TopicID, first, count int32, rf int) ([][]int32, error) {
	pl, err := newPlacer(s, id, rf)
	if err != nil {
		return nil, err
	}
	out := make([][]int32, count)
	for i := range out {
		out[i] = pl.place(first + int32(i))
	}
	return out, nil
}

// newPartitions builds the PartitionRecords of partitions first.. with the
// replicas given: the leader is the first live replica, the ISR the live
// replicas.
func newPartitions(s *State, id engine.TopicID, first int32, replicas [][]int32) []Record {
	recs := make([]Record, len(replicas))
	for i, rs := range replicas {
		isr := make([]int32, 0, len(rs))
		for _, r := range rs {
			if s.Live(r) {
				isr = append(isr, r)
			}
		}
		recs[i] = PartitionRecord{
			Topic: id, Partition: first + int32(i),
			Replicas: slices.Clone(rs), ISR: isr, Leader: isr[0],
		}
	}
	return recs
}
