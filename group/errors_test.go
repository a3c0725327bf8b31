package group

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestErrorCases sends bad requests to a stable group and checks each gets
// Kafka's error code and leaves the group working.
func TestErrorCases(t *testing.T) {
	h := newHarness(t, Config{MaxMetadataBytes: 1000})
	a, b := newTM("g", 7, "range"), newTM("g", 7, "range")
	first := h.stableGroup(a, b)
	ctx := context.Background()
	str := func(s string) *string { return &s }

	join := func(mod func(m *tm, r *kmsg.JoinGroupRequest)) func() int16 {
		return func() int16 {
			m := newTM("g", 7, "range")
			r := m.joinReq()
			mod(m, r)
			return h.c.JoinGroup(ctx, r).ErrorCode
		}
	}
	syncAs := func(m *tm, mod func(r *kmsg.SyncGroupRequest)) func() int16 {
		return func() int16 {
			r := h.syncReq(m, nil)
			mod(r)
			return h.c.SyncGroup(ctx, r).ErrorCode
		}
	}
	hbAs := func(mod func(r *kmsg.HeartbeatRequest)) func() int16 {
		return func() int16 {
			r := kmsg.NewPtrHeartbeatRequest()
			r.Version = 4
			r.Group, r.Generation, r.MemberID = "g", a.gen, a.id
			mod(r)
			return h.c.Heartbeat(ctx, r).ErrorCode
		}
	}
	commitAs := func(mod func(r *kmsg.OffsetCommitRequest)) func() int16 {
		return func() int16 {
			r := kmsg.NewPtrOffsetCommitRequest()
			r.Version = 8
			r.Group, r.Generation, r.MemberID = "g", a.gen, a.id
			r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5}}}}
			mod(r)
			return h.c.OffsetCommit(ctx, r).Topics[0].Partitions[0].ErrorCode
		}
	}
	leaveAs := func(id string, inst *string) func() int16 {
		return func() int16 {
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Version = 4
			r.Group = "g"
			r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: id, InstanceID: inst}}
			resp := h.c.LeaveGroup(ctx, r)
			if resp.ErrorCode != 0 {
				return resp.ErrorCode
			}
			return resp.Members[0].ErrorCode
		}
	}

	for _, tc := range []struct {
		name string
		send func() int16
		want *kerr.Error
	}{
		{"join: empty group id", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.Group = "" }), kerr.InvalidGroupID},
		{"join: session timeout too short", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 100 }), kerr.InvalidSessionTimeout},
		{"join: session timeout too long", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 1 << 30 }), kerr.InvalidSessionTimeout},
		{"join: unknown protocol type", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.ProtocolType = "mystery" }), kerr.InconsistentGroupProtocol},
		{"join: empty protocol type", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.ProtocolType = "" }), kerr.InconsistentGroupProtocol},
		{"join: no protocols", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.Protocols = nil }), kerr.InconsistentGroupProtocol},
		{"join: no common protocol", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.Protocols[0].Name = "sticky" }), kerr.InconsistentGroupProtocol},
		{"join: huge metadata", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.Protocols[0].Metadata = make([]byte, 1001) }), kerr.MessageTooLarge},
		{"join: unknown member id", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.MemberID = "who" }), kerr.UnknownMemberID},
		{"join: unknown member of unknown group", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.MemberID = "who"; r.Group = "nope" }), kerr.UnknownMemberID},
		{"join: unknown instance with a member id", join(func(_ *tm, r *kmsg.JoinGroupRequest) { r.MemberID = a.id; r.InstanceID = str("x") }), kerr.UnknownMemberID},
		{"sync: empty group id", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.Group = "" }), kerr.InvalidGroupID},
		{"sync: unknown group", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.Group = "nope" }), kerr.UnknownMemberID},
		{"sync: unknown member", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.MemberID = "who" }), kerr.UnknownMemberID},
		{"sync: old generation", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.Generation-- }), kerr.IllegalGeneration},
		{"sync: future generation", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.Generation += 5 }), kerr.IllegalGeneration},
		{"sync: wrong protocol type", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.ProtocolType = str("connect") }), kerr.InconsistentGroupProtocol},
		{"sync: wrong protocol", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.Protocol = str("rr") }), kerr.InconsistentGroupProtocol},
		{"sync: unknown instance", syncAs(b, func(r *kmsg.SyncGroupRequest) { r.InstanceID = str("x") }), kerr.UnknownMemberID},
		{"heartbeat: empty group id", hbAs(func(r *kmsg.HeartbeatRequest) { r.Group = "" }), kerr.InvalidGroupID},
		{"heartbeat: unknown group", hbAs(func(r *kmsg.HeartbeatRequest) { r.Group = "nope" }), kerr.UnknownMemberID},
		{"heartbeat: unknown member", hbAs(func(r *kmsg.HeartbeatRequest) { r.MemberID = "who" }), kerr.UnknownMemberID},
		{"heartbeat: old generation", hbAs(func(r *kmsg.HeartbeatRequest) { r.Generation = 0 }), kerr.IllegalGeneration},
		{"heartbeat: negative generation", hbAs(func(r *kmsg.HeartbeatRequest) { r.Generation = -1 }), kerr.IllegalGeneration},
		{"heartbeat: unknown instance", hbAs(func(r *kmsg.HeartbeatRequest) { r.InstanceID = str("x") }), kerr.UnknownMemberID},
		{"commit: old generation", commitAs(func(r *kmsg.OffsetCommitRequest) { r.Generation-- }), kerr.IllegalGeneration},
		{"commit: unknown member", commitAs(func(r *kmsg.OffsetCommitRequest) { r.MemberID = "who" }), kerr.UnknownMemberID},
		{"commit: outsider with generation -1", commitAs(func(r *kmsg.OffsetCommitRequest) { r.Generation, r.MemberID = -1, "" }), kerr.UnknownMemberID},
		{"commit: unknown topic", commitAs(func(r *kmsg.OffsetCommitRequest) { r.Topics[0].Topic = "missing" }), kerr.UnknownTopicOrPartition},
		{"commit: unknown partition", commitAs(func(r *kmsg.OffsetCommitRequest) { r.Topics[0].Partitions[0].Partition = 99 }), kerr.UnknownTopicOrPartition},
		{"commit: negative partition", commitAs(func(r *kmsg.OffsetCommitRequest) { r.Topics[0].Partitions[0].Partition = -1 }), kerr.UnknownTopicOrPartition},
		{"commit: metadata too large", commitAs(func(r *kmsg.OffsetCommitRequest) {
			r.Topics[0].Partitions[0].Metadata = str(string(make([]byte, 5000)))
		}), kerr.OffsetMetadataTooLarge},
		{"commit: unknown instance", commitAs(func(r *kmsg.OffsetCommitRequest) { r.InstanceID = str("x") }), kerr.UnknownMemberID},
		{"leave: unknown member", leaveAs("who", nil), kerr.UnknownMemberID},
		{"leave: unknown instance", leaveAs("", str("x")), kerr.UnknownMemberID},
		{"leave: nobody", leaveAs("", nil), kerr.UnknownMemberID},
		{"leave: wrong instance for member", leaveAs(a.id, str("x")), kerr.UnknownMemberID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := int16(0)
			if tc.want != nil {
				want = tc.want.Code
			}
			wantCode(t, tc.name, tc.send(), want)
			// The group keeps working.
			if st := h.state("g"); st != stateStable {
				t.Fatalf("state %v", st)
			}
			wantCode(t, "heartbeat a", h.heartbeat(a), 0)
			wantCode(t, "heartbeat b", h.heartbeat(b), 0)
			h.checkInvariants("g")
		})
	}
	// The leader's oversized assignment fails its sync, and the group
	// rebalances and recovers.
	second := a
	if first == a {
		second = b
	}
	ch := h.joinAsync(first) // the leader rejoining forces a rebalance
	h.eventually("g", "rebalance", func(g *group) bool { return g.state == statePreparingRebalance })
	ch2 := h.joinAsync(second)
	recv(t, ch, "join")
	recv(t, ch2, "join")
	leader, follower := a, b
	if b.leader {
		leader, follower = b, a
	}
	fs := h.syncAsync(follower)
	h.eventually("g", "follower sync", func(g *group) bool { return len(g.pendingSync) == 1 })
	r := h.c.SyncGroup(ctx, &kmsg.SyncGroupRequest{Version: 5, Group: "g", Generation: leader.gen, MemberID: leader.id,
		GroupAssignment: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: follower.id, MemberAssignment: make([]byte, 1001)}}})
	wantCode(t, "oversized assignment", r.ErrorCode, kerr.MessageTooLarge.Code)
	wantCode(t, "follower", recv(t, fs, "follower sync").ErrorCode, kerr.RebalanceInProgress.Code)
	h.checkInvariants("g")
	h.stableGroup(a, b)
}
