package group

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// OffsetFetch answers OffsetFetch (v1–7) with the group's committed
// offsets: offset -1 (and leader epoch -1, empty metadata) for partitions
// without a commit; from v2, null topics ask for every committed offset of
// the group. RequireStable (v7) needs nothing: there are no transactions.
func (c *Coordinator) OffsetFetch(_ context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.Version = req.Version
	if c.isClosed() {
		resp.ErrorCode = kerr.NotCoordinator.Code
		if req.Version < 2 {
			c.fetchRequested(req, resp, kerr.NotCoordinator.Code)
		}
		return resp
	}
	if req.Topics == nil && req.Version >= 2 {
		c.fetchAll(req.Group, resp)
		return resp
	}
	c.fetchRequested(req, resp, 0)
	return resp
}

// fetchRequested answers the partitions the request names, all with code if
// it is not 0.
func (c *Coordinator) fetchRequested(req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse, code int16) {
	resp.Topics = make([]kmsg.OffsetFetchResponseTopic, len(req.Topics))
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetFetchResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition = p
			rp.Offset = -1
			rp.LeaderEpoch = -1
			if code != 0 {
				rp.ErrorCode = code
				continue
			}
			o, err := c.eng.FetchOffset(req.Group, t.Topic, p)
			switch {
			case err == nil:
				rp.Offset, rp.LeaderEpoch = o.Offset, o.LeaderEpoch
				md := o.Metadata
				rp.Metadata = &md
			case errors.Is(err, engine.ErrUnknownGroupOffset):
				empty := ""
				rp.Metadata = &empty
			default:
				rp.ErrorCode = storeErrorCode(err)
				if req.Version >= 2 {
					resp.ErrorCode = rp.ErrorCode
				}
			}
		}
	}
}

// fetchAll answers every committed offset of a group, sorted by topic and
// partition.
func (c *Coordinator) fetchAll(groupID string, resp *kmsg.OffsetFetchResponse) {
	all := c.eng.GroupOffsets(groupID)
	tps := make([]engine.TopicPartition, 0, len(all))
	for tp := range all {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b engine.TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	for _, tp := range tps {
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != tp.Topic {
			resp.Topics = append(resp.Topics, kmsg.OffsetFetchResponseTopic{Topic: tp.Topic})
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		o := all[tp]
		md := o.Metadata
		rt.Partitions = append(rt.Partitions, kmsg.OffsetFetchResponseTopicPartition{
			Partition:   tp.Partition,
			Offset:      o.Offset,
			LeaderEpoch: o.LeaderEpoch,
			Metadata:    &md,
		})
	}
}
