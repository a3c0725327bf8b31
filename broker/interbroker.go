package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

// The inter-broker APIs: brokers of a cluster send them to the controller
// broker, whose node decides them (controller.Node.ServeInterBroker). Only a
// broker in a cluster serves or advertises them.
func init() {
	regClusterKey(7, 3, 3, (*Broker).handleInterBroker, smallBody)  // ControlledShutdown (with the broker epoch)
	regClusterKey(56, 2, 3, (*Broker).handleInterBroker, smallBody) // AlterPartition (topic ids)
	regClusterKey(63, 0, 1, (*Broker).handleInterBroker, smallBody) // BrokerHeartbeat
	regClusterKey(67, 0, 0, (*Broker).handleInterBroker, smallBody) // AllocateProducerIds
}

// handleInterBroker decodes an inter-broker request and has the node answer
// it.
func (b *Broker) handleInterBroker(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.RequestForKey(req.APIKey)
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp, ok := b.node.ServeInterBroker(ctx, r)
	if !ok {
		return b.closeConn(req, errUnknownAPI)
	}
	resp.SetVersion(req.APIVersion)
	return netio.Response{Msg: resp}
}
