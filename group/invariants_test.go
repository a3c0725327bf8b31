package group

import (
	"errors"
	"fmt"
)

// checkLocked verifies the group's invariants; g.mu is held.
func (g *group) checkLocked() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("group %q (%v, gen %d): %s", g.id, g.state, g.generation, fmt.Sprintf(format, args...))
	}
	if g.state == stateDead {
		return nil
	}
	if len(g.byID) != len(g.members) {
		return fail("%d members but %d ids", len(g.members), len(g.byID))
	}
	awaiting, syncing, statics := 0, 0, 0
	counts := make(map[string]int)
	for _, m := range g.members {
		if g.byID[m.id] != m {
			return fail("member %q not indexed by its id", m.id)
		}
		if g.pending[m.id] != nil {
			return fail("member %q is also pending", m.id)
		}
		if m.join != nil {
			awaiting++
			if g.state != statePreparingRebalance {
				return fail("member %q awaits join", m.id)
			}
		}
		if m.sync != nil {
			syncing++
			if g.state != stateCompletingRebalance {
				return fail("member %q awaits sync", m.id)
			}
		}
		if m.instance != nil {
			statics++
			if g.static[*m.instance] != m {
				return fail("static member %q not indexed by instance %q", m.id, *m.instance)
			}
		}
		if m.protocolType != g.protocolType {
			return fail("member %q protocol type %q", m.id, m.protocolType)
		}
		for _, p := range m.protocols {
			counts[p.name]++
		}
		if (g.state == stateCompletingRebalance || g.state == stateStable) && m.metadataFor(g.protocol) == nil {
			return fail("member %q does not support the selected protocol %q", m.id, g.protocol)
		}
	}
	if statics != len(g.static) {
		return fail("%d static members, %d instance ids", statics, len(g.static))
	}
	if awaiting != g.awaitingJoin {
		return fail("awaitingJoin %d, %d members await", g.awaitingJoin, awaiting)
	}
	if len(counts) != len(g.protoCount) {
		return fail("protocol counts %v, want %v", g.protoCount, counts)
	}
	for k, v := range counts {
		if g.protoCount[k] != v {
			return fail("protocol counts %v, want %v", g.protoCount, counts)
		}
	}
	switch {
	case len(g.members) == 0 && g.leader != "":
		return fail("leader %q of no members", g.leader)
	case len(g.members) > 0 && g.byID[g.leader] == nil:
		return fail("leader %q is not a member", g.leader)
	case g.state == stateEmpty && len(g.members) > 0:
		return fail("empty with %d members", len(g.members))
	case g.state != stateEmpty && g.state != statePreparingRebalance && len(g.members) == 0:
		return fail("no members")
	case (g.state == stateCompletingRebalance || g.state == stateStable) && g.protocol == "":
		return fail("no protocol selected")
	case g.generation < 0:
		return errors.New("negative generation")
	}
	for id := range g.pendingSync {
		if g.byID[id] == nil {
			return fail("pending sync of non-member %q", id)
		}
		if g.state != stateCompletingRebalance && g.state != stateStable {
			return fail("pending sync of %q", id)
		}
	}
	return nil
}
