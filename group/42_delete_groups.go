package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups answers DeleteGroups (v0–2): a group without members is
// deleted with its committed offsets; one with members gets
// NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.
func (c *Coordinator) DeleteGroups(_ context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	resp.Version = req.Version
	resp.Groups = make([]kmsg.DeleteGroupsResponseGroup, len(req.Groups))
	for i, id := range req.Groups {
		resp.Groups[i] = kmsg.NewDeleteGroupsResponseGroup()
		resp.Groups[i].Group = id
		resp.Groups[i].ErrorCode = c.deleteGroup(id)
	}
	return resp
}

func (c *Coordinator) deleteGroup(id string) int16 {
	if id == "" {
		return kerr.InvalidGroupID.Code
	}
	g, code := c.lockGroup(id, false, true)
	switch {
	case code != 0:
		return code
	case g == nil:
		return kerr.GroupIDNotFound.Code
	}
	defer g.commitMu.Unlock()
	defer g.mu.Unlock()
	if g.state != stateEmpty {
		return kerr.NonEmptyGroup.Code
	}
	if g.hasOffsets {
		if err := c.eng.DeleteGroupOffsets(g.id); err != nil {
			c.log.Warn("group: cannot delete offsets", "group", g.id, "err", err)
			return storeErrorCode(err)
		}
	}
	c.removeGroupLocked(g)
	return 0
}
