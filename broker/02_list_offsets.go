package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

func init() { regKey(2, 1, 6, (*Broker).handleListOffsets, smallBody) }

// Special ListOffsets timestamps.
const (
	latestTimestamp   = -1 // the log end offset (high watermark)
	earliestTimestamp = -2 // the log start offset
)

// handleListOffsets serves ListOffsets v1–6: -1 is the end offset, -2 the
// start offset, and a timestamp the first record at or after it (with its
// timestamp), or offset -1 if there is none, as Kafka answers.
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
			off, ts, err := b.listOffset(req.APIVersion, t.Topic, pt)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				rp.Offset, rp.Timestamp, rp.LeaderEpoch = -1, -1, -1
				b.rejected(req, "list offsets", err, "topic", t.Topic, "partition", pt.Partition, "timestamp", pt.Timestamp)
				continue
			}
			rp.Offset, rp.Timestamp, rp.LeaderEpoch = off, ts, 0
		}
	}
	return netio.Response{Msg: resp}
}

// listOffset answers one partition: the offset and the timestamp of its
// record (-1 when the request did not ask by timestamp or nothing matched).
func (b *Broker) listOffset(version int16, topic string, pt *kmsg.ListOffsetsRequestTopicPartition) (int64, int64, error) {
	if version >= 4 && pt.CurrentLeaderEpoch > 0 {
		return 0, 0, errLeaderEpoch
	}
	p, err := b.eng.Partition(topic, pt.Partition)
	if err != nil {
		return 0, 0, err
	}
	switch ts := pt.Timestamp; {
	case ts == latestTimestamp:
		return p.EndOffset(), -1, nil
	case ts == earliestTimestamp:
		return p.StartOffset(), -1, nil
	case ts < 0:
		return 0, 0, fmt.Errorf("%w: timestamp %d", errInvalidRequest, ts)
	default:
		return findTimestamp(p, ts)
	}
}

// findTimestamp returns the first record at or after ts and its timestamp,
// or -1, -1 when there is none. The engine finds the batch; the record is
// found by decoding that one batch.
func findTimestamp(p *engine.Partition, ts int64) (int64, int64, error) {
	off, err := p.OffsetForTimestamp(ts)
	if err != nil {
		return 0, 0, err
	}
	if off >= p.EndOffset() {
		return -1, -1, nil
	}
	c, err := p.ReadBatches(off, 1) // the first batch, whole
	if err != nil {
		return 0, 0, err
	}
	defer c.Release()
	batch, _, err := record.Split(c.Bytes)
	if err != nil {
		return off, -1, nil
	}
	it := record.NewIterator(batch, 0)
	for it.Next() {
		if r := it.Record(); r.Offset >= off && r.Timestamp >= ts {
			return r.Offset, r.Timestamp, nil
		}
	}
	// The batch claims a timestamp its records do not have (or cannot be
	// decoded): answer with the batch as the engine found it.
	return off, -1, nil
}
