package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(10, 0, 3) } // FindCoordinator

// FindCoordinator answers FindCoordinator (v0–3): this broker coordinates
// every group, or in a cluster the broker Config.Locate names for the
// group's partition. Transaction coordinators are refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (no transactions), other key types
// with INVALID_REQUEST.
func (c *Coordinator) FindCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.Version = req.Version
	fail := func(code int16) *kmsg.FindCoordinatorResponse {
		resp.ErrorCode = code
		resp.NodeID, resp.Host, resp.Port = -1, "", -1
		if e := kerr.ErrorForCode(code); e != nil {
			msg := e.Error()
			resp.ErrorMessage = &msg
		}
		return resp
	}
	switch {
	case req.CoordinatorType == 1:
		return fail(kerr.TransactionalIDAuthorizationFailed.Code)
	case req.CoordinatorType != 0:
		return fail(kerr.InvalidRequest.Code)
	case c.isClosed():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	if c.cfg.Locate != nil {
		// A v4+ request (KIP-699) would carry several keys; v0-3 has one.
		node, host, port, err := c.cfg.Locate(ctx, PartitionFor(req.CoordinatorKey, c.n))
		if err != nil {
			c.log.Debug("group: no coordinator for group", "group", req.CoordinatorKey, "err", err)
			return fail(kerr.CoordinatorNotAvailable.Code)
		}
		resp.NodeID, resp.Host, resp.Port = node, host, port
		return resp
	}
	resp.NodeID = c.cfg.NodeID
	resp.Host, resp.Port = c.advertised(ctx)
	return resp
}

// advertised returns the address clients should use for this broker:
// Config.Host and Port where set, else what the broker put in the
// request's Conn (it knows its listeners; see WithConn).
func (c *Coordinator) advertised(ctx context.Context) (string, int32) {
	host, port := c.cfg.Host, c.cfg.Port
	conn := connFrom(ctx)
	if host == "" {
		host = conn.Host
	}
	if port == 0 {
		port = conn.Port
	}
	return host, port
}

func (c *Coordinator) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.closed
}
