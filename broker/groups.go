package broker

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
)

// groupBody bounds JoinGroup and SyncGroup bodies: a member's protocol
// metadata may be up to group.DefaultMaxMetadataBytes, and a leader's
// SyncGroup carries the assignments of the whole group.
const groupBody = 4 << 20

// groupAPI adapts a group.Coordinator method (OffsetCommit, JoinGroup, ...)
// to a handler: it decodes the request, attaches the connection's client id
// and addresses, and returns the coordinator's response. Bodies are decoded
// without copying strings: the coordinator copies what it keeps, and the
// response is written before the body is reused.
func groupAPI[Req any, PReq interface {
	*Req
	kmsg.Request
}, Resp kmsg.Response](call func(*group.Coordinator, context.Context, PReq) Resp) func(*Broker, context.Context, *netio.Request) netio.Response {
	return func(b *Broker, ctx context.Context, req *netio.Request) netio.Response {
		r := PReq(new(Req))
		if err := decode(req, r, true); err != nil {
			return b.closeConn(req, err)
		}
		resp := call(b.groups, group.WithConn(ctx, b.groupConn(req)), r)
		b.countGroupErrors(req, resp)
		return netio.Response{Msg: resp}
	}
}

// groupConn describes req's connection for the coordinator: client id,
// client host as Kafka shows it ("/" and the IP), and the address this
// broker advertises to that client.
func (b *Broker) groupConn(req *netio.Request) group.Conn {
	var c group.Conn
	if req.ClientID != nil {
		c.ClientID = *req.ClientID
	}
	if req.Conn != nil && req.Conn.RemoteAddr != nil {
		host := req.Conn.RemoteAddr.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		c.ClientHost = "/" + host
	}
	c.Host, c.Port = b.advertised(req)
	return c
}

// Groups returns the broker's group coordinator, for what drives it from
// outside the request path: the binary checks its Err at start (New does not
// fail: if __consumer_offsets cannot be used, group requests get
// COORDINATOR_NOT_AVAILABLE and Err says why), and the cluster will load and
// unload __consumer_offsets partitions with it (LoadPartition,
// UnloadPartition). The broker owns it: Close closes it.
func (b *Broker) Groups() *group.Coordinator { return b.groups }
