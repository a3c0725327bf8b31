package cluster

import (
	"math"
	"slices"
)

// InitCluster decides the first records of a new cluster's log: its id and,
// when nextProducerID is above the state's, a block reserving the producer
// ids handed out before (a single node's old state file: broker -1). Run on
// a log that already has the id, it only adds a missing reservation.
// Errors: ErrClusterIDMismatch when the log names another cluster,
// ErrInvalidRequest for an empty or overlong id.
func (p Policy) InitCluster(s *State, clusterID string, nextProducerID int64) ([]Record, error) {
	if clusterID == "" || len(clusterID) > maxClusterIDLen {
		return nil, errf(ErrInvalidRequest, "cluster id of %d bytes (1..%d)", len(clusterID), maxClusterIDLen)
	}
	var recs []Record
	switch s.clusterID {
	case "":
		recs = append(recs, ClusterIDRecord{ClusterID: clusterID})
	case clusterID:
	default:
		return nil, errf(ErrClusterIDMismatch, "the metadata is of cluster %q, not %q", s.clusterID, clusterID)
	}
	if nextProducerID > s.nextProducerID {
		recs = append(recs, ProducerIDsRecord{Broker: -1, Start: s.nextProducerID, Size: nextProducerID - s.nextProducerID})
	}
	return recs, nil
}

// BrokerJoined decides what a broker's arrival (a gossip join or update)
// changes:
//   - an unknown broker registers, fenced, at epoch 1;
//   - a known broker with the same incarnation and addresses changes
//     nothing (a fenced one waits to be unfenced by BrokerCaughtUp);
//   - a fenced broker with a new incarnation or addresses re-registers,
//     fenced, at the next epoch;
//   - an unfenced broker with a new incarnation restarted before its failure
//     was noticed: its old incarnation is handled as BrokerFailed, and the
//     new one registers fenced, in the same entry.
//
// Errors: ErrInvalidRequest for a malformed BrokerInfo.
func (p Policy) BrokerJoined(s *State, info BrokerInfo) ([]Record, error) {
	if err := validBrokerInfo(info); err != nil {
		return nil, err
	}
	b := s.brokers[info.ID]
	switch {
	case b == nil:
		return []Record{RegisterBrokerRecord{BrokerInfo: info, Epoch: 1, Fenced: true}}, nil
	case b.BrokerInfo == info:
		return nil, nil
	case b.Fenced:
		return []Record{RegisterBrokerRecord{BrokerInfo: info, Epoch: b.Epoch + 1, Fenced: true}}, nil
	}
	recs := p.removeBroker(s, b, true)
	return append(recs, RegisterBrokerRecord{BrokerInfo: info, Epoch: b.Epoch + 2, Fenced: true}), nil
}

// BrokerFailed decides a broker's failure (gossip reports it dead), Kafka's
// way: every partition it led gets a new leader, the first replica in the
// ISR, with the leader epoch bumped; it leaves every ISR it was in; and it
// is fenced under a new broker epoch, all in one entry. A partition whose
// ISR had no other member goes offline (leader -1, ISR kept as that last
// member, so it leads again when it returns), unless the topic allows
// unclean election (unclean.leader.election.enable, else
// Policy.UncleanLeaderElection): then its first live replica leads, alone in
// the ISR. A fenced broker changes nothing. Errors: ErrUnknownBroker.
func (p Policy) BrokerFailed(s *State, id int32) ([]Record, error) {
	b := s.brokers[id]
	if b == nil {
		return nil, errf(ErrUnknownBroker, "broker %d", id)
	}
	if b.Fenced {
		return nil, nil
	}
	return p.removeBroker(s, b, true), nil
}

// ControlledShutdown decides a broker's request to stop cleanly (Kafka's
// controlled shutdown): as BrokerFailed, leadership moves to other ISR
// members, the broker leaves the ISRs and is fenced, so that clients and
// followers move before it stops. A partition with no other ISR member goes
// offline until the broker returns (never an unclean election: the broker
// has every committed record). A fenced broker changes nothing. Errors:
// ErrUnknownBroker, ErrStaleBrokerEpoch (the request is from an older
// incarnation).
func (p Policy) ControlledShutdown(s *State, id int32, epoch int64) ([]Record, error) {
	b := s.brokers[id]
	if b == nil {
		return nil, errf(ErrUnknownBroker, "broker %d", id)
	}
	if b.Fenced {
		return nil, nil
	}
	if epoch != b.Epoch {
		return nil, errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", id, epoch, b.Epoch)
	}
	return p.removeBroker(s, b, false), nil
}

// BrokerCaughtUp decides unfencing a broker that has caught up on the
// metadata log at epoch (the caller judges "caught up"): it is unfenced, and
// each offline partition it can lead gets it as leader (a partition whose
// ISR it is in; with unclean election allowed, any partition it is a
// replica of). ISR expansion is the partition leaders' business
// (AlterPartition); leadership moves back to preferred replicas with
// ElectPreferredLeaders. An unfenced broker changes nothing. Errors:
// ErrUnknownBroker, ErrStaleBrokerEpoch.
func (p Policy) BrokerCaughtUp(s *State, id int32, epoch int64) ([]Record, error) {
	b := s.brokers[id]
	if b == nil {
		return nil, errf(ErrUnknownBroker, "broker %d", id)
	}
	if epoch != b.Epoch {
		return nil, errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", id, epoch, b.Epoch)
	}
	if !b.Fenced {
		return nil, nil
	}
	recs := []Record{UnfenceBrokerRecord{Broker: id, Epoch: epoch}}
	live := func(r int32) bool { return r == id || s.Live(r) }
	for _, part := range s.ReplicatedOn(id) {
		if part.Leader != NoLeader {
			continue
		}
		if c, ok := p.electOffline(s, part, live); ok {
			recs = append(recs, c)
		}
	}
	return recs, nil
}

// Reconcile compares the metadata with gossip's live members (on winning
// the controller's election, and whenever the driver likes): it returns
// the records for the first broker, by id, that is out of line (a live
// member to register, as BrokerJoined; a registered unfenced broker gossip
// does not list, as BrokerFailed), or none when all agree. Call it again
// after its records are applied, until it returns none. Errors:
// ErrInvalidRequest for a malformed member or one listed twice.
func (p Policy) Reconcile(s *State, live []BrokerInfo) ([]Record, error) {
	members := slices.Clone(live)
	slices.SortFunc(members, func(a, b BrokerInfo) int { return int(a.ID) - int(b.ID) })
	for i, m := range members {
		if i > 0 && members[i-1].ID == m.ID {
			return nil, errf(ErrInvalidRequest, "broker %d listed twice", m.ID)
		}
		recs, err := p.BrokerJoined(s, m)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
	}
	for _, b := range s.Brokers() {
		if b.Fenced {
			continue
		}
		if _, found := slices.BinarySearchFunc(members, b.ID, func(m BrokerInfo, id int32) int { return int(m.ID) - int(id) }); !found {
			return p.BrokerFailed(s, b.ID)
		}
	}
	return nil, nil
}

// AllocateProducerIDs decides the next block of producer ids for a broker
// (KIP-730's AllocateProducerIds): Policy.ProducerIDBlockSize ids from the
// state's next one; the block is the record's. Errors: ErrUnknownBroker,
// ErrStaleBrokerEpoch, ErrProducerIDsExhausted.
func (p Policy) AllocateProducerIDs(s *State, broker int32, epoch int64) ([]Record, error) {
	b := s.brokers[broker]
	if b == nil {
		return nil, errf(ErrUnknownBroker, "broker %d", broker)
	}
	if epoch != b.Epoch {
		return nil, errf(ErrStaleBrokerEpoch, "broker %d epoch %d, current %d", broker, epoch, b.Epoch)
	}
	size := p.producerIDBlockSize()
	if s.nextProducerID > math.MaxInt64-size {
		return nil, errf(ErrProducerIDsExhausted, "next id %d", s.nextProducerID)
	}
	return []Record{ProducerIDsRecord{Broker: broker, BrokerEpoch: epoch, Start: s.nextProducerID, Size: size}}, nil
}

// removeBroker builds the entry that takes unfenced broker b out of service:
// leadership moved, ISRs left, then the fence (which applies only once the
// broker leads nothing and is in no led ISR).
func (p Policy) removeBroker(s *State, b *Broker, allowUnclean bool) []Record {
	var recs []Record
	for _, part := range s.ReplicatedOn(b.ID) {
		if !part.InISR(b.ID) {
			continue
		}
		isr := without(part.ISR, b.ID)
		c := changeOf(part)
		switch part.Leader {
		case b.ID:
			live := func(r int32) bool { return r != b.ID && s.Live(r) }
			if l := firstInISR(part.Replicas, isr, live); l != NoLeader {
				c.Leader, c.ISR = l, isr
			} else if l := firstLive(part.Replicas, live); allowUnclean && p.unclean(s, s.topics[part.Topic]) && l != NoLeader {
				c.Leader, c.ISR, c.Unclean = l, []int32{l}, true
			} else {
				c.Leader = NoLeader
				if len(isr) > 0 {
					c.ISR = isr
				}
			}
		case NoLeader:
			if len(isr) == 0 {
				continue // it stays the last ISR member of an offline partition
			}
			c.ISR = isr
		default:
			c.ISR = isr
		}
		recs = append(recs, completed(part, c))
	}
	return append(recs, FenceBrokerRecord{Broker: b.ID, Epoch: b.Epoch + 1})
}

// changeOf starts a change of part that changes nothing yet.
func changeOf(part *Partition) PartitionChangeRecord {
	return PartitionChangeRecord{
		Topic: part.Topic, Partition: part.Index,
		LeaderEpoch: part.LeaderEpoch, PartitionEpoch: part.PartitionEpoch,
		Leader: NoLeaderChange,
	}
}

// firstInISR returns the first of replicas in isr for which ok holds, or
// NoLeader.
func firstInISR(replicas, isr []int32, ok func(int32) bool) int32 {
	for _, r := range replicas {
		if slices.Contains(isr, r) && ok(r) {
			return r
		}
	}
	return NoLeader
}

// firstLive returns the first of replicas for which ok holds, or NoLeader.
func firstLive(replicas []int32, ok func(int32) bool) int32 {
	for _, r := range replicas {
		if ok(r) {
			return r
		}
	}
	return NoLeader
}

// without returns a new slice of ids without id.
func without(ids []int32, id int32) []int32 {
	out := make([]int32, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// minus returns a new slice of ids without those in drop, in order.
func minus(ids, drop []int32) []int32 {
	out := make([]int32, 0, len(ids))
	for _, x := range ids {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}
