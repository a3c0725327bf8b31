package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

func init() { regKey(9, 1, 7) } // OffsetFetch

// OffsetFetch answers OffsetFetch (v1–7) with the group's committed
// offsets: offset -1 (and leader epoch -1, empty metadata) for partitions
// without a commit; from v2, null topics ask for every committed offset of
// the group. A group whose partition is loading gets
// COORDINATOR_LOAD_IN_PROGRESS, one not loaded here NOT_COORDINATOR.
// RequireStable (v7) needs nothing: there are no transactions.
func (c *Coordinator) OffsetFetch(_ context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.Version = req.Version
	g, code := c.lockGroup(req.Group, false, false)
	if code != 0 {
		resp.ErrorCode = code
		if req.Version < 2 {
			fetchRequested(nil, req, resp, code)
		}
		return resp
	}
	if g != nil {
		defer g.mu.Unlock()
	}
	if req.Topics == nil && req.Version >= 2 {
		if g != nil {
			g.fetchAllLocked(resp)
		}
		return resp
	}
	fetchRequested(g, req, resp, 0)
	return resp
}

// fetchRequested answers the partitions the request names from g's offsets
// (g may be nil: no offsets), all with code if it is not 0. g.mu is held.
func fetchRequested(g *group, req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse, code int16) {
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
			md := ""
			if g != nil {
				if o, ok := g.offsets[engine.TopicPartition{Topic: t.Topic, Partition: p}]; ok {
					rp.Offset, rp.LeaderEpoch, md = o.offset, o.epoch, o.metadata
				}
			}
			rp.Metadata = &md
		}
	}
}

// fetchAllLocked answers every committed offset of the group, sorted by
// topic and partition.
func (g *group) fetchAllLocked(resp *kmsg.OffsetFetchResponse) {
	for _, tp := range g.sortedOffsetsLocked() {
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != tp.Topic {
			resp.Topics = append(resp.Topics, kmsg.OffsetFetchResponseTopic{Topic: tp.Topic})
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		o := g.offsets[tp]
		md := o.metadata
		rt.Partitions = append(rt.Partitions, kmsg.OffsetFetchResponseTopicPartition{
			Partition:   tp.Partition,
			Offset:      o.offset,
			LeaderEpoch: o.epoch,
			Metadata:    &md,
		})
	}
}
