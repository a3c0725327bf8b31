package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(14, 0, 5) } // SyncGroup

// SyncGroup answers SyncGroup (v0–5). The leader's request carries every
// member's assignment; a follower's blocks until the leader's arrives (or
// the group rebalances again, or ctx ends). In a stable group it returns
// the member's current assignment at once.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	r := c.sync(ctx, req)
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.Version = req.Version
	resp.ErrorCode = r.code
	resp.MemberAssignment = r.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	if r.code == 0 {
		ptype, proto := r.ptype, r.protocol
		resp.ProtocolType = &ptype
		resp.Protocol = &proto
	}
	return resp
}

func (c *Coordinator) sync(ctx context.Context, req *kmsg.SyncGroupRequest) syncResult {
	if req.Group == "" {
		return syncResult{code: kerr.InvalidGroupID.Code}
	}
	g, code := c.lockGroup(req.Group, false, false)
	switch {
	case code != 0:
		return syncResult{code: code}
	case g == nil:
		return syncResult{code: kerr.UnknownMemberID.Code}
	}
	var instance *string
	if req.Version >= 3 {
		instance = req.InstanceID
	}
	code = g.validateMemberLocked(req.MemberID, instance)
	switch {
	case code != 0:
	case req.Generation != g.generation:
		code = kerr.IllegalGeneration.Code
	case req.Version >= 5 && req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Version >= 5 && req.Protocol != nil && *req.Protocol != g.protocol:
		code = kerr.InconsistentGroupProtocol.Code
	}
	if code != 0 {
		g.mu.Unlock()
		return syncResult{code: code}
	}
	r, ch := g.syncLocked(g.byID[req.MemberID], req.GroupAssignment)
	g.mu.Unlock()
	if ch == nil {
		return r
	}
	select {
	case r = <-ch:
		return r
	case <-ctx.Done():
		return syncResult{code: kerr.RebalanceInProgress.Code}
	case <-c.done:
		return syncResult{code: kerr.NotCoordinator.Code}
	}
}
