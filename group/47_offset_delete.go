package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

func init() { regKey(47, 0, 0) } // OffsetDelete

// OffsetDelete answers OffsetDelete (v0–0) as Kafka's GroupCoordinator does:
// the committed offsets of the listed partitions are deleted, tombstones
// appended, and the request answered once they are. An empty group loses
// any of them; a consumer group with members keeps those of the topics its
// members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC on each such partition;
// when a member's subscription does not decode, every topic counts as
// subscribed) and loses the others; a group with members of another
// protocol type is NON_EMPTY_GROUP. An unknown group is GROUP_ID_NOT_FOUND,
// an empty id INVALID_GROUP_ID. Partitions without a committed offset are
// answered without error, as in Kafka.
func (c *Coordinator) OffsetDelete(_ context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	resp.Version = req.Version
	codes, code := c.deleteOffsets(req)
	resp.ErrorCode = code
	if code != 0 {
		return resp
	}
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// deleteOffsets deletes what it may of the request's offsets and returns
// each partition's code, or the group-level code.
func (c *Coordinator) deleteOffsets(req *kmsg.OffsetDeleteRequest) ([][]int16, int16) {
	if req.Group == "" {
		return nil, kerr.InvalidGroupID.Code
	}
	g, code := c.lockGroup(req.Group, false, true)
	switch {
	case code != 0:
		return nil, code
	case g == nil:
		return nil, kerr.GroupIDNotFound.Code
	}
	defer g.commitMu.Unlock()
	var subscribed func(topic string) bool
	switch {
	case g.state == stateEmpty:
		subscribed = func(string) bool { return false }
	case g.protocolType == "consumer":
		subscribed = g.subscribedLocked()
	default:
		g.mu.Unlock()
		return nil, kerr.NonEmptyGroup.Code
	}
	codes := make([][]int16, len(req.Topics))
	var (
		tps  []engine.TopicPartition
		recs []record.Record
	)
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
		sub := subscribed(t.Topic)
		for j, p := range t.Partitions {
			if sub {
				codes[i][j] = kerr.GroupSubscribedToTopic.Code
				continue
			}
			tp := engine.TopicPartition{Topic: t.Topic, Partition: p.Partition}
			if _, ok := g.offsets[tp]; ok {
				tps = append(tps, tp)
				recs = append(recs, record.Record{Key: appendOffsetKey(nil, g.id, tp.Topic, tp.Partition)})
			}
		}
	}
	g.mu.Unlock()
	if len(recs) == 0 {
		return codes, 0
	}
	ch := make(chan error, 1)
	if err := g.w.submit(newWrite(recs, func(err error) { ch <- err })); err != nil {
		return nil, storeErrorCode(err, 0)
	}
	if err := <-ch; err != nil {
		return nil, storeErrorCode(err, kerr.UnknownServerError.Code)
	}
	g.mu.Lock()
	for _, tp := range tps {
		delete(g.offsets, tp)
	}
	g.mu.Unlock()
	return codes, 0
}

// subscribedLocked returns whether the group's members subscribe to a
// topic, by the consumer protocol metadata of the selected protocol (or of
// each member's first while none is selected). A subscription that does
// not decode makes every topic count as subscribed, as in Kafka. g.mu is
// held.
func (g *group) subscribedLocked() func(topic string) bool {
	topics := map[string]bool{}
	for _, m := range g.members {
		var meta []byte
		for i, p := range m.protocols {
			if p.name == g.protocol || g.protocol == "" && i == 0 {
				meta = p.metadata
			}
		}
		var s kmsg.ConsumerMemberMetadata
		if err := s.ReadFrom(meta); err != nil {
			return func(string) bool { return true }
		}
		for _, t := range s.Topics {
			topics[t] = true
		}
	}
	return func(topic string) bool { return topics[topic] }
}
