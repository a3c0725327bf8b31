package broker

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

func init() { regKey(2, 1, 6, (*Broker).handleListOffsets, smallBody) }

// Special ListOffsets timestamps.
const (
	latestTimestamp   = -1 // the high watermark (the log end for followers)
	earliestTimestamp = -2 // the log start offset
)

// debugReplicaID is Kafka's DEBUGGING_REPLICA_ID: a ListOffsets with it may
// be answered by a follower.
const debugReplicaID = -2

// handleListOffsets serves ListOffsets v1–6: -1 is the high watermark (for
// replica_id >= 0, a follower, the log end offset), -2 the log start
// offset, and a timestamp the first committed record at or after it (with
// its timestamp), or offset -1 if there is none, as Kafka answers. From v4
// the current_leader_epoch is checked as Fetch checks it, and the answer
// carries the leader epoch of the offset found: the current one for -1,
// that of the batch holding the offset otherwise. A follower partition
// answers NOT_LEADER_OR_FOLLOWER unless replica_id is -2 (debugging).
func (b *Broker) handleListOffsets(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrListOffsetsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.SetVersion(req.APIVersion)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(r.Topics))
	for i := range r.Topics {
		t := &r.Topics[i]
		rt := &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(t.Partitions))
		for j := range t.Partitions {
			pt := &t.Partitions[j]
			rp := &rt.Partitions[j]
			*rp = kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = pt.Partition
			off, ts, epoch, err := b.listOffset(req.APIVersion, r.ReplicaID, t.Topic, pt)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				rp.Offset, rp.Timestamp, rp.LeaderEpoch = -1, -1, -1
				b.rejected(req, "list offsets", err, "topic", t.Topic, "partition", pt.Partition, "timestamp", pt.Timestamp)
				continue
			}
			rp.Offset, rp.Timestamp, rp.LeaderEpoch = off, ts, epoch
		}
	}
	return netio.Response{Msg: resp}
}

// listOffset answers one partition: the offset, the timestamp of its
// record (-1 when the request did not ask by timestamp or nothing matched)
// and the leader epoch of the offset (-1 when unknown).
func (b *Broker) listOffset(version int16, replicaID int32, topic string, pt *kmsg.ListOffsetsRequestTopicPartition) (int64, int64, int32, error) {
	current := int32(-1)
	if version >= 4 {
		current = pt.CurrentLeaderEpoch
	}
	p, err := b.partitionFor(topic, pt.Partition, current, replicaID != debugReplicaID)
	if err != nil {
		return 0, 0, 0, err
	}
	switch ts := pt.Timestamp; {
	case ts == latestTimestamp:
		if replicaID >= 0 {
			return p.EndOffset(), -1, p.LeaderEpoch(), nil
		}
		return p.HighWatermark(), -1, p.LeaderEpoch(), nil
	case ts == earliestTimestamp:
		start := p.StartOffset()
		return start, -1, epochAt(p, start), nil
	case ts < 0:
		return 0, 0, 0, fmt.Errorf("%w: timestamp %d", errInvalidRequest, ts)
	default:
		return findTimestamp(p, ts)
	}
}

// epochAt returns the leader epoch of the batch holding offset (read from
// its header), or, where there is none (an empty log), the current epoch if
// the log has begun it, else -1: what Kafka's epoch cache answers for the
// log start.
func epochAt(p *engine.Partition, offset int64) int32 {
	if c, err := p.ReadReplica(offset, 1); err == nil {
		e, ok := firstBatchEpoch(c)
		c.Release()
		if ok {
			return e
		}
	}
	e, _ := p.EndOffsetForEpoch(p.LeaderEpoch())
	return e
}

// firstBatchEpoch reads the partitionLeaderEpoch of the first batch of c.
func firstBatchEpoch(c engine.Chunk) (int32, bool) {
	var hdr [record.PosPartitionLeaderEpoch + 4]byte
	switch {
	case c.Bytes != nil && len(c.Bytes) >= len(hdr):
		copy(hdr[:], c.Bytes)
	case c.File != nil && c.Len >= int64(len(hdr)):
		if _, err := c.File.ReadAt(hdr[:], c.Pos); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(hdr[record.PosPartitionLeaderEpoch:])), true
}

// findTimestamp returns the first committed record at or after ts, its
// timestamp and its batch's leader epoch, or -1, -1, -1 when there is none.
// The engine finds the batch; the record is found by decoding that one
// batch.
func findTimestamp(p *engine.Partition, ts int64) (int64, int64, int32, error) {
	off, err := p.OffsetForTimestamp(ts)
	if err != nil {
		return 0, 0, 0, err
	}
	if off >= p.HighWatermark() {
		return -1, -1, -1, nil
	}
	c, err := p.ReadBatches(off, 1) // the first batch, whole
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Release()
	batch, _, err := record.Split(c.Bytes)
	if err != nil {
		return off, -1, -1, nil
	}
	epoch := int32(-1)
	if h, err := record.ParseHeader(batch); err == nil {
		epoch = h.PartitionLeaderEpoch
	}
	it := record.NewIterator(batch, 0)
	for it.Next() {
		if r := it.Record(); r.Offset >= off && r.Timestamp >= ts {
			return r.Offset, r.Timestamp, epoch, nil
		}
	}
	// The batch claims a timestamp its records do not have (or cannot be
	// decoded): answer with the batch as the engine found it.
	return off, -1, epoch, nil
}
