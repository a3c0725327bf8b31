package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

// handleDeleteTopics serves DeleteTopics v0–4: each named topic is deleted
// with its data and committed offsets, synchronously. Unknown topics get
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
	}
	return netio.Response{Msg: resp}
}
