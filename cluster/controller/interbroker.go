package controller

import (
	"context"
	"errors"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// APIVersion is a Kafka API key and the versions of it served.
type APIVersion struct {
	Key, Min, Max int16
}

// InterBrokerAPIs lists the API keys and versions ServeInterBroker serves,
// for the broker's ApiVersions: ControlledShutdown v2-3 (with the broker
// epoch), AlterPartition v2-3 (topic ids; v3's ISR broker epochs are read
// for the ids only), BrokerHeartbeat v0-2 (CurrentMetadataOffset is the
// applied raft index) and AllocateProducerIDs v0.
func InterBrokerAPIs() []APIVersion {
	return []APIVersion{
		{Key: 7, Min: 2, Max: 3},
		{Key: 56, Min: 2, Max: 3},
		{Key: 63, Min: 0, Max: 2},
		{Key: 67, Min: 0, Max: 0},
	}
}

func servesVersion(key, version int16) bool {
	for _, a := range InterBrokerAPIs() {
		if a.Key == key {
			return version >= a.Min && version <= a.Max
		}
	}
	return false
}

// errorCode maps a controller error to its Kafka code: NOT_CONTROLLER for
// ErrNotController (and for a closed node: the caller should find the new
// controller), REQUEST_TIMED_OUT for an ended context, cluster.KafkaError's
// table for the rest.
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotController), errors.Is(err, ErrClosed):
		return kerr.NotController.Code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return cluster.ErrorCode(err)
}

// ServeInterBroker answers the inter-broker requests the broker hands it
// (see InterBrokerAPIs): NOT_CONTROLLER when this node does not lead, other
// errors through cluster.KafkaError. ok is false for any other key or an
// unserved version.
func (n *Node) ServeInterBroker(ctx context.Context, req kmsg.Request) (resp kmsg.Response, ok bool) {
	if !servesVersion(req.Key(), req.GetVersion()) {
		return nil, false
	}
	switch r := req.(type) {
	case *kmsg.ControlledShutdownRequest:
		out := r.ResponseKind().(*kmsg.ControlledShutdownResponse)
		out.ErrorCode = errorCode(n.ControlledShutdown(ctx, r.BrokerID, r.BrokerEpoch))
		return out, true
	case *kmsg.AlterPartitionRequest:
		return n.serveAlterPartition(ctx, r), true
	case *kmsg.BrokerHeartbeatRequest:
		out := r.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
		if r.CurrentMetadataOffset < 0 {
			out.ErrorCode = kerr.InvalidRequest.Code
			return out, true
		}
		fenced, err := n.BrokerHeartbeat(ctx, r.BrokerID, r.BrokerEpoch, uint64(r.CurrentMetadataOffset))
		out.ErrorCode = errorCode(err)
		out.IsFenced = fenced
		out.IsCaughtUp = err == nil && !fenced
		return out, true
	case *kmsg.AllocateProducerIDsRequest:
		out := r.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
		start, size, err := n.AllocateProducerIDs(ctx, r.BrokerID, r.BrokerEpoch)
		if err == nil && size > 1<<31-1 {
			err = errors.New("controller: producer id block larger than the response can say")
		}
		out.ErrorCode = errorCode(err)
		if err == nil {
			out.ProducerIDStart, out.ProducerIDLen = start, int32(size)
		}
		return out, true
	}
	return nil, false
}

// serveAlterPartition decides each partition of the request as its own
// entry. A stale broker epoch or a non-controller is the whole request's
// error, as in Kafka.
func (n *Node) serveAlterPartition(ctx context.Context, r *kmsg.AlterPartitionRequest) *kmsg.AlterPartitionResponse {
	out := r.ResponseKind().(*kmsg.AlterPartitionResponse)
	if !n.IsController() {
		out.ErrorCode = kerr.NotController.Code
		return out
	}
	for _, t := range r.Topics {
		rt := kmsg.NewAlterPartitionResponseTopic()
		rt.TopidID = t.TopicID
		for _, p := range t.Partitions {
			isr := p.NewISR
			if r.Version >= 3 {
				isr = make([]int32, len(p.NewEpochISR))
				for i, e := range p.NewEpochISR {
					isr[i] = e.BrokerID
				}
			}
			got, err := n.AlterPartition(ctx, cluster.AlterPartitionRequest{
				Broker: r.BrokerID, BrokerEpoch: r.BrokerEpoch, Topic: engine.TopicID(t.TopicID), Partition: p.Partition,
				LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: isr,
			})
			if errors.Is(err, ErrNotController) || errors.Is(err, cluster.ErrStaleBrokerEpoch) {
				out.ErrorCode = errorCode(err)
				out.Topics = nil
				return out
			}
			rp := kmsg.NewAlterPartitionResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = errorCode(err)
			if err == nil {
				rp.LeaderID, rp.LeaderEpoch, rp.ISR, rp.PartitionEpoch = got.Leader, got.LeaderEpoch, got.ISR, got.PartitionEpoch
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out.Topics = append(out.Topics, rt)
	}
	return out
}

// respNotController reports whether a controller's response says it is not
// the controller (the request is to be sent again to the new one).
func respNotController(resp kmsg.Response) bool {
	nc := kerr.NotController.Code
	switch r := resp.(type) {
	case *kmsg.ControlledShutdownResponse:
		return r.ErrorCode == nc
	case *kmsg.AlterPartitionResponse:
		return r.ErrorCode == nc
	case *kmsg.BrokerHeartbeatResponse:
		return r.ErrorCode == nc
	case *kmsg.AllocateProducerIDsResponse:
		return r.ErrorCode == nc
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	}
	return false
}
