package group

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetDelete deletes the offsets of topic/partitions of group and
// returns the group's code and each partition's.
func (h *harness) offsetDelete(group string, tps map[string][]int32) (int16, map[string]map[int32]int16) {
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = group
	for t, ps := range tps {
		rt := kmsg.NewOffsetDeleteRequestTopic()
		rt.Topic = t
		for _, p := range ps {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
		}
		req.Topics = append(req.Topics, rt)
	}
	resp := h.c.OffsetDelete(context.Background(), req)
	out := map[string]map[int32]int16{}
	for _, t := range resp.Topics {
		out[t.Topic] = map[int32]int16{}
		for _, p := range t.Partitions {
			out[t.Topic][p.Partition] = p.ErrorCode
		}
	}
	return resp.ErrorCode, out
}

// joinAlone joins the only member of a group with req and returns the
// response once the join completes.
func (h *harness) joinAlone(req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	h.t.Helper()
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- h.c.JoinGroup(context.Background(), req) }()
	h.eventually(req.Group, "join", func(g *group) bool { return g.awaitingJoin == 1 })
	h.clk.Advance(0)
	return recv(h.t, ch, "join")
}

// TestOffsetDeleteGroup checks OffsetDelete at the coordinator: offsets of
// an empty group go, durably (a restart replays the tombstones); a consumer
// group's members keep the offsets of the topics they subscribe to (all of
// them when a subscription does not decode); a group of another protocol
// type with members is NON_EMPTY_GROUP; unknown and empty ids are errors.
func TestOffsetDeleteGroup(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	offs := map[string]map[int32]int64{"t": {0: 1, 1: 2}, "u": {0: 3}}
	for _, g := range []string{"g", "sub", "bad", "other"} {
		for tp, code := range commitCodes(h.commit(g, nil, offs)) {
			if code != 0 {
				t.Fatalf("commit %s %s: %v", g, tp, kerr.ErrorForCode(code))
			}
		}
	}
	if code, ps := h.offsetDelete("g", map[string][]int32{"t": {0, 9}}); code != 0 || ps["t"][0] != 0 || ps["t"][9] != 0 {
		t.Fatalf("empty group: %v %v", code, ps)
	}
	h.restart()
	got, _ := h.fetch("g", nil)
	if _, ok := got["t/0"]; ok || got["t/1"] != 2 || got["u/0"] != 3 {
		t.Fatalf("after a restart: %v", got)
	}

	// A consumer member subscribed to t: t's offsets stay, u's go.
	sub := newTM("sub", 3, "range")
	sub.protos[0].Metadata = (&kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}).AppendTo(nil)
	if r := h.joinAlone(sub.joinReq()); r.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code, ps := h.offsetDelete("sub", map[string][]int32{"t": {1}, "u": {0}}); code != 0 ||
		ps["t"][1] != kerr.GroupSubscribedToTopic.Code || ps["u"][0] != 0 {
		t.Fatalf("subscribed group: %v %v", code, ps)
	}
	if got, _ := h.fetch("sub", nil); got["t/1"] != 2 || len(got) != 2 {
		t.Fatalf("subscribed group after delete: %v", got)
	}

	// A subscription that does not decode: every topic counts.
	bad := newTM("bad", 3, "range") // metadata "md-range"
	if r := h.joinAlone(bad.joinReq()); r.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code, ps := h.offsetDelete("bad", map[string][]int32{"u": {0}}); code != 0 || ps["u"][0] != kerr.GroupSubscribedToTopic.Code {
		t.Fatalf("undecodable subscription: %v %v", code, ps)
	}

	// Another protocol type with members.
	other := newTM("other", 3, "x")
	req := other.joinReq()
	req.ProtocolType = "connect"
	if r := h.joinAlone(req); r.ErrorCode != 0 {
		t.Fatalf("join connect: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code, _ := h.offsetDelete("other", map[string][]int32{"u": {0}}); code != kerr.NonEmptyGroup.Code {
		t.Fatalf("connect group: %v", kerr.ErrorForCode(code))
	}
	if code, _ := h.offsetDelete("nope", map[string][]int32{"u": {0}}); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("unknown group: %v", kerr.ErrorForCode(code))
	}
	if code, _ := h.offsetDelete("", nil); code != kerr.InvalidGroupID.Code {
		t.Fatalf("empty id: %v", kerr.ErrorForCode(code))
	}
}
