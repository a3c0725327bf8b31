package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(42, 0, 2) } // DeleteGroups

// DeleteGroups answers DeleteGroups (v0–2): a group without members is
// deleted with its committed offsets, writing tombstones for them and its
// metadata, and answered once they are appended; one with members gets
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
	if g.state != stateEmpty {
		g.mu.Unlock()
		g.commitMu.Unlock()
		return kerr.NonEmptyGroup.Code
	}
	ch := make(chan int16, 1)
	code = g.deleteLocked(func(code int16) { ch <- code })
	g.mu.Unlock()
	g.commitMu.Unlock()
	if code != 0 {
		return code
	}
	return <-ch
}
