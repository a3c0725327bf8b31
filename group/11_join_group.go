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

// joinLocked handles one JoinGroup. It returns the response now, or a
// channel that will carry it.
func (g *group) joinLocked(p *joinParams) (joinResult, chan joinResult) {
	c := g.c
	if !g.acceptLocked(p.memberID) {
		if m := g.byID[p.memberID]; m != nil {
			g.removeLocked(m)
			g.tryCompleteJoinLocked()
		}
		return joinError(kerr.GroupMaxSizeReached.Code, ""), nil
	}
	if !g.supportsLocked(p.protocolType, p.protocols) {
		return joinError(kerr.InconsistentGroupProtocol.Code, p.memberID), nil
	}
	ch := make(chan joinResult, 1)
	if p.memberID == "" {
		if p.instance != nil {
			id := newMemberID(*p.instance)
			if old := g.static[*p.instance]; old != nil {
				if r, now := g.replaceStaticLocked(old, id, p, ch); now {
					return r, nil
				}
				return joinResult{}, ch
			}
			g.addMemberLocked(id, p, ch)
			return joinResult{}, ch
		}
		id := newMemberID(p.clientID)
		if p.requireKnownID {
			pm := &pendingMember{id: id}
			g.pending[id] = pm
			pm.timer = c.after(p.sessionTimeout, func() { g.expirePending(id, pm) })
			return joinError(kerr.MemberIDRequired.Code, id), nil
		}
		g.addMemberLocked(id, p, ch)
		return joinResult{}, ch
	}

	if pm := g.pending[p.memberID]; pm != nil {
		if p.instance != nil {
			// Kafka never hands a static member a pending id.
			return joinError(kerr.InvalidRequest.Code, p.memberID), nil
		}
		g.addMemberLocked(pm.id, p, ch)
		return joinResult{}, ch
	}
	if p.instance != nil {
		if s := g.static[*p.instance]; s != nil && s.id != p.memberID {
			return joinError(kerr.FencedInstanceID.Code, p.memberID), nil
		}
	}
	m := g.byID[p.memberID]
	if m == nil || (p.instance != nil && g.static[*p.instance] == nil) {
		return joinError(kerr.UnknownMemberID.Code, p.memberID), nil
	}
	m.clientID, m.clientHost = p.clientID, p.clientHost
	switch g.state {
	case statePreparingRebalance:
		g.updateLocked(m, p, ch)
		g.tryCompleteJoinLocked()
		return joinResult{}, ch
	case stateCompletingRebalance:
		if m.matches(p.protocols) {
			// A retry of a join whose response was lost.
			r := g.currentJoinResultLocked(m.id, g.leader)
			if m.id == g.leader {
				r.members = g.memberListLocked()
			}
			return r, nil
		}
		g.updateLocked(m, p, ch)
		g.maybePrepareRebalanceLocked("member changed its metadata")
		return joinResult{}, ch
	case stateStable:
		if m.id != g.leader && m.matches(p.protocols) {
			return g.currentJoinResultLocked(m.id, g.leader), nil
		}
		// The leader rejoining forces a rebalance (its view of topics may
		// have changed), as does a member with new metadata.
		g.updateLocked(m, p, ch)
		g.maybePrepareRebalanceLocked("leader rejoined or member changed its metadata")
		return joinResult{}, ch
	}
	return joinError(kerr.UnknownMemberID.Code, p.memberID), nil
}

// acceptLocked is Kafka's acceptJoiningMember (group.max.size).
func (g *group) acceptLocked(memberID string) bool {
	maxSize := g.c.cfg.MaxGroupSize
	if maxSize <= 0 {
		return true
	}
	m := g.byID[memberID]
	switch g.state {
	case statePreparingRebalance:
		return m != nil && m.join != nil || g.awaitingJoin < maxSize
	case stateCompletingRebalance, stateStable:
		return m != nil || len(g.members) < maxSize
	}
	return true
}

func (g *group) addMemberLocked(id string, p *joinParams, ch chan joinResult) {
	m := &member{
		id:               id,
		instance:         p.instance,
		clientID:         p.clientID,
		clientHost:       p.clientHost,
		sessionTimeout:   p.sessionTimeout,
		rebalanceTimeout: p.rebalanceTimeout,
		protocolType:     p.protocolType,
		protocols:        p.protocols,
		isNew:            true,
	}
	if g.state == statePreparingRebalance && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.addLocked(m, ch)
	// A new member cannot heartbeat before its join completes; drop it if
	// the join never does.
	g.scheduleHeartbeatLocked(m, newMemberJoinTimeout)
	g.maybePrepareRebalanceLocked("new member joined")
	g.tryCompleteJoinLocked()
}

// replaceStaticLocked gives a known group.instance.id a new member id (a
// static member restarted). In a stable group whose protocol would not
// change it answers at once, without a rebalance; the old member id is
// fenced.
func (g *group) replaceStaticLocked(m *member, newID string, p *joinParams, ch chan joinResult) (joinResult, bool) {
	oldLeader := g.leader
	if m.join != nil {
		m.join <- joinError(kerr.FencedInstanceID.Code, m.id)
		m.join = nil
		g.awaitingJoin--
	}
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.FencedInstanceID.Code}
		m.sync = nil
	}
	delete(g.byID, m.id)
	if g.pendingSync[m.id] {
		delete(g.pendingSync, m.id)
		g.pendingSync[newID] = true
	}
	if g.leader == m.id {
		g.leader = newID
	}
	m.id = newID
	g.byID[newID] = m
	m.clientID, m.clientHost = p.clientID, p.clientHost
	g.scheduleHeartbeatLocked(m, p.sessionTimeout)
	g.updateLocked(m, p, ch)
	switch g.state {
	case stateStable:
		if g.selectProtocolLocked() == g.protocol {
			m.join = nil
			g.awaitingJoin--
			// The old leader id is returned so that a restarted leader does
			// not compute an assignment a stable group would not hand out.
			r := g.currentJoinResultLocked(newID, oldLeader)
			// As Kafka does, the new member id is stored before the member
			// hears of it: a broker restart must not bring back the old id,
			// which would fence the restarted member.
			code := g.storeLocked(nil, func(code int16) {
				if code != 0 {
					r = joinError(code, newID)
				}
				ch <- r
			})
			if code != 0 {
				return joinError(code, newID), true
			}
			return joinResult{}, false
		}
		g.maybePrepareRebalanceLocked("static member changed the group's protocol")
	case stateCompletingRebalance:
		// The leader may be assigning to the old member id.
		g.prepareRebalanceLocked()
	case statePreparingRebalance:
		g.tryCompleteJoinLocked()
	}
	return joinResult{}, false
}

func (g *group) expirePending(id string, pm *pendingMember) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead || g.pending[id] != pm {
		return
	}
	delete(g.pending, id)
	g.tryCompleteJoinLocked()
}
