package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

func init() { regKey(23, 0, 4, (*Broker).handleOffsetForLeaderEpoch, smallBody) }

// handleOffsetForLeaderEpoch serves OffsetForLeaderEpoch v0–4 (KIP-101,
// KIP-279; consumers use it since KIP-320 to detect truncation after a
// leader change). For each partition it answers, from the leader-epoch
// cache (Partition.EndOffsetForEpoch), the largest epoch at or below the
// one asked for that the log holds and the offset where the next epoch
// begins, the log end offset for the current epoch, and -1, -1 for an
// epoch newer than any the log holds or an empty log; an epoch older than
// the first gives the start of the first. From v2 a current_leader_epoch
// other than -1 is checked as Fetch checks it (FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH); a follower partition answers
// NOT_LEADER_OR_FOLLOWER. replica_id (v3+) changes nothing, as in Kafka:
// only a leader answers, to followers and consumers alike. v0 answers
// carry no leader epoch.
func (b *Broker) handleOffsetForLeaderEpoch(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrOffsetForLeaderEpochRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	resp.SetVersion(req.APIVersion)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(r.Topics))
	for i := range r.Topics {
		t := &r.Topics[i]
		rt := &resp.Topics[i]
		*rt = kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(t.Partitions))
		for j := range t.Partitions {
			pt := &t.Partitions[j]
			rp := &rt.Partitions[j]
			*rp = kmsg.NewOffsetForLeaderEpochResponseTopicPartition() // epoch and offset -1
			rp.Partition = pt.Partition
			current := int32(-1)
			if req.APIVersion >= 2 {
				current = pt.CurrentLeaderEpoch
			}
			p, err := b.partitionFor(t.Topic, pt.Partition, current, true)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				b.rejected(req, "offset for leader epoch", err, "topic", t.Topic, "partition", pt.Partition, "leader_epoch", pt.LeaderEpoch)
				continue
			}
			rp.LeaderEpoch, rp.EndOffset = p.EndOffsetForEpoch(pt.LeaderEpoch)
		}
	}
	return netio.Response{Msg: resp}
}
