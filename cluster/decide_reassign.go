package cluster

import "slices"

// Partition reassignment, Kafka's way (KIP-455, KRaft's
// ReplicationControlManager): a reassignment adds the target's new replicas
// at once (they start fetching), and once every target replica is in the
// ISR, one change drops the others. In between, Partition.Adding and
// Removing say what is moving, in the metadata log and its snapshots, so a
// new controller carries on where the old one stopped.

// AlterReassignment decides a change of a partition's replicas
// (AlterPartitionReassignments' entry) to target, preferred leader first;
// a nil target cancels the reassignment in progress.
//
// A target starts from the partition's original replicas (those before a
// reassignment in progress, which the new one replaces): the replicas
// become the target followed by the original replicas it drops (Removing),
// the target's new brokers being Adding; the ISR and the leader are
// unchanged, except that replicas an earlier reassignment added and this
// one does not want leave them. A target that adds nothing completes at
// once if every target replica is in the ISR (a shrink, a reorder).
//
// A cancel returns to the original replicas (in the order they have in the
// replicas; Kafka keeps no other): the adding replicas leave the replicas
// and the ISR, and a leader among them hands over to the first original
// replica in the ISR. Should no original replica be in the ISR, the first
// live one leads alone (an unclean election, as Kafka's revert does).
//
// Completion (every target replica in the ISR, the partition led) is one
// change: replicas := target, ISR := ISR ∩ target, the leader kept if in the
// target, else the first target replica in the ISR (leader epoch bumped),
// the reassignment cleared. AlterPartition, the broker decisions and
// CompleteReassignments complete what they can.
//
// Errors: ErrUnknownTopic (UNKNOWN_TOPIC_OR_PARTITION),
// ErrInvalidReplicaAssignment (an empty target, a broker twice, an
// unregistered broker, too many replicas, or nothing left to lead),
// ErrNoReassignmentInProgress (a cancel with none in progress). A target
// equal to the replicas, with none in progress, changes nothing.
func (p Policy) AlterReassignment(s *State, topic string, partition int32, target []int32) ([]Record, error) {
	part := s.Partition(topic, partition)
	if part == nil {
		return nil, errf(ErrUnknownTopic, "%s/%d", topic, partition)
	}
	name := s.partitionName(part)
	orig := part.Original()
	if target == nil {
		if !part.Reassigning() {
			return nil, errf(ErrNoReassignmentInProgress, "%s", name)
		}
		target = orig
	}
	if len(target) == 0 {
		return nil, errf(ErrInvalidReplicaAssignment, "%s: empty target", name)
	}
	for i, r := range target {
		if slices.Contains(target[:i], r) {
			return nil, errf(ErrInvalidReplicaAssignment, "%s: broker %d twice in the target", name, r)
		}
		if s.brokers[r] == nil {
			return nil, errf(ErrInvalidReplicaAssignment, "%s: broker %d is not registered", name, r)
		}
	}
	adding, removing := minus(target, orig), minus(orig, target)
	replicas := append(slices.Clone(target), removing...)
	if len(replicas) > maxReplicas {
		return nil, errf(ErrInvalidReplicaAssignment, "%s: %d replicas while moving (at most %d)", name, len(replicas), maxReplicas)
	}
	isr := slices.DeleteFunc(slices.Clone(part.ISR), func(r int32) bool { return !slices.Contains(replicas, r) })
	leader, unclean := part.Leader, false
	switch {
	case len(isr) == 0:
		// Every in-sync replica is one an earlier reassignment added and
		// this one drops.
		l := firstLive(orig, s.Live)
		if l == NoLeader {
			return nil, errf(ErrInvalidReplicaAssignment, "%s: no in-sync replica would remain, and no original replica is live", name)
		}
		leader, isr, unclean = l, []int32{l}, true
	case leader != NoLeader && !slices.Contains(replicas, leader):
		leader = firstInISR(replicas, isr, func(int32) bool { return true })
	}
	c := changeOf(part)
	if !slices.Equal(replicas, part.Replicas) {
		c.Replicas = replicas
	}
	if !slices.Equal(isr, part.ISR) {
		c.ISR = isr
	}
	if leader != part.Leader {
		c.Leader = leader
	}
	c.Unclean = unclean
	if !slices.Equal(adding, part.Adding) {
		c.Adding = adding
	}
	if !slices.Equal(removing, part.Removing) {
		c.Removing = removing
	}
	c = completed(part, c)
	if c.Leader == NoLeaderChange && c.ISR == nil && c.Replicas == nil && c.Adding == nil && c.Removing == nil {
		return nil, nil
	}
	return []Record{c}, nil
}

// CompleteReassignments decides completing every reassignment whose target
// replicas are all in the ISR of a led partition (see AlterReassignment),
// one change per partition, by topic name and index. AlterPartition and the
// broker decisions already complete what their change allows; the driver
// calls this after ISRs grow and on a timer, and a new controller on taking
// over, so that nothing waits on an event that has passed.
func (p Policy) CompleteReassignments(s *State) []Record {
	var recs []Record
	for _, part := range s.Reassignments() {
		if c := completed(part, changeOf(part)); c.Replicas != nil {
			recs = append(recs, c)
		}
	}
	return recs
}

// completed extends c, a change of part, to complete part's reassignment
// when the partition as c leaves it has every target replica in its ISR
// and a leader. c is returned as it was otherwise.
func completed(part *Partition, c PartitionChangeRecord) PartitionChangeRecord {
	replicas, isr, leader, adding, removing := part.Replicas, part.ISR, part.Leader, part.Adding, part.Removing
	if c.Replicas != nil {
		replicas = c.Replicas
	}
	if c.ISR != nil {
		isr = c.ISR
	}
	if c.Leader != NoLeaderChange {
		leader = c.Leader
	}
	if c.Adding != nil {
		adding = c.Adding
	}
	if c.Removing != nil {
		removing = c.Removing
	}
	if len(adding) == 0 && len(removing) == 0 || leader == NoLeader {
		return c
	}
	target := minus(replicas, removing)
	for _, r := range target {
		if !slices.Contains(isr, r) {
			return c
		}
	}
	newISR := slices.DeleteFunc(slices.Clone(isr), func(r int32) bool { return !slices.Contains(target, r) })
	if !slices.Contains(target, leader) {
		leader = firstInISR(target, newISR, func(int32) bool { return true })
	}
	c.Replicas = target
	if !slices.Equal(newISR, part.ISR) {
		c.ISR = newISR
	} else {
		c.ISR = nil
	}
	if leader != part.Leader {
		c.Leader = leader
	} else {
		c.Leader = NoLeaderChange
	}
	c.Adding, c.Removing = nil, nil
	if part.Reassigning() {
		c.Adding, c.Removing = []int32{}, []int32{}
	}
	return c
}
