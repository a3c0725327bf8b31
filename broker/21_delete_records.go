package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(21, 0, 2, (*Broker).handleDeleteRecords, smallBody) }

// handleDeleteRecords serves DeleteRecords v0–2: each partition's log start
// offset moves up to the offset given (-1: the high watermark), durably,
// and the answer is the new log start (low_watermark). Consumers fetching
// below it then get OFFSET_OUT_OF_RANGE, and whole segments below it are
// removed at once. As in Kafka: an offset above the high watermark (or
// below -1) is OFFSET_OUT_OF_RANGE, one at or below the current start
// changes nothing; internal topics (__consumer_offsets) are refused with
// INVALID_TOPIC_EXCEPTION, topics whose cleanup.policy does not include
// delete with POLICY_VIOLATION, and follower partitions with
// NOT_LEADER_OR_FOLLOWER. On a single node every replica is done when the
// leader is, so the timeout is not used.
func (b *Broker) handleDeleteRecords(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrDeleteRecordsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrDeleteRecordsResponse()
	resp.SetVersion(req.APIVersion)
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(r.Topics))
	for i := range r.Topics {
		t := &r.Topics[i]
		rt := &resp.Topics[i]
		*rt = kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(t.Partitions))
		for j := range t.Partitions {
			pt := &t.Partitions[j]
			rp := &rt.Partitions[j]
			*rp = kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = pt.Partition
			low, err := b.deleteRecords(t.Topic, pt.Partition, pt.Offset)
			if err != nil {
				rp.ErrorCode, rp.LowWatermark = errorCode(err), -1
				b.rejected(req, "delete records", err, "topic", t.Topic, "partition", pt.Partition, "offset", pt.Offset)
				continue
			}
			rp.LowWatermark = low
			b.log.Info("broker: deleted records", "topic", t.Topic, "partition", pt.Partition, "before", pt.Offset, "log_start", low)
		}
	}
	return netio.Response{Msg: resp}
}

// deleteRecords moves one partition's log start to before and returns the
// new log start.
func (b *Broker) deleteRecords(topic string, partition int32, before int64) (int64, error) {
	info, err := b.topic(topic)
	if err != nil {
		return 0, err
	}
	if info.Internal {
		return 0, fmt.Errorf("%w: cannot delete records of %q", errInternalTopic, topic)
	}
	if !slices.Contains(strings.Split(info.Config.CleanupPolicy, ","), engine.CleanupDelete) {
		return 0, fmt.Errorf("%w: records of %q (cleanup.policy=%s) cannot be deleted", errPolicy, topic, info.Config.CleanupPolicy)
	}
	p, err := b.partitionFor(topic, partition, -1, true)
	if err != nil {
		return 0, err
	}
	return p.DeleteRecords(before)
}
