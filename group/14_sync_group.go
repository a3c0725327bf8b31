package group

import (
	"bytes"
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

// syncLocked handles one SyncGroup of a validated member. It returns the
// response now, or a channel that will carry it.
func (g *group) syncLocked(m *member, assignments []kmsg.SyncGroupRequestGroupAssignment) (syncResult, chan syncResult) {
	switch g.state {
	case stateEmpty:
		return syncResult{code: kerr.UnknownMemberID.Code}, nil
	case statePreparingRebalance:
		return syncResult{code: kerr.RebalanceInProgress.Code}, nil
	case stateStable:
		delete(g.pendingSync, m.id)
		if len(g.pendingSync) == 0 {
			stop(g.syncTimer)
			g.syncSeq++
		}
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		return syncResult{assignment: m.assignment, ptype: g.protocolType, protocol: g.protocol}, nil
	case stateCompletingRebalance:
	default:
		return syncResult{code: kerr.UnknownMemberID.Code}, nil
	}
	ch := make(chan syncResult, 1)
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.RebalanceInProgress.Code} // superseded
	}
	m.sync = ch
	delete(g.pendingSync, m.id)
	if len(g.pendingSync) == 0 {
		stop(g.syncTimer)
		g.syncSeq++
	}
	if m.id != g.leader {
		return syncResult{}, ch
	}
	assign := make(map[string][]byte, len(g.members))
	for i := range assignments {
		a := &assignments[i]
		if len(a.MemberAssignment) > g.c.cfg.MaxMetadataBytes {
			g.c.log.Debug("group: assignment too large", "group", g.id, "member", a.MemberID, "bytes", len(a.MemberAssignment))
			m.sync <- syncResult{code: kerr.MessageTooLarge.Code}
			m.sync = nil
			g.prepareRebalanceLocked()
			return syncResult{}, ch
		}
		if g.byID[a.MemberID] != nil {
			assign[g.byID[a.MemberID].id] = bytes.Clone(a.MemberAssignment)
		}
	}
	for _, x := range g.members {
		if assign[x.id] == nil {
			assign[x.id] = []byte{}
		}
	}
	// As in Kafka, the assignment is stored before any member gets it, so
	// that the group survives a broker restart as it was handed out.
	gen := g.generation
	if code := g.storeLocked(assign, func(code int16) { g.syncStored(gen, assign, code) }); code != 0 {
		g.propagateErrorLocked(code) // answers ch too
		g.prepareRebalanceLocked()
	}
	return syncResult{}, ch
}

// syncStored completes a leader's SyncGroup of generation gen once the
// group's metadata with assign is appended (code 0) or failed: members get
// their assignments, or the error and a new rebalance. A group that moved on
// meanwhile has answered them already.
func (g *group) syncStored(gen int32, assign map[string][]byte, code int16) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateCompletingRebalance || g.generation != gen {
		return
	}
	if code != 0 {
		g.c.log.Warn("group: cannot store the assignment; rebalancing", "group", g.id, "generation", gen, "code", code)
		g.propagateErrorLocked(code)
		g.prepareRebalanceLocked()
		return
	}
	g.setAssignmentLocked(assign)
}
