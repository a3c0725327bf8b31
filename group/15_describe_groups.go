package group

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(15, 0, 5) } // DescribeGroups

// DescribeGroups answers DescribeGroups (v0–5): each group's state,
// protocol type, and members; a stable group also shows the selected
// protocol and each member's metadata for it and assignment. Unknown groups
// are reported in state Dead without an error, as Kafka does before v6.
func (c *Coordinator) DescribeGroups(_ context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	resp.Version = req.Version
	resp.Groups = make([]kmsg.DescribeGroupsResponseGroup, len(req.Groups))
	for i, id := range req.Groups {
		rg := &resp.Groups[i]
		*rg = kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		rg.AuthorizedOperations = math.MinInt32
		if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = authorizedGroupOperations
		}
		g, code := c.lockGroup(id, false, false)
		switch {
		case code != 0:
			rg.ErrorCode = code
			continue
		case g == nil:
			rg.State = stateDead.String()
			continue
		}
		g.describeLocked(rg)
		g.mu.Unlock()
	}
	return resp
}

func (g *group) describeLocked(rg *kmsg.DescribeGroupsResponseGroup) {
	rg.State = g.state.String()
	rg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		rg.Protocol = g.protocol
	}
	rg.Members = make([]kmsg.DescribeGroupsResponseGroupMember, len(g.members))
	for i, m := range g.members {
		rm := &rg.Members[i]
		*rm = kmsg.NewDescribeGroupsResponseGroupMember()
		rm.MemberID = m.id
		rm.InstanceID = m.instance
		rm.ClientID = m.clientID
		rm.ClientHost = m.clientHost
		rm.ProtocolMetadata = []byte{}
		rm.MemberAssignment = []byte{}
		if stable {
			if md := m.metadataFor(g.protocol); md != nil {
				rm.ProtocolMetadata = md
			}
			if m.assignment != nil {
				rm.MemberAssignment = m.assignment
			}
		}
	}
}
