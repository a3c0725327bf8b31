package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/netio"
)

func init() {
	regClusterKey(45, 0, 1, (*Broker).handleAlterReassignments, smallBody)
	regClusterKey(46, 0, 0, (*Broker).handleListReassignments, smallBody)
}

// handleAlterReassignments serves AlterPartitionReassignments v0–1
// (KIP-455) in a cluster: each partition's replicas move to the ones given
// (null cancels an ongoing move). The controller adds the new replicas,
// which catch up as followers; once they are all in the ISR it drops the
// old ones, moving leadership if its leader goes (see the cluster package).
// With allow_replication_factor_change false (v1) a target of another size
// than the partition's replicas is INVALID_REPLICATION_FACTOR. Elsewhere
// than on the controller the request is forwarded to it.
func (b *Broker) handleAlterReassignments(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	ctx, cancel := requestTimeout(ctx, r.TimeoutMillis)
	defer cancel()
	var resp *kmsg.AlterPartitionAssignmentsResponse
	if !b.node.IsController() {
		fr, err := b.node.Forward(ctx, r)
		if err == nil {
			var ok bool
			if resp, ok = fr.(*kmsg.AlterPartitionAssignmentsResponse); !ok {
				err = fmt.Errorf("unexpected response %T", fr)
			}
		}
		if err != nil {
			resp = kmsg.NewPtrAlterPartitionAssignmentsResponse()
			err = fmt.Errorf("%w: %v", errNoController, err)
			resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.SetVersion(req.APIVersion)
		return netio.Response{Msg: resp}
	}
	resp = kmsg.NewPtrAlterPartitionAssignmentsResponse()
	resp.SetVersion(req.APIVersion)
	resp.AllowReplicationFactorChange = r.AllowReplicationFactorChange
	var reqs []controller.Reassignment
	type slot struct{ t, p int }
	var slots []slot
	pre := map[slot]error{} // refused before reaching the controller
	for i, t := range r.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
			s := slot{i, j}
			if req.APIVersion >= 1 && !r.AllowReplicationFactorChange && p.Replicas != nil {
				if n := b.replicationFactor(t.Topic, p.Partition); n > 0 && n != len(p.Replicas) {
					pre[s] = fmt.Errorf("%w: %d replicas for %s/%d, which has %d, and the replication factor may not change",
						errReplication, len(p.Replicas), t.Topic, p.Partition, n)
					continue
				}
			}
			reqs = append(reqs, controller.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
			slots = append(slots, s)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	errs := b.node.AlterReassignments(ctx, reqs)
	for k, s := range slots {
		if k < len(errs) && errs[k] != nil {
			pre[s] = errs[k]
		}
	}
	for s, err := range pre {
		rp := &resp.Topics[s.t].Partitions[s.p]
		rp.ErrorCode, rp.ErrorMessage = errorCode(err), errorMessage(err)
		b.rejected(req, "partition reassignment", err, "topic", r.Topics[s.t].Topic, "partition", rp.Partition)
	}
	return netio.Response{Msg: resp}
}

// replicationFactor is a partition's replica count without the replicas an
// ongoing reassignment adds (0 if the partition is unknown).
func (b *Broker) replicationFactor(topic string, partition int32) int {
	n := 0
	b.node.View(func(s *cluster.State) {
		if p := s.Partition(topic, partition); p != nil {
			n = len(p.Replicas)
		}
	})
	for _, o := range b.node.Reassignments() {
		if o.Topic == topic && o.Partition == partition {
			n -= len(o.Adding)
		}
	}
	return n
}

// handleListReassignments serves ListPartitionReassignments v0 from this
// broker's copy of the metadata: the ongoing reassignments, all of them or
// those of the partitions asked for, with their replicas and the ones being
// added and removed.
func (b *Broker) handleListReassignments(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrListPartitionReassignmentsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	var want map[string]map[int32]bool // nil: every partition
	if r.Topics != nil {
		want = map[string]map[int32]bool{}
		for _, t := range r.Topics {
			if want[t.Topic] == nil {
				want[t.Topic] = map[int32]bool{}
			}
			for _, p := range t.Partitions {
				want[t.Topic][p] = true
			}
		}
	}
	resp := kmsg.NewPtrListPartitionReassignmentsResponse()
	resp.SetVersion(req.APIVersion)
	byTopic := map[string]int{}
	for _, o := range b.node.Reassignments() { // sorted by topic and partition
		if want != nil && !want[o.Topic][o.Partition] {
			continue
		}
		i, ok := byTopic[o.Topic]
		if !ok {
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = o.Topic
			resp.Topics = append(resp.Topics, rt)
			i = len(resp.Topics) - 1
			byTopic[o.Topic] = i
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition, rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = o.Partition, o.Replicas, o.Adding, o.Removing
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	return netio.Response{Msg: resp}
}
