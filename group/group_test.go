package group

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestJoinSyncThreeMembers(t *testing.T) {
	for _, v := range []int16{0, 1, 3, 4, 5, 7} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t, Config{})
			ms := []*tm{newTM("g", v, "range"), newTM("g", v, "range"), newTM("g", v, "range")}
			chs := make([]<-chan *kmsg.JoinGroupResponse, 3)
			for i, m := range ms {
				chs[i] = h.joinAsync(m)
			}
			h.eventually("g", "3 joins", func(g *group) bool { return g.awaitingJoin == 3 })
			for i := range chs {
				noRecv(t, chs[i], "join during the initial delay")
			}
			// The initial delay (3 s) is extended once because members
			// joined during it.
			h.clk.Advance(3 * time.Second)
			if st := h.state("g"); st != statePreparingRebalance {
				t.Fatalf("state %v after one initial delay", st)
			}
			h.clk.Advance(3 * time.Second)
			var leader *tm
			ids := map[string]bool{}
			for i, m := range ms {
				r := recv(t, chs[i], "join")
				wantCode(t, "join", r.ErrorCode, 0)
				if r.Generation != 1 {
					t.Fatalf("generation %d", r.Generation)
				}
				if m.protocol != "range" {
					t.Fatalf("protocol %q", m.protocol)
				}
				if v >= 7 && (r.ProtocolType == nil || *r.ProtocolType != "consumer") {
					t.Fatalf("protocol type %v", r.ProtocolType)
				}
				ids[m.id] = true
				if m.leader {
					if leader != nil {
						t.Fatal("two leaders")
					}
					leader = m
					if len(r.Members) != 3 {
						t.Fatalf("leader got %d members", len(r.Members))
					}
					for _, mm := range r.Members {
						if string(mm.ProtocolMetadata) != "md-range" {
							t.Fatalf("metadata %q", mm.ProtocolMetadata)
						}
					}
				} else if len(r.Members) != 0 {
					t.Fatalf("follower got %d members", len(r.Members))
				}
			}
			if len(ids) != 3 || leader == nil {
				t.Fatalf("ids %v leader %v", ids, leader)
			}
			if h.state("g") != stateCompletingRebalance {
				t.Fatalf("state %v", h.state("g"))
			}
			// Followers wait for the leader's assignment.
			var fs []<-chan *kmsg.SyncGroupResponse
			var fms []*tm
			for _, m := range ms {
				if m != leader {
					fs = append(fs, h.syncAsync(m))
					fms = append(fms, m)
				}
			}
			h.eventually("g", "followers syncing", func(g *group) bool { return len(g.pendingSync) == 1 })
			noRecv(t, fs[0], "follower sync before the leader's")
			assign := map[string]string{}
			for _, m := range ms {
				assign[m.id] = "assignment of " + m.id
			}
			assign["not-a-member"] = "ignored"
			r := h.sync(leader, assign)
			wantCode(t, "leader sync", r.ErrorCode, 0)
			if string(r.MemberAssignment) != assign[leader.id] {
				t.Fatalf("leader assignment %q", r.MemberAssignment)
			}
			for i, ch := range fs {
				r := recv(t, ch, "follower sync")
				wantCode(t, "follower sync", r.ErrorCode, 0)
				if string(r.MemberAssignment) != assign[fms[i].id] {
					t.Fatalf("assignment %q", r.MemberAssignment)
				}
				if v >= 5 && (r.Protocol == nil || *r.Protocol != "range") {
					t.Fatalf("sync protocol %v", r.Protocol)
				}
			}
			if h.state("g") != stateStable {
				t.Fatalf("state %v", h.state("g"))
			}
			for _, m := range ms {
				wantCode(t, "heartbeat", h.heartbeat(m), 0)
			}
			// A stable group answers SyncGroup at once.
			r = h.sync(fms[0], nil)
			wantCode(t, "late sync", r.ErrorCode, 0)
			if string(r.MemberAssignment) != assign[fms[0].id] {
				t.Fatalf("late sync assignment %q", r.MemberAssignment)
			}
			h.checkInvariants("g")

			d := describe(t, h, "g")
			if d.State != "Stable" || d.Protocol != "range" || d.ProtocolType != "consumer" || len(d.Members) != 3 {
				t.Fatalf("describe: %+v", d)
			}
			for _, m := range d.Members {
				if string(m.MemberAssignment) != assign[m.MemberID] || string(m.ProtocolMetadata) != "md-range" {
					t.Fatalf("describe member %+v", m)
				}
			}
		})
	}
}

func describe(t *testing.T, h *harness, id string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{id}
	resp := h.c.DescribeGroups(context.Background(), req)
	if len(resp.Groups) != 1 {
		t.Fatalf("describe returned %d groups", len(resp.Groups))
	}
	return resp.Groups[0]
}

func TestMemberIDRequired(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	m := newTM("g", 4, "range")
	r := h.c.JoinGroup(context.Background(), m.joinReq())
	wantCode(t, "first join", r.ErrorCode, kerr.MemberIDRequired.Code)
	if r.MemberID == "" || r.Generation != -1 {
		t.Fatalf("response %+v", r)
	}
	// The pending id is the only way in: a made-up id is unknown.
	other := newTM("g", 4, "range")
	other.id = "made-up"
	wantCode(t, "unknown id", h.c.JoinGroup(context.Background(), other.joinReq()).ErrorCode, kerr.UnknownMemberID.Code)

	m.id = r.MemberID
	ch := h.joinAsync(m)
	h.eventually("g", "join", func(g *group) bool { return g.awaitingJoin == 1 })
	h.clk.Advance(0)
	r = recv(t, ch, "join")
	wantCode(t, "second join", r.ErrorCode, 0)
	if r.MemberID != m.id || r.LeaderID != m.id || r.Generation != 1 {
		t.Fatalf("response %+v", r)
	}
	wantCode(t, "sync", h.sync(m, map[string]string{m.id: "x"}).ErrorCode, 0)

	// A pending member holds up a rebalance until its session times out.
	n := newTM("g", 4, "range")
	r = h.c.JoinGroup(context.Background(), n.joinReq())
	wantCode(t, "newcomer", r.ErrorCode, kerr.MemberIDRequired.Code)
	ch = h.joinAsync(m) // the leader rejoins: rebalance
	h.eventually("g", "rebalance", func(g *group) bool { return g.state == statePreparingRebalance && g.awaitingJoin == 1 })
	noRecv(t, ch, "join with a pending member")
	h.clk.Advance(n.session)
	r = recv(t, ch, "join")
	wantCode(t, "join after pending expiry", r.ErrorCode, 0)
	if r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("response %+v", r)
	}
	h.checkInvariants("g")
}

func TestProtocolSelection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members [][]string
		want    string
	}{
		{"one", [][]string{{"range"}}, "range"},
		{"common only", [][]string{{"range", "rr"}, {"rr", "range"}, {"rr"}}, "rr"},
		{"votes", [][]string{{"a", "b"}, {"a", "b"}, {"b", "a"}}, "a"},
		{"votes b", [][]string{{"b", "a"}, {"a", "b"}, {"b", "a"}}, "b"},
		{"tie by name", [][]string{{"y", "x"}, {"x", "y"}}, "x"},
		{"cooperative", [][]string{{"cooperative-sticky", "range"}, {"cooperative-sticky", "range"}}, "cooperative-sticky"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			var ms []*tm
			for _, ps := range tc.members {
				ms = append(ms, newTM("g", 7, ps...))
			}
			leader := h.stableGroup(ms...)
			if leader.protocol != tc.want {
				t.Fatalf("selected %q, want %q", leader.protocol, tc.want)
			}
		})
	}
}

func TestInconsistentProtocol(t *testing.T) {
	h := newHarness(t, Config{})
	h.stableGroup(newTM("g", 7, "range", "rr"), newTM("g", 7, "rr"))
	odd := newTM("g", 7, "range")
	wantCode(t, "no common protocol", h.join(context.Background(), odd).ErrorCode, kerr.InconsistentGroupProtocol.Code)
	other := newTM("g", 7, "rr")
	req := other.joinReq()
	req.ProtocolType = "connect"
	wantCode(t, "other protocol type", h.c.JoinGroup(context.Background(), req).ErrorCode, kerr.InconsistentGroupProtocol.Code)
	if h.state("g") != stateStable {
		t.Fatalf("state %v", h.state("g"))
	}
}

func TestRebalanceOnJoin(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := newTM("g", 7, "range"), newTM("g", 7, "range")
	h.stableGroup(a, b)
	c := newTM("g", 7, "range")
	chC := h.joinAsync(c)
	h.eventually("g", "rebalance", func(g *group) bool { return g.state == statePreparingRebalance })
	wantCode(t, "heartbeat a", h.heartbeat(a), kerr.RebalanceInProgress.Code)
	wantCode(t, "heartbeat b", h.heartbeat(b), kerr.RebalanceInProgress.Code)
	chA, chB := h.joinAsync(a), h.joinAsync(b)
	// Completes as soon as everyone has rejoined: no timer needed.
	for _, ch := range []<-chan *kmsg.JoinGroupResponse{chA, chB, chC} {
		r := recv(t, ch, "join")
		wantCode(t, "join", r.ErrorCode, 0)
		if r.Generation != 2 {
			t.Fatalf("generation %d", r.Generation)
		}
	}
	leaders := 0
	for _, m := range []*tm{a, b, c} {
		if m.leader {
			leaders++
			if len(m.members) != 3 {
				t.Fatalf("leader sees %d members", len(m.members))
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	// Old generation is refused now.
	old := *a
	old.gen = 1
	wantCode(t, "old generation", h.heartbeat(&old), kerr.IllegalGeneration.Code)
	h.checkInvariants("g")
}

func TestRebalanceOnLeave(t *testing.T) {
	h := newHarness(t, Config{})
	a, b, c := newTM("g", 7, "range"), newTM("g", 7, "range"), newTM("g", 7, "range")
	leader := h.stableGroup(a, b, c)
	// The leader leaves: another member leads the next generation.
	wantCode(t, "leave", h.leave(leader), 0)
	if h.state("g") != statePreparingRebalance {
		t.Fatalf("state %v", h.state("g"))
	}
	var rest []*tm
	for _, m := range []*tm{a, b, c} {
		if m != leader {
			rest = append(rest, m)
			wantCode(t, "heartbeat", h.heartbeat(m), kerr.RebalanceInProgress.Code)
		}
	}
	wantCode(t, "heartbeat of the departed", h.heartbeat(leader), kerr.UnknownMemberID.Code)
	l2 := h.stableGroup(rest...)
	if l2.gen != 2 || len(l2.members) != 2 {
		t.Fatalf("gen %d members %d", l2.gen, len(l2.members))
	}
	// Everyone leaves: the group is empty, at a new generation.
	for _, m := range rest {
		wantCode(t, "leave", h.leave(m), 0)
	}
	if h.state("g") != stateEmpty {
		t.Fatalf("state %v", h.state("g"))
	}
	h.checkInvariants("g")
	if g := h.grp("g"); g.generation != 3 {
		t.Fatalf("generation %d", g.generation)
	}
}

func TestLeaveBatch(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := newTM("g", 7, "range").static("ia"), newTM("g", 7, "range")
	h.stableGroup(a, b)
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 3
	req.Group = "g"
	inst := "ia"
	unknown := "nobody"
	req.Members = []kmsg.LeaveGroupRequestMember{
		{InstanceID: &inst}, // by instance id (administrative)
		{MemberID: b.id},
		{MemberID: "ghost"},
		{InstanceID: &unknown},
	}
	resp := h.c.LeaveGroup(context.Background(), req)
	wantCode(t, "top", resp.ErrorCode, 0)
	got := []int16{}
	for _, m := range resp.Members {
		got = append(got, m.ErrorCode)
	}
	want := []int16{0, 0, kerr.UnknownMemberID.Code, kerr.UnknownMemberID.Code}
	if !slices.Equal(got, want) {
		t.Fatalf("codes %v, want %v", got, want)
	}
	if h.state("g") != stateEmpty {
		t.Fatalf("state %v", h.state("g"))
	}
	// v0: one member, its code at the top.
	req0 := kmsg.NewPtrLeaveGroupRequest()
	req0.Version = 0
	req0.Group = "g"
	req0.MemberID = "ghost"
	wantCode(t, "v0 leave", h.c.LeaveGroup(context.Background(), req0).ErrorCode, kerr.UnknownMemberID.Code)
	req0.Group = "no-such-group"
	wantCode(t, "v0 leave of unknown group", h.c.LeaveGroup(context.Background(), req0).ErrorCode, kerr.UnknownMemberID.Code)
}

func TestSessionTimeoutEviction(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := newTM("g", 7, "range"), newTM("g", 7, "range")
	h.stableGroup(a, b)
	// a heartbeats every 3 s; b stays silent past its 10 s session.
	for range 3 {
		h.clk.Advance(3 * time.Second)
		wantCode(t, "heartbeat", h.heartbeat(a), 0)
	}
	h.clk.Advance(2 * time.Second)
	if h.state("g") != statePreparingRebalance {
		t.Fatalf("state %v after b's session timed out", h.state("g"))
	}
	wantCode(t, "evicted member", h.heartbeat(b), kerr.UnknownMemberID.Code)
	wantCode(t, "survivor", h.heartbeat(a), kerr.RebalanceInProgress.Code)
	r := h.join(context.Background(), a)
	wantCode(t, "rejoin", r.ErrorCode, 0)
	if r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("generation %d members %d", r.Generation, len(r.Members))
	}
	// Commits count as heartbeats.
	wantCode(t, "sync", h.sync(a, map[string]string{a.id: "x"}).ErrorCode, 0)
	for range 5 {
		h.clk.Advance(4 * time.Second)
		for k, c := range commitCodes(h.commit("g", a, map[string]map[int32]int64{"t": {0: 1}})) {
			wantCode(t, "commit "+k, c, 0)
		}
	}
	if h.state("g") != stateStable {
		t.Fatalf("state %v", h.state("g"))
	}
	h.checkInvariants("g")
}

func TestRebalanceTimeoutRemovesMember(t *testing.T) {
	h := newHarness(t, Config{})
	a, b, c := newTM("g", 7, "range"), newTM("g", 7, "range"), newTM("g", 7, "range")
	leader := h.stableGroup(a, b, c)
	var followers []*tm
	for _, m := range []*tm{a, b, c} {
		if m != leader {
			followers = append(followers, m)
		}
	}
	slow := followers[1]
	chL := h.joinAsync(leader) // the leader rejoining forces a rebalance
	h.eventually("g", "rebalance", func(g *group) bool { return g.state == statePreparingRebalance })
	chF := h.joinAsync(followers[0])
	h.eventually("g", "two joined", func(g *group) bool { return g.awaitingJoin == 2 })
	// slow keeps heartbeating (so its session does not expire) but never
	// rejoins: the rebalance timeout (30 s) removes it.
	for range 9 {
		h.clk.Advance(3 * time.Second)
		wantCode(t, "slow heartbeat", h.heartbeat(slow), kerr.RebalanceInProgress.Code)
		noRecv(t, chL, "join before the rebalance timeout")
	}
	h.clk.Advance(3 * time.Second)
	for _, ch := range []<-chan *kmsg.JoinGroupResponse{chL, chF} {
		r := recv(t, ch, "join")
		wantCode(t, "join", r.ErrorCode, 0)
		if r.Generation != 2 {
			t.Fatalf("generation %d", r.Generation)
		}
	}
	if len(leader.members) != 2 {
		t.Fatalf("leader sees %d members", len(leader.members))
	}
	wantCode(t, "removed member", h.heartbeat(slow), kerr.UnknownMemberID.Code)
	h.checkInvariants("g")
}

func TestSyncTimeoutRemovesMember(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := newTM("g", 7, "range"), newTM("g", 7, "range")
	chs := []<-chan *kmsg.JoinGroupResponse{h.joinAsync(a), h.joinAsync(b)}
	h.eventually("g", "joined", func(g *group) bool { return g.awaitingJoin == 2 })
	h.clk.Advance(6 * time.Second)
	recv(t, chs[0], "join")
	recv(t, chs[1], "join")
	leader, follower := a, b
	if b.leader {
		leader, follower = b, a
	}
	// The leader syncs; the follower never does, though it heartbeats.
	wantCode(t, "leader sync", h.sync(leader, map[string]string{a.id: "x", b.id: "y"}).ErrorCode, 0)
	for range 10 {
		h.clk.Advance(3 * time.Second)
		h.heartbeat(follower)
		h.heartbeat(leader)
	}
	wantCode(t, "never synced", h.heartbeat(follower), kerr.UnknownMemberID.Code)
	wantCode(t, "leader", h.heartbeat(leader), kerr.RebalanceInProgress.Code)
	h.checkInvariants("g")
}

func TestStaticMemberRestart(t *testing.T) {
	h := newHarness(t, Config{})
	a := newTM("g", 7, "range", "rr").static("instance-a")
	b := newTM("g", 7, "range", "rr").static("instance-b")
	leader := h.stableGroup(a, b)
	gen := leader.gen
	for _, restarted := range []*tm{b, a} {
		old := *restarted
		// The process restarts: no member id, same instance id.
		restarted.id = ""
		r := h.join(context.Background(), restarted)
		wantCode(t, "static rejoin", r.ErrorCode, 0)
		if r.Generation != gen || r.MemberID == old.id || r.MemberID == "" {
			t.Fatalf("response %+v", r)
		}
		if r.LeaderID == r.MemberID || len(r.Members) != 0 {
			t.Fatalf("restarted member told to lead: %+v", r)
		}
		if h.state("g") != stateStable {
			t.Fatalf("state %v: static restart rebalanced", h.state("g"))
		}
		s := h.sync(restarted, nil)
		wantCode(t, "sync", s.ErrorCode, 0)
		if string(s.MemberAssignment) != "a-"+old.id {
			t.Fatalf("assignment %q, want the old member's", s.MemberAssignment)
		}
		wantCode(t, "old id with instance", h.heartbeat(&old), kerr.FencedInstanceID.Code)
		old.instance = nil
		wantCode(t, "old id", h.heartbeat(&old), kerr.UnknownMemberID.Code)
		wantCode(t, "new id", h.heartbeat(restarted), 0)
		h.checkInvariants("g")
	}
	// A static member whose protocols change the group's choice does
	// rebalance: b now supports only rr, so range is no longer common.
	b.id = ""
	b.protos = b.protos[1:]
	ch := h.joinAsync(b)
	h.eventually("g", "rebalance", func(g *group) bool { return g.state == statePreparingRebalance })
	wantCode(t, "a heartbeat", h.heartbeat(a), kerr.RebalanceInProgress.Code)
	h.join(context.Background(), a)
	r := recv(t, ch, "join")
	wantCode(t, "join", r.ErrorCode, 0)
	if r.Generation != gen+1 || a.protocol != "rr" {
		t.Fatalf("generation %d protocol %q", r.Generation, a.protocol)
	}
	// A stale process with the instance id and an old member id is fenced.
	stale := *b
	stale.id = "instance-b-stale"
	wantCode(t, "fenced join", h.c.JoinGroup(context.Background(), stale.joinReq()).ErrorCode, kerr.FencedInstanceID.Code)
	h.checkInvariants("g")
}

func TestStaticMemberKeptThroughRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	a := newTM("g", 7, "range").static("ia")
	b := newTM("g", 7, "range").static("ib")
	a.session, b.session = 45*time.Second, 45*time.Second
	leader := h.stableGroup(a, b)
	// A rebalance while the other member is down (not heartbeating, not rejoining):
	// static members are not removed at the rebalance timeout, only when
	// their session expires.
	ch := h.joinAsync(leader)
	h.eventually("g", "rebalance", func(g *group) bool { return g.state == statePreparingRebalance })
	h.clk.Advance(leader.rebal)
	r := recv(t, ch, "join")
	wantCode(t, "join", r.ErrorCode, 0)
	if len(r.Members) != 2 {
		t.Fatalf("leader sees %d members; the absent static member should stay", len(r.Members))
	}
	h.checkInvariants("g")
}

func TestSimpleConsumerCommits(t *testing.T) {
	h := newHarness(t, Config{})
	resp := h.commit("simple", nil, map[string]map[int32]int64{"t": {0: 5, 2: 9}, "u": {0: 1}})
	for k, c := range commitCodes(resp) {
		wantCode(t, "commit "+k, c, 0)
	}
	got, top := h.fetch("simple", nil)
	wantCode(t, "fetch", top, 0)
	want := map[string]int64{"t/0": 5, "t/2": 9, "u/0": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetch all: %v, want %v", got, want)
	}
	got, _ = h.fetch("simple", map[string][]int32{"t": {0, 1}, "nope": {0}})
	want = map[string]int64{"t/0": 5, "t/1": -1, "nope/0": -1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetch: %v, want %v", got, want)
	}
	// Once the group has members, only they commit.
	m := newTM("simple", 7, "range")
	h.stableGroup(m)
	for k, c := range commitCodes(h.commit("simple", nil, map[string]map[int32]int64{"t": {0: 6}})) {
		wantCode(t, "outsider commit "+k, c, kerr.UnknownMemberID.Code)
	}
	for k, c := range commitCodes(h.commit("simple", m, map[string]map[int32]int64{"t": {0: 6}})) {
		wantCode(t, "member commit "+k, c, 0)
	}
}

func TestOffsetsSurviveRestart(t *testing.T) {
	h := newHarness(t, Config{})
	m := newTM("g", 7, "range")
	h.stableGroup(m)
	resp := h.commit("g", m, map[string]map[int32]int64{"t": {0: 100, 1: 200}, "u": {0: 300}})
	for k, c := range commitCodes(resp) {
		wantCode(t, "commit "+k, c, 0)
	}
	h.restart()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 5
	req.Group = "g"
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1, 2}}}
	fr := h.c.OffsetFetch(context.Background(), req)
	ps := fr.Topics[0].Partitions
	if ps[0].Offset != 100 || ps[1].Offset != 200 || ps[2].Offset != -1 {
		t.Fatalf("offsets after restart: %+v", ps)
	}
	if ps[0].LeaderEpoch != 7 || ps[0].Metadata == nil || *ps[0].Metadata != "md-t-0" {
		t.Fatalf("epoch/metadata after restart: %+v", ps[0])
	}
	if ps[2].LeaderEpoch != -1 || ps[2].Metadata == nil || *ps[2].Metadata != "" {
		t.Fatalf("uncommitted partition: %+v", ps[2])
	}
	// The group is back as it was stored at its last SyncGroup: stable,
	// with its member, which carries on without rejoining.
	if st := h.state("g"); st != stateStable {
		t.Fatalf("state after restart %v", st)
	}
	wantCode(t, "member heartbeat after restart", h.heartbeat(m), 0)
	for k, c := range commitCodes(h.commit("g", m, map[string]map[int32]int64{"t": {0: 101}})) {
		wantCode(t, "member commit after restart "+k, c, 0)
	}
	if s := h.sync(m, nil); s.ErrorCode != 0 || string(s.MemberAssignment) != "a-"+m.id {
		t.Fatalf("sync after restart: %s %q", code(s.ErrorCode), s.MemberAssignment)
	}
	// Its session restarted with the load: silence now removes it.
	h.clk.Advance(m.session)
	wantCode(t, "heartbeat after the session", h.heartbeat(m), kerr.UnknownMemberID.Code)
	h.clk.Advance(3 * time.Second) // the rebalance without members ends: Empty
	if st := h.state("g"); st != stateEmpty {
		t.Fatalf("state %v after the restored member timed out", st)
	}
	h.restart()
	if st := h.state("g"); st != stateEmpty {
		t.Fatalf("state %v after the second restart: the empty generation was not stored", st)
	}
	if g := h.grp("g"); g.generation != 2 {
		t.Fatalf("generation %d after the second restart", g.generation)
	}
	lr := kmsg.NewPtrListGroupsRequest()
	lr.Version = 4
	l := h.c.ListGroups(context.Background(), lr)
	if len(l.Groups) != 1 || l.Groups[0].Group != "g" || l.Groups[0].GroupState != "Empty" {
		t.Fatalf("list after restart: %+v", l.Groups)
	}
	// v1 fetch (no top-level error, no null topics).
	req.Version = 1
	fr = h.c.OffsetFetch(context.Background(), req)
	if fr.Topics[0].Partitions[0].Offset != 101 || fr.Topics[0].Partitions[1].Offset != 200 {
		t.Fatalf("v1 fetch: %+v", fr.Topics[0].Partitions)
	}
}

func TestOffsetExpiry(t *testing.T) {
	h := newHarness(t, Config{OffsetsRetention: time.Hour, RetentionCheckInterval: time.Minute})
	h.commit("idle", nil, map[string]map[int32]int64{"t": {0: 1}})
	h.commit("busy", nil, map[string]map[int32]int64{"t": {0: 1}})
	active := newTM("active", 7, "range")
	active.session = 30 * time.Minute
	h.stableGroup(active)
	h.commit("active", active, map[string]map[int32]int64{"t": {0: 1}})
	for range 7 {
		h.clk.Advance(10 * time.Minute)
		h.commit("busy", nil, map[string]map[int32]int64{"t": {0: 2}})
		wantCode(t, "active heartbeat", h.heartbeat(active), 0)
	}
	if g := h.grp("idle"); g != nil {
		t.Fatal("idle group still there after its retention")
	}
	if got, _ := h.fetch("idle", map[string][]int32{"t": {0}}); got["t/0"] != -1 {
		t.Fatalf("idle offsets not expired: %v", got)
	}
	for _, id := range []string{"busy", "active"} {
		if h.grp(id) == nil {
			t.Fatalf("%s expired", id)
		}
		if got, _ := h.fetch(id, map[string][]int32{"t": {0}}); got["t/0"] < 1 {
			t.Fatalf("%s offsets gone: %v", id, got)
		}
	}
	// After the last member leaves, the retention counts from then.
	wantCode(t, "leave", h.leave(active), 0)
	h.clk.Advance(50 * time.Minute)
	if h.grp("active") == nil {
		t.Fatal("active group expired early")
	}
	h.clk.Advance(11 * time.Minute)
	if h.grp("active") != nil {
		t.Fatal("active group not expired an hour after its last member left")
	}
	// A group with no members and no offsets goes at the next check.
	m := newTM("transient", 7, "range")
	h.stableGroup(m)
	h.leave(m)
	h.clk.Advance(time.Minute)
	if h.grp("transient") != nil {
		t.Fatal("empty group without offsets kept")
	}
	// The same id can be used again.
	h.stableGroup(newTM("idle", 7, "range"))
}

func TestOffsetCommitChecks(t *testing.T) {
	h := newHarness(t, Config{})
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = "g"
	req.Generation = -1
	big := string(make([]byte, 4097))
	ok := "fine"
	req.Topics = []kmsg.OffsetCommitRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, Metadata: &ok}, {Partition: 3, Offset: 1}, {Partition: 1, Offset: 1, Metadata: &big}}},
		{Topic: "missing", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}},
	}
	codes := commitCodes(h.c.OffsetCommit(context.Background(), req))
	want := map[string]int16{
		"t/0":       0,
		"t/3":       kerr.UnknownTopicOrPartition.Code,
		"t/1":       kerr.OffsetMetadataTooLarge.Code,
		"missing/0": kerr.UnknownTopicOrPartition.Code,
	}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	got, _ := h.fetch("g", nil)
	if fmt.Sprint(got) != fmt.Sprint(map[string]int64{"t/0": 1}) {
		t.Fatalf("stored %v", got)
	}
	// An unknown group with a generation: an old generation.
	req.Generation = 3
	req.Group = "unknown"
	for k, c := range commitCodes(h.c.OffsetCommit(context.Background(), req)) {
		wantCode(t, k, c, kerr.IllegalGeneration.Code)
	}
	req.Group = ""
	for k, c := range commitCodes(h.c.OffsetCommit(context.Background(), req)) {
		wantCode(t, k, c, kerr.InvalidGroupID.Code)
	}
}

func TestDeleteGroups(t *testing.T) {
	h := newHarness(t, Config{})
	m := newTM("busy", 7, "range")
	h.stableGroup(m)
	h.commit("idle", nil, map[string]map[int32]int64{"t": {0: 4}})
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = []string{"busy", "idle", "nothing", ""}
	resp := h.c.DeleteGroups(context.Background(), req)
	got := []int16{}
	for _, g := range resp.Groups {
		got = append(got, g.ErrorCode)
	}
	want := []int16{kerr.NonEmptyGroup.Code, 0, kerr.GroupIDNotFound.Code, kerr.InvalidGroupID.Code}
	if !slices.Equal(got, want) {
		t.Fatalf("codes %v, want %v", got, want)
	}
	if o, _ := h.fetch("idle", map[string][]int32{"t": {0}}); o["t/0"] != -1 {
		t.Fatalf("offsets of a deleted group: %v", o)
	}
	if live := h.stored()["idle"]; len(live) != 0 {
		t.Fatalf("records of the deleted group still live in the log: %v", live)
	}
	d := describe(t, h, "idle")
	if d.State != "Dead" || d.ErrorCode != 0 {
		t.Fatalf("describe deleted: %+v", d)
	}
	// Deleted for good across a restart.
	h.restart()
	if h.grp("idle") != nil {
		t.Fatal("deleted group back after restart")
	}
}

func TestListAndDescribe(t *testing.T) {
	h := newHarness(t, Config{})
	h.stableGroup(newTM("b-stable", 7, "range"))
	h.commit("a-empty", nil, map[string]map[int32]int64{"t": {0: 1}})
	ch := h.joinAsync(newTM("c-preparing", 7, "range"))
	h.eventually("c-preparing", "join", func(g *group) bool { return g.awaitingJoin == 1 })

	list := func(v int16, states ...string) []string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = v
		req.StatesFilter = states
		resp := h.c.ListGroups(context.Background(), req)
		var out []string
		for _, g := range resp.Groups {
			out = append(out, g.Group+":"+g.ProtocolType+":"+g.GroupState)
		}
		return out
	}
	if got := fmt.Sprint(list(4)); got != "[a-empty::Empty b-stable:consumer:Stable c-preparing:consumer:PreparingRebalance]" {
		t.Fatalf("list: %s", got)
	}
	if got := fmt.Sprint(list(4, "stable", "EMPTY")); got != "[a-empty::Empty b-stable:consumer:Stable]" {
		t.Fatalf("filtered list: %s", got)
	}
	if got := fmt.Sprint(list(3, "stable")); got != "[a-empty:: b-stable:consumer: c-preparing:consumer:]" { // v3: no filter, no state
		t.Fatalf("v3 list (no filter, no state): %s", got)
	}
	d := describe(t, h, "c-preparing")
	if d.State != "PreparingRebalance" || d.Protocol != "" || len(d.Members) != 1 || len(d.Members[0].ProtocolMetadata) != 0 {
		t.Fatalf("describe preparing: %+v", d)
	}
	h.clk.Advance(3 * time.Second)
	recv(t, ch, "join")
}

func TestFindCoordinator(t *testing.T) {
	h := newHarness(t, Config{NodeID: 3})
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = v
		req.CoordinatorKey = "g"
		ctx := WithConn(context.Background(), Conn{Host: "10.1.2.3", Port: 19092})
		resp := h.c.FindCoordinator(ctx, req)
		if resp.ErrorCode != 0 || resp.NodeID != 3 || resp.Host != "10.1.2.3" || resp.Port != 19092 || resp.Version != v {
			t.Fatalf("v%d: %+v", v, resp)
		}
		if v >= 1 {
			req.CoordinatorType = 1
			wantCode(t, "transaction coordinator", h.c.FindCoordinator(ctx, req).ErrorCode, kerr.TransactionalIDAuthorizationFailed.Code)
			req.CoordinatorType = 9
			wantCode(t, "unknown type", h.c.FindCoordinator(ctx, req).ErrorCode, kerr.InvalidRequest.Code)
		}
	}
	h2 := newHarness(t, Config{Host: "easel", Port: 1234})
	resp := h2.c.FindCoordinator(context.Background(), kmsg.NewPtrFindCoordinatorRequest())
	if resp.Host != "easel" || resp.Port != 1234 {
		t.Fatalf("configured address: %+v", resp)
	}
}

func TestCloseWakesWaiters(t *testing.T) {
	h := newHarness(t, Config{})
	a := newTM("g", 7, "range")
	ch := h.joinAsync(a)
	h.eventually("g", "join", func(g *group) bool { return g.awaitingJoin == 1 })
	h.c.Close()
	wantCode(t, "waiting join", recv(t, ch, "join").ErrorCode, kerr.NotCoordinator.Code)
	wantCode(t, "join after close", h.join(context.Background(), newTM("g", 7, "range")).ErrorCode, kerr.NotCoordinator.Code)
	wantCode(t, "heartbeat after close", h.heartbeat(a), kerr.NotCoordinator.Code)
	if h.clk.pendingTimers() != 0 {
		// Stopped timers are dropped by Advance; none may still be live.
		t.Fatalf("%d timers live after Close", h.clk.pendingTimers())
	}
}

func TestJoinContextCancelled(t *testing.T) {
	h := newHarness(t, Config{})
	a := newTM("g", 7, "range")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *kmsg.JoinGroupResponse)
	go func() { done <- h.join(ctx, a) }()
	h.eventually("g", "join", func(g *group) bool { return g.awaitingJoin == 1 })
	cancel()
	r := recv(t, done, "cancelled join")
	if r.ErrorCode == 0 {
		t.Fatal("cancelled join succeeded")
	}
	// The member stays in the rebalance, as in Kafka; a retry with its id
	// completes it.
	h.clk.Advance(3 * time.Second)
	h.checkInvariants("g")
}

func TestMaxGroupSize(t *testing.T) {
	h := newHarness(t, Config{MaxGroupSize: 2})
	h.stableGroup(newTM("g", 7, "range"), newTM("g", 7, "range"))
	r := h.join(context.Background(), newTM("g", 7, "range"))
	wantCode(t, "third member", r.ErrorCode, kerr.GroupMaxSizeReached.Code)
	if h.state("g") != stateStable {
		t.Fatalf("state %v", h.state("g"))
	}
}

func TestManyGroupsConcurrently(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	const groups, members = 50, 3
	type res struct {
		g    int
		resp *kmsg.JoinGroupResponse
	}
	out := make(chan res, groups*members)
	for g := range groups {
		for range members {
			m := newTM(fmt.Sprintf("g%d", g), 7, "range")
			go func() { out <- res{g, h.join(context.Background(), m)} }()
		}
	}
	// Each group's first join completes at once (no delay); later joins
	// trigger further rebalances that complete when everyone rejoined or at
	// the rebalance timeout; drive the clock until all have answered.
	got := 0
	deadline := time.After(10 * time.Second)
	for got < groups*members {
		select {
		case r := <-out:
			if r.resp.ErrorCode != 0 {
				t.Fatalf("group %d: %s", r.g, code(r.resp.ErrorCode))
			}
			got++
		case <-time.After(time.Millisecond):
			h.clk.Advance(time.Second)
		case <-deadline:
			t.Fatalf("%d of %d joins answered", got, groups*members)
		}
	}
	for g := range groups {
		h.checkInvariants(fmt.Sprintf("g%d", g))
	}
}
