package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(12, 0, 4) } // Heartbeat

// Heartbeat answers Heartbeat (v0–4): it restarts the member's session
// timer. A group preparing a rebalance answers REBALANCE_IN_PROGRESS so the
// member rejoins.
func (c *Coordinator) Heartbeat(_ context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.Version = req.Version
	resp.ErrorCode = c.heartbeat(req)
	return resp
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g, code := c.lockGroup(req.Group, false, false)
	switch {
	case code != 0:
		return code
	case g == nil:
		return kerr.UnknownMemberID.Code
	}
	defer g.mu.Unlock()
	var instance *string
	if req.Version >= 3 {
		instance = req.InstanceID
	}
	if code := g.validateMemberLocked(req.MemberID, instance); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case stateCompletingRebalance, stateStable:
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		return 0
	case statePreparingRebalance:
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		return kerr.RebalanceInProgress.Code
	}
	return kerr.UnknownMemberID.Code
}
