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
// UNKNOWN_TOPIC_OR_PARTITION; internal topics INVALID_TOPIC_EXCEPTION.
func (b *Broker) handleDeleteTopics(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrDeleteTopicsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
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
