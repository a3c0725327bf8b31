package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(20, 0, 4, (*Broker).handleDeleteTopics, smallBody) }

// handleDeleteTopics serves DeleteTopics v0–4: each named topic is deleted
// with its data, synchronously, and then its committed offsets (the group
// coordinator writes tombstones for them and waits for them to be stored). Unknown topics get
// UNKNOWN_TOPIC_OR_PARTITION; internal topics INVALID_TOPIC_EXCEPTION. In a
// cluster the controller commits the deletion (deleteTopicsInCluster); each
// broker then removes its replicas and the committed offsets of the groups
// it coordinates (hosting.go).
func (b *Broker) handleDeleteTopics(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrDeleteTopicsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	if b.node != nil {
		ctx, cancel := requestTimeout(ctx, r.TimeoutMillis)
		defer cancel()
		resp := b.deleteTopicsInCluster(ctx, req, r)
		resp.SetVersion(req.APIVersion)
		return netio.Response{Msg: resp}
	}
	resp := kmsg.NewPtrDeleteTopicsResponse()
	resp.SetVersion(req.APIVersion)
	resp.Topics = make([]kmsg.DeleteTopicsResponseTopic, len(r.TopicNames))
	for i, name := range r.TopicNames {
		rt := &resp.Topics[i]
		*rt = kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = &r.TopicNames[i]
		if info, err := b.eng.Topic(name); err == nil && info.Internal {
			err = fmt.Errorf("%w: %q is internal", engine.ErrInvalidTopic, name)
			rt.ErrorCode = errorCode(err)
			b.rejected(req, "delete topic", err, "topic", name)
			continue
		}
		if err := b.eng.DeleteTopic(name); err != nil {
			rt.ErrorCode = errorCode(err)
			b.rejected(req, "delete topic", err, "topic", name)
			continue
		}
		b.log.Info("broker: deleted topic", "topic", name)
		// The topic is gone: its committed offsets go too (tombstones in
		// __consumer_offsets). The deletion stands if that fails; the
		// offsets then stay until their groups expire.
		if err := b.groups.DeleteTopicOffsets(name); err != nil {
			b.log.Warn("broker: cannot delete the committed offsets of a deleted topic", "topic", name, "err", err)
		}
	}
	return netio.Response{Msg: resp}
}

// deleteTopicsInCluster has the controller delete the request's topics:
// through the node on the controller broker, else forwarded to it.
func (b *Broker) deleteTopicsInCluster(ctx context.Context, req *netio.Request, r *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	if !b.node.IsController() {
		resp, err := b.node.Forward(ctx, r)
		if err == nil {
			if dr, ok := resp.(*kmsg.DeleteTopicsResponse); ok {
				return dr
			}
			err = fmt.Errorf("unexpected response %T", resp)
		}
		err = fmt.Errorf("%w: %v", errNoController, err)
		resp2 := kmsg.NewPtrDeleteTopicsResponse()
		for i := range r.TopicNames {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic = &r.TopicNames[i]
			rt.ErrorCode = errorCode(err)
			resp2.Topics = append(resp2.Topics, rt)
		}
		b.rejected(req, "delete topics", err)
		return resp2
	}
	resp := kmsg.NewPtrDeleteTopicsResponse()
	resp.Topics = make([]kmsg.DeleteTopicsResponseTopic, len(r.TopicNames))
	for i, name := range r.TopicNames {
		rt := &resp.Topics[i]
		*rt = kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = &r.TopicNames[i]
		var err error
		if name == engine.ConsumerOffsetsTopic {
			err = fmt.Errorf("%w: %q is internal", engine.ErrInvalidTopic, name)
		} else {
			err = b.node.DeleteTopic(ctx, name)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			b.rejected(req, "delete topic", err, "topic", name)
			continue
		}
		b.log.Info("broker: deleted topic", "topic", name)
	}
	return resp
}
