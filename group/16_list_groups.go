package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(16, 0, 4) } // ListGroups

// ListGroups answers ListGroups (v0–4): every group of the partitions loaded
// here, sorted by id, with its protocol type and (v4+) state; v4's states
// filter matches state names case-insensitively. While a partition loads the
// answer is COORDINATOR_LOAD_IN_PROGRESS, as in Kafka.
func (c *Coordinator) ListGroups(_ context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := kmsg.NewPtrListGroupsResponse()
	resp.Version = req.Version
	groups, code := c.snapshot()
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	var filter []string
	if req.Version >= 4 {
		filter = req.StatesFilter
	}
	resp.Groups = make([]kmsg.ListGroupsResponseGroup, 0, len(groups))
	for _, g := range groups {
		g.mu.Lock()
		st, ptype := g.state, g.protocolType
		g.mu.Unlock()
		if st == stateDead {
			continue
		}
		if len(filter) > 0 && !slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, st.String()) }) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = g.id
		lg.ProtocolType = ptype
		if req.Version >= 4 {
			lg.GroupState = st.String()
		}
		resp.Groups = append(resp.Groups, lg)
	}
	slices.SortFunc(resp.Groups, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	return resp
}
