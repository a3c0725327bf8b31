package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(60, 0, 1, (*Broker).handleDescribeCluster, smallBody) }

// handleDescribeCluster serves DescribeCluster v0–1 (KIP-700): the cluster
// id, the controller and the live brokers, as Metadata names them. Only
// broker endpoints are described (endpoint type 1); asking for the
// controllers' (2, KIP-919) gets UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker
// answers: Easel's controllers are its brokers.
func (b *Broker) handleDescribeCluster(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrDescribeClusterRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.SetVersion(req.APIVersion)
	resp.EndpointType = 1
	if req.APIVersion >= 1 && r.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := kerr.UnsupportedEndpointType.Description
		resp.ErrorMessage = &msg
		resp.EndpointType = r.EndpointType
		return netio.Response{Msg: resp}
	}
	if r.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = allClusterOperations
	}
	if b.node == nil {
		host, port := b.advertised(req)
		resp.ClusterID = b.clusterID
		resp.ControllerID = b.cfg.NodeID
		resp.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: b.cfg.NodeID, Host: host, Port: port}}
		return netio.Response{Msg: resp}
	}
	resp.ControllerID = b.node.Controller()
	b.node.View(func(s *cluster.State) {
		resp.ClusterID = s.ClusterID()
		for _, br := range s.LiveBrokers() {
			db := kmsg.DescribeClusterResponseBroker{NodeID: br.ID, Host: br.Host, Port: br.Port}
			if br.Rack != "" {
				db.Rack = &br.Rack
			}
			resp.Brokers = append(resp.Brokers, db)
		}
	})
	return netio.Response{Msg: resp}
}

// allClusterOperations is the cluster_authorized_operations bit field when
// everything is allowed (no ACLs): the operations Kafka defines on the
// cluster resource, CREATE(5), ALTER(7), DESCRIBE(8), CLUSTER_ACTION(9),
// DESCRIBE_CONFIGS(10), ALTER_CONFIGS(11) and IDEMPOTENT_WRITE(12).
const allClusterOperations = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12
