package group

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// What a group writes to its __consumer_offsets partition, and how a loaded
// partition's records become groups again. Writes are queued on the
// partition's writer under g.mu (queuing does no I/O), so a group's records
// are appended in the order its state changed; nothing waits for them with
// g.mu held.

// metadataLocked is the group's GroupMetadataValue: its generation, protocol,
// leader and members with their subscription (metadata for the selected
// protocol) and assignment (assign's when given, else the member's own).
func (g *group) metadataLocked(assign map[string][]byte) *kmsg.GroupMetadataValue {
	v := kmsg.NewGroupMetadataValue()
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	v.CurrentStateTimestamp = g.c.cfg.Now().UnixMilli()
	if len(g.members) > 0 {
		proto, leader := g.protocol, g.leader
		v.Protocol, v.Leader = &proto, &leader
	}
	v.Members = make([]kmsg.GroupMetadataValueMember, len(g.members))
	for i, m := range g.members {
		a := m.assignment
		if assign != nil {
			a = assign[m.id]
		}
		if a == nil {
			a = []byte{}
		}
		v.Members[i] = kmsg.GroupMetadataValueMember{
			MemberID:               m.id,
			InstanceID:             m.instance,
			ClientID:               m.clientID,
			ClientHost:             m.clientHost,
			RebalanceTimeoutMillis: int32(m.rebalanceTimeout / time.Millisecond),
			SessionTimeoutMillis:   int32(m.sessionTimeout / time.Millisecond),
			Subscription:           m.metadataFor(g.protocol),
			Assignment:             a,
		}
	}
	return &v
}

// storeLocked queues the group's metadata (see metadataLocked) and calls
// done, on the writer's goroutine without g.mu, with 0 once it is appended
// or the error code for the failure. It returns a code, without calling
// done, if the write cannot be queued (the partition is being unloaded).
func (g *group) storeLocked(assign map[string][]byte, done func(code int16)) int16 {
	key := appendGroupKey(nil, g.id)
	val := appendGroupValue(nil, g.metadataLocked(assign))
	g.persisted = true
	err := g.w.submit(newWrite([]record.Record{{Key: key, Value: val}}, func(err error) {
		if err != nil {
			g.c.log.Warn("group: cannot store group metadata", "group", g.id, "err", err)
		}
		done(storeErrorCode(err, kerr.MessageTooLarge.Code))
	}))
	return storeErrorCode(err, 0)
}

// storeEmptyLocked stores that the group became empty (at its new
// generation), as Kafka does when a rebalance ends with no members, so a
// restart does not bring back members that have left. Failures are logged:
// the group then comes back with the members of its last stored generation,
// whose sessions expire.
func (g *group) storeEmptyLocked() {
	if !g.persisted && len(g.offsets) == 0 {
		return // nothing of the group is in the log
	}
	g.storeLocked(nil, func(int16) {})
}

// deleteLocked removes the group: it queues tombstones for its committed
// offsets and (if it was ever stored) its metadata, then drops the group from
// its shard. done, if not nil, gets the write's error code (0 once appended);
// it is not called if deleteLocked returns a code (nothing could be queued).
// commitMu and mu are held. Queuing before removal orders the tombstones
// before any record of a new group with the same id.
func (g *group) deleteLocked(done func(code int16)) int16 {
	var recs []record.Record
	if len(g.offsets) > 0 || g.persisted {
		tps := g.sortedOffsetsLocked()
		var buf []byte
		for _, tp := range tps {
			start := len(buf)
			buf = appendOffsetKey(buf, g.id, tp.Topic, tp.Partition)
			recs = append(recs, record.Record{Key: buf[start:len(buf):len(buf)]})
		}
		recs = append(recs, record.Record{Key: appendGroupKey(nil, g.id)})
	}
	if len(recs) > 0 {
		id := g.id
		log := g.c.log
		err := g.w.submit(newWrite(recs, func(err error) {
			if err != nil {
				log.Warn("group: cannot write tombstones of a deleted group", "group", id, "err", err)
			}
			if done != nil {
				done(storeErrorCode(err, kerr.UnknownServerError.Code))
			}
		}))
		if err != nil {
			return storeErrorCode(err, 0)
		}
	} else if done != nil {
		done(0)
	}
	clear(g.offsets)
	g.c.removeGroupLocked(g)
	return 0
}

// sortedOffsetsLocked returns the partitions the group has offsets for,
// sorted by topic and partition.
func (g *group) sortedOffsetsLocked() []engine.TopicPartition {
	tps := make([]engine.TopicPartition, 0, len(g.offsets))
	for tp := range g.offsets {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b engine.TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return tps
}

// restoreLocked makes g what its stored metadata v says, as Kafka loads a
// group: with members it is Stable at v's generation, each member with the
// selected protocol's subscription, its assignment and a fresh session
// (armed by the caller once the group is served); without, Empty. Records a
// correct coordinator would not write (a leader that is not a member,
// repeated member or instance ids, members without a protocol) are repaired
// by dropping what does not fit, so the group's invariants hold.
func (g *group) restoreLocked(v *kmsg.GroupMetadataValue, loadTime time.Time) {
	g.persisted = true
	g.protocolType = v.ProtocolType
	g.generation = max(v.Generation, 0)
	g.emptySince = loadTime
	proto := ""
	if v.Protocol != nil {
		proto = *v.Protocol
	}
	if proto != "" && v.ProtocolType != "" {
		for i := range v.Members {
			vm := &v.Members[i]
			if vm.MemberID == "" || g.byID[vm.MemberID] != nil ||
				vm.InstanceID != nil && g.static[*vm.InstanceID] != nil {
				continue
			}
			session := millis(vm.SessionTimeoutMillis)
			rebalance := millis(vm.RebalanceTimeoutMillis)
			if vm.RebalanceTimeoutMillis < 0 {
				rebalance = session
			}
			m := &member{
				id:               vm.MemberID,
				instance:         vm.InstanceID,
				clientID:         vm.ClientID,
				clientHost:       vm.ClientHost,
				sessionTimeout:   session,
				rebalanceTimeout: rebalance,
				protocolType:     g.protocolType,
				protocols:        []protocol{{name: proto, metadata: vm.Subscription}},
				assignment:       vm.Assignment,
			}
			g.addLocked(m, nil)
		}
	}
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = stateEmpty, "", ""
		if v.CurrentStateTimestamp > 0 {
			g.emptySince = time.UnixMilli(v.CurrentStateTimestamp)
		}
		return
	}
	g.state, g.protocol = stateStable, proto
	if v.Leader != nil && g.byID[*v.Leader] != nil {
		g.leader = *v.Leader
	} else {
		g.leader = g.members[0].id
	}
}

// storeErrorCode maps the error of a write to __consumer_offsets to the
// code clients get: 0 for nil; tooLarge for a record batch over
// max.message.bytes (INVALID_COMMIT_OFFSET_SIZE for commits,
// MESSAGE_TOO_LARGE for group metadata); NOT_COORDINATOR when the partition
// is no longer served or led here; KAFKA_STORAGE_ERROR when the log failed (an
// fsync error: nothing more is appended to the partition until the broker
// restarts); COORDINATOR_NOT_AVAILABLE while the engine closes or when the
// write was not replicated in time.
func storeErrorCode(err error, tooLarge int16) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errNotLoaded), errors.Is(err, engine.ErrNotLeader):
		return kerr.NotCoordinator.Code
	case errors.Is(err, engine.ErrMessageTooLarge) && tooLarge != 0:
		return tooLarge
	case errors.Is(err, engine.ErrLogFailed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, engine.ErrClosed), errors.Is(err, engine.ErrUnknownTopic), errors.Is(err, engine.ErrUnknownPartition),
		errors.Is(err, engine.ErrTopicBusy), errors.Is(err, errCommitTimeout):
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.UnknownServerError.Code
}
