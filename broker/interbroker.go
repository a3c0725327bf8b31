package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/netio"
)

// The inter-broker APIs: brokers of a cluster send them to the controller
// broker, whose node decides them (controller.Node.ServeInterBroker). Only a
// broker in a cluster serves or advertises them: ControlledShutdown (7),
// AlterPartition (56), BrokerHeartbeat (63) and AllocateProducerIds (67), at
// the versions the node serves.
func init() {
	for _, a := range controller.InterBrokerAPIs() {
		regClusterKey(a.Key, a.Min, a.Max, (*Broker).handleInterBroker, smallBody)
	}
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
