package group

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { regKey(11, 0, 7) } // JoinGroup

// JoinGroup answers JoinGroup (v0–7). It blocks until the group's join
// phase completes (every known member rejoined, or the rebalance timeout
// passed), the member is removed, or ctx ends. The leader's response lists
// every member with its metadata for the selected protocol.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	r := c.join(ctx, req)
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = req.Version
	resp.ErrorCode = r.code
	resp.MemberID = r.memberID
	resp.Generation = r.generation
	resp.LeaderID = r.leader
	if r.code == 0 {
		ptype, proto := r.ptype, r.protocol
		resp.ProtocolType = &ptype
		resp.Protocol = &proto
		resp.Members = r.members
	}
	return resp
}

func (c *Coordinator) join(ctx context.Context, req *kmsg.JoinGroupRequest) joinResult {
	if req.Group == "" {
		return joinError(kerr.InvalidGroupID.Code, req.MemberID)
	}
	session := millis(req.SessionTimeoutMillis)
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		return joinError(kerr.InvalidSessionTimeout.Code, req.MemberID)
	}
	rebalance := millis(req.RebalanceTimeoutMillis)
	if req.Version == 0 || req.RebalanceTimeoutMillis < 0 {
		rebalance = session // v0 has no rebalance timeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return joinError(kerr.InconsistentGroupProtocol.Code, req.MemberID)
	}
	total := 0
	for i := range req.Protocols {
		total += len(req.Protocols[i].Metadata)
	}
	if total > c.cfg.MaxMetadataBytes {
		c.log.Debug("group: join metadata too large", "group", req.Group, "bytes", total)
		return joinError(kerr.MessageTooLarge.Code, req.MemberID)
	}
	conn := connFrom(ctx)
	p := joinParams{
		memberID:         req.MemberID,
		clientID:         conn.ClientID,
		clientHost:       conn.ClientHost,
		sessionTimeout:   session,
		rebalanceTimeout: rebalance,
		protocolType:     strings.Clone(req.ProtocolType),
		protocols:        cloneProtocols(req.Protocols),
		requireKnownID:   req.Version >= 4 && (req.Version < 5 || req.InstanceID == nil),
	}
	if req.Version >= 5 && req.InstanceID != nil {
		inst := strings.Clone(*req.InstanceID)
		p.instance = &inst
	}

	g, code := c.lockGroup(req.Group, req.MemberID == "", false)
	switch {
	case code != 0:
		return joinError(code, req.MemberID)
	case g == nil:
		return joinError(kerr.UnknownMemberID.Code, req.MemberID)
	}
	r, ch := g.joinLocked(&p)
	g.mu.Unlock()
	if ch == nil {
		return r
	}
	select {
	case r = <-ch:
		return r
	case <-ctx.Done():
		// The member stays in the rebalance, as in Kafka, where the response
		// would be lost with the connection.
		return joinError(kerr.RebalanceInProgress.Code, req.MemberID)
	case <-c.done:
		return joinError(kerr.NotCoordinator.Code, req.MemberID)
	}
}

// cloneProtocols copies a request's protocols (which may alias the request
// buffer), dropping repeated names.
func cloneProtocols(in []kmsg.JoinGroupRequestProtocol) []protocol {
	out := make([]protocol, 0, len(in))
	size := 0
	for i := range in {
		size += len(in[i].Metadata)
	}
	buf := make([]byte, 0, size) // one allocation for all metadata
	var seen map[string]bool     // for long lists; short ones are searched
	if len(in) > 16 {
		seen = make(map[string]bool, len(in))
	}
next:
	for i := range in {
		if seen != nil {
			if seen[in[i].Name] {
				continue
			}
			seen[in[i].Name] = true
		} else {
			for _, p := range out {
				if p.name == in[i].Name {
					continue next
				}
			}
		}
		start := len(buf)
		buf = append(buf, in[i].Metadata...)
		out = append(out, protocol{name: strings.Clone(in[i].Name), metadata: buf[start:len(buf):len(buf)]})
	}
	return out
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }
