package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/netio"
)

func init() { regClusterKey(37, 0, 3, (*Broker).handleCreatePartitions, smallBody) }

// handleCreatePartitions serves CreatePartitions v0–3 in a cluster: the
// controller places the new partitions (balanced with the topic's others,
// or as the request assigns them) and commits them; elsewhere the request
// is forwarded to it. validate_only checks against the node's copy of the
// metadata without committing. A single node does not serve it: its
// engine's topics keep the partition count they were created with.
func (b *Broker) handleCreatePartitions(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrCreatePartitionsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	ctx, cancel := requestTimeout(ctx, r.TimeoutMillis)
	defer cancel()
	var resp *kmsg.CreatePartitionsResponse
	if !b.node.IsController() {
		fr, err := b.node.Forward(ctx, r)
		if err == nil {
			var ok bool
			if resp, ok = fr.(*kmsg.CreatePartitionsResponse); !ok {
				err = fmt.Errorf("unexpected response %T", fr)
			}
		}
		if err != nil {
			resp = createPartitionsFailed(r, fmt.Errorf("%w: %v", errNoController, err))
		}
	} else {
		resp = kmsg.NewPtrCreatePartitionsResponse()
		count := make(map[string]int, len(r.Topics))
		for _, t := range r.Topics {
			count[t.Topic]++
		}
		for _, t := range r.Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic = t.Topic
			var err error
			if count[t.Topic] > 1 {
				err = fmt.Errorf("%w: topic %q is listed more than once", errInvalidRequest, t.Topic)
			} else {
				err = b.createPartitions(ctx, t, r.ValidateOnly)
			}
			if err != nil {
				rt.ErrorCode = errorCode(err)
				rt.ErrorMessage = errorMessage(err)
				b.rejected(req, "create partitions", err, "topic", t.Topic)
			} else if !r.ValidateOnly {
				b.log.Info("broker: added partitions", "topic", t.Topic, "count", t.Count)
				hctx, cancel := context.WithTimeout(ctx, hostedWait)
				b.waitHosted(hctx, t.Topic)
				cancel()
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	resp.SetVersion(req.APIVersion)
	return netio.Response{Msg: resp}
}

// createPartitions has the controller decide one topic of a
// CreatePartitions request.
func (b *Broker) createPartitions(ctx context.Context, t kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	var asg [][]int32
	if t.Assignment != nil {
		asg = make([][]int32, len(t.Assignment))
		for i, a := range t.Assignment {
			asg[i] = a.Replicas
		}
	}
	if validateOnly {
		var err error
		b.node.View(func(s *cluster.State) { _, err = b.node.Policy().CreatePartitions(s, t.Topic, t.Count, asg) })
		return err
	}
	return b.node.CreatePartitions(ctx, t.Topic, t.Count, asg)
}

// createPartitionsFailed answers every topic of r with err.
func createPartitionsFailed(r *kmsg.CreatePartitionsRequest, err error) *kmsg.CreatePartitionsResponse {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	for _, t := range r.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		rt.ErrorCode = errorCode(err)
		rt.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
