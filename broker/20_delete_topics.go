package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

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
		if err := b.eng.DeleteTopic(name); err != nil {
			rt.ErrorCode = errorCode(err)
			b.rejected(req, "delete topic", err, "topic", name)
			continue
		}
		b.log.Info("broker: deleted topic", "topic", name)
	}
	return netio.Response{Msg: resp}
}
