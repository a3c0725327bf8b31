package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(13, 0, 4) } // LeaveGroup

// LeaveGroup answers LeaveGroup (v0–4): each member named leaves the group
// at once, which rebalances it. From v3 a request names a batch of members,
// each by member id or, with an empty member id, by group.instance.id (an
// administrator removing a static member).
func (c *Coordinator) LeaveGroup(_ context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := kmsg.NewPtrLeaveGroupResponse()
	resp.Version = req.Version
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	codes := make([]int16, len(leaving))
	resp.ErrorCode = c.leave(req.Group, leaving, codes)
	if req.Version < 3 {
		if resp.ErrorCode == 0 {
			resp.ErrorCode = codes[0]
		}
		return resp
	}
	if resp.ErrorCode != 0 {
		return resp
	}
	resp.Members = make([]kmsg.LeaveGroupResponseMember, len(leaving))
	for i := range leaving {
		resp.Members[i] = kmsg.LeaveGroupResponseMember{
			MemberID:   leaving[i].MemberID,
			InstanceID: leaving[i].InstanceID,
			ErrorCode:  codes[i],
		}
	}
	return resp
}

// leave removes members, setting each one's code; it returns a code for
// the whole request.
func (c *Coordinator) leave(groupID string, leaving []kmsg.LeaveGroupRequestMember, codes []int16) int16 {
	if groupID == "" {
		return kerr.InvalidGroupID.Code
	}
	g, code := c.lockGroup(groupID, false, false)
	switch {
	case code != 0:
		return code
	case g == nil:
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
		return 0
	}
	defer g.mu.Unlock()
	for i := range leaving {
		l := &leaving[i]
		switch {
		case l.MemberID == "":
			var m *member
			if l.InstanceID != nil {
				m = g.static[*l.InstanceID]
			}
			if m == nil {
				codes[i] = kerr.UnknownMemberID.Code
				continue
			}
			g.removeMemberLocked(m, "static member removed by LeaveGroup")
		case g.pending[l.MemberID] != nil:
			stop(g.pending[l.MemberID].timer)
			delete(g.pending, l.MemberID)
			g.tryCompleteJoinLocked()
		default:
			if codes[i] = g.validateMemberLocked(l.MemberID, l.InstanceID); codes[i] == 0 {
				g.removeMemberLocked(g.byID[l.MemberID], "member left")
			}
		}
	}
	return 0
}
