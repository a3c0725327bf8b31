package group

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// fuzzer turns bytes into a sequence of coordinator calls: structured ones
// over a small space of groups, members and generations (so that they
// meet), raw requests decoded from the bytes, and clock advances. Calls use
// a cancelled context, so none blocks.
type fuzzer struct {
	t    *testing.T
	eng  *engine.Engine
	cfg  Config
	c    *Coordinator
	clk  *fakeClock
	data []byte
	ids  []string // member ids seen in responses
	gens []int32
}

// fuzzConfig is the coordinator configuration of the fuzz tests: two
// __consumer_offsets partitions, so that g0 and g1 live on different ones.
func fuzzConfig(clk *fakeClock) Config {
	return Config{Logger: quiet, Now: clk.Now, MaxMetadataBytes: 1000, OffsetsTopicNumPartitions: 2}
}

// newFuzzer starts a coordinator on eng with a fresh __consumer_offsets.
func newFuzzer(t *testing.T, eng *engine.Engine, data []byte) *fuzzer {
	if err := eng.DeleteTopic(engine.ConsumerOffsetsTopic); err != nil && !errors.Is(err, engine.ErrUnknownTopic) {
		t.Fatal(err)
	}
	clk := newFakeClock()
	f := &fuzzer{t: t, eng: eng, cfg: fuzzConfig(clk), clk: clk, data: data}
	f.c = newCoordinator(eng, f.cfg, clk, testHooks{})
	if err := f.c.Err(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fuzzer) byte() byte {
	if len(f.data) == 0 {
		return 0
	}
	b := f.data[0]
	f.data = f.data[1:]
	return b
}

func (f *fuzzer) pick(n int) int { return int(f.byte()) % n }

func (f *fuzzer) group() string { return [...]string{"g0", "g0", "g0", "g1", "g1", ""}[f.pick(6)] }

// current returns a live member id and the generation of group id, as a
// client in the group would know them.
func (f *fuzzer) current(id string) (string, int32) {
	g := lookupGroup(f.c, id)
	if g == nil {
		return "", -1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) == 0 {
		return "", g.generation
	}
	if f.pick(2) == 0 {
		return g.leader, g.generation
	}
	return g.members[f.pick(len(g.members))].id, g.generation
}

// memberID returns a member id for a request to group: often a current
// member's, else one seen before, empty or made up.
func (f *fuzzer) memberID(group string) string {
	switch i := f.pick(8); {
	case i == 0:
		return ""
	case i == 1:
		return "bogus"
	case i < 5:
		id, _ := f.current(group)
		return id
	default:
		if len(f.ids) == 0 {
			return ""
		}
		return f.ids[f.pick(len(f.ids))]
	}
}

func (f *fuzzer) instance() *string {
	switch f.pick(4) {
	case 0:
		s := "i0"
		return &s
	case 1:
		s := "i1"
		return &s
	}
	return nil
}

func (f *fuzzer) gen(group string) int32 {
	switch i := f.pick(8); {
	case i == 0:
		return -1
	case i < 5:
		_, gen := f.current(group)
		return gen
	case len(f.gens) == 0:
		return int32(i)
	default:
		return f.gens[f.pick(len(f.gens))]
	}
}

func (f *fuzzer) learn(id string, gen int32) {
	// Keep the 16 most recent.
	if id != "" && !slices.Contains(f.ids, id) {
		if len(f.ids) == 16 {
			f.ids = f.ids[1:]
		}
		f.ids = append(f.ids, id)
	}
	if gen >= 0 && !slices.Contains(f.gens, gen) {
		if len(f.gens) == 8 {
			f.gens = f.gens[1:]
		}
		f.gens = append(f.gens, gen)
	}
}

func (f *fuzzer) step(ctx context.Context) {
	op := f.byte()
	switch op {
	case 250: // the broker restarts
		f.restart()
		return
	case 251: // a partition moves away and back
		f.reload(int32(f.pick(2)))
		return
	}
	switch op % 13 {
	case 10, 11, 12:
		f.drive(ctx)
	case 0, 1: // join
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = int16(f.pick(8))
		req.Group = f.group()
		req.MemberID = f.memberID(req.Group)
		req.InstanceID = f.instance()
		req.SessionTimeoutMillis = [...]int32{6000, 10000, 10000, 30000, 30000, 30000, 30000, 1}[f.pick(8)]
		req.RebalanceTimeoutMillis = [...]int32{5000, 60000, 60000, 0, -1}[f.pick(5)]
		req.ProtocolType = [...]string{"consumer", "consumer", "consumer", "consumer", "consumer", "consumer", "connect", ""}[f.pick(8)]
		for range [...]int{1, 1, 1, 2, 2, 3, 0}[f.pick(7)] {
			name := [...]string{"range", "range", "rr", "cooperative-sticky"}[f.pick(4)]
			req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: name, Metadata: make([]byte, [...]int{0, 10, 1200}[f.pick(3)])})
		}
		if resp, ok := f.call(ctx, req).(*kmsg.JoinGroupResponse); ok {
			f.learn(resp.MemberID, resp.Generation)
		}
	case 2: // sync
		req := kmsg.NewPtrSyncGroupRequest()
		req.Version = int16(f.pick(6))
		req.Group = f.group()
		req.MemberID = f.memberID(req.Group)
		if f.pick(2) == 0 {
			req.InstanceID = f.instance()
		}
		req.Generation = f.gen(req.Group)
		for range f.pick(4) {
			req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: f.memberID(req.Group), MemberAssignment: make([]byte, [...]int{0, 10, 10, 1200}[f.pick(4)])})
		}
		f.call(ctx, req)
	case 3: // heartbeat
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = int16(f.pick(5))
		req.Group = f.group()
		req.MemberID = f.memberID(req.Group)
		if f.pick(2) == 0 {
			req.InstanceID = f.instance()
		}
		req.Generation = f.gen(req.Group)
		f.call(ctx, req)
	case 4: // leave
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Version = int16(f.pick(5))
		req.Group = f.group()
		req.MemberID = f.memberID(req.Group)
		for range f.pick(3) {
			req.Members = append(req.Members, kmsg.LeaveGroupRequestMember{MemberID: f.memberID(req.Group), InstanceID: f.instance()})
		}
		f.call(ctx, req)
	case 5: // commit
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = int16(2 + f.pick(7))
		req.Group = f.group()
		req.MemberID = f.memberID(req.Group)
		if f.pick(2) == 0 {
			req.InstanceID = f.instance()
		}
		req.Generation = f.gen(req.Group)
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: [...]string{"t", "u", "missing"}[f.pick(3)],
			Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: int32(f.pick(4)) - 1, Offset: int64(f.byte())}}}}
		f.call(ctx, req)
	case 6: // admin
		switch f.pick(4) {
		case 0:
			f.call(ctx, &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{f.group()}})
		case 1:
			f.call(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{f.group(), "none"}})
		case 2:
			f.call(ctx, &kmsg.ListGroupsRequest{Version: 4})
		case 3:
			f.call(ctx, &kmsg.OffsetFetchRequest{Version: 7, Group: f.group()})
		}
	case 7, 8: // time passes
		f.clk.Advance(time.Duration(f.byte()) * 50 * time.Millisecond)
	case 9: // a raw request decoded from the input
		keys := []int16{8, 9, 10, 11, 12, 13, 14, 15, 16, 42}
		key := keys[f.pick(len(keys))]
		vr := Versions[key]
		n := f.pick(64)
		body := f.data[:min(n, len(f.data))]
		f.data = f.data[len(body):]
		req := kmsg.RequestForKey(key)
		req.SetVersion(vr[0] + int16(f.pick(int(vr[1]-vr[0]+1))))
		body = append([]byte(nil), body...) // send scribbles over it
		f.send(ctx, req, body)
	}
}

// call sends req as the broker does: encoded, then decoded without copying
// strings out of the buffer.
func (f *fuzzer) call(ctx context.Context, req kmsg.Request) kmsg.Response {
	return f.send(ctx, req, req.AppendTo(nil))
}

// send decodes body as a request of req's key and version, strings
// aliasing body, hands it to the coordinator, encodes the response and then
// scribbles over body, as netio reuses its buffers: the coordinator must
// keep nothing that points into a request. It returns the response (nil if
// body does not decode), after checking it decodes at its version.
func (f *fuzzer) send(ctx context.Context, req kmsg.Request, body []byte) kmsg.Response {
	key := req.Key()
	r := kmsg.RequestForKey(key)
	r.SetVersion(req.GetVersion())
	if r.(interface{ UnsafeReadFrom([]byte) error }).UnsafeReadFrom(body) != nil {
		return nil
	}
	var resp kmsg.Response
	c := f.c
	switch r := r.(type) {
	case *kmsg.OffsetCommitRequest:
		resp = c.OffsetCommit(ctx, r)
	case *kmsg.OffsetFetchRequest:
		resp = c.OffsetFetch(ctx, r)
	case *kmsg.FindCoordinatorRequest:
		resp = c.FindCoordinator(ctx, r)
	case *kmsg.JoinGroupRequest:
		resp = c.JoinGroup(ctx, r)
	case *kmsg.HeartbeatRequest:
		resp = c.Heartbeat(ctx, r)
	case *kmsg.LeaveGroupRequest:
		resp = c.LeaveGroup(ctx, r)
	case *kmsg.SyncGroupRequest:
		resp = c.SyncGroup(ctx, r)
	case *kmsg.DescribeGroupsRequest:
		resp = c.DescribeGroups(ctx, r)
	case *kmsg.ListGroupsRequest:
		resp = c.ListGroups(ctx, r)
	case *kmsg.DeleteGroupsRequest:
		resp = c.DeleteGroups(ctx, r)
	default:
		f.t.Fatalf("key %d not served", key)
	}
	if resp.GetVersion() != r.GetVersion() {
		f.t.Fatalf("key %d: response version %d for request version %d", key, resp.GetVersion(), r.GetVersion())
	}
	b := resp.AppendTo(nil)
	for i := range body {
		body[i] = 0xAA
	}
	back := r.ResponseKind()
	back.SetVersion(resp.GetVersion())
	if err := back.ReadFrom(b); err != nil {
		f.t.Fatalf("key %d v%d: response does not decode: %v", key, resp.GetVersion(), err)
	}
	return back
}

// drive makes one member of a group do what a well-behaved client would
// do next: rejoin with its protocols while the group prepares a rebalance,
// sync (the leader with an assignment for everyone), or heartbeat.
func (f *fuzzer) drive(ctx context.Context) {
	id := f.group()
	g := lookupGroup(f.c, id)
	if g == nil {
		return
	}
	g.mu.Lock()
	if len(g.members) == 0 {
		g.mu.Unlock()
		return
	}
	m := g.members[f.pick(len(g.members))]
	st, gen, leader := g.state, g.generation, g.leader
	memberID, instance := m.id, m.instance
	var protos []kmsg.JoinGroupRequestProtocol
	for _, p := range m.protocols {
		protos = append(protos, kmsg.JoinGroupRequestProtocol{Name: p.name, Metadata: p.metadata})
	}
	session, rebalance := m.sessionTimeout, m.rebalanceTimeout
	var assign []kmsg.SyncGroupRequestGroupAssignment
	if memberID == leader {
		for _, x := range g.members {
			assign = append(assign, kmsg.SyncGroupRequestGroupAssignment{MemberID: x.id, MemberAssignment: []byte(x.id)})
		}
	}
	g.mu.Unlock()
	switch st {
	case statePreparingRebalance:
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 7
		req.Group, req.MemberID, req.InstanceID = id, memberID, instance
		req.SessionTimeoutMillis = int32(session / time.Millisecond)
		req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
		req.ProtocolType = "consumer"
		req.Protocols = protos
		f.call(ctx, req)
	case stateCompletingRebalance:
		f.call(ctx, &kmsg.SyncGroupRequest{Version: 5, Group: id, Generation: gen, MemberID: memberID, InstanceID: instance, GroupAssignment: assign})
	default:
		f.call(ctx, &kmsg.HeartbeatRequest{Version: 4, Group: id, Generation: gen, MemberID: memberID, InstanceID: instance})
	}
}

// check verifies every group's invariants, and learns the member ids and
// generations the clients would have learned from responses the cancelled
// contexts dropped.
func (f *fuzzer) check() {
	waitWrites(f.c)
	groups, _ := f.c.snapshot()
	for _, g := range groups {
		g.mu.Lock()
		err := g.checkLocked()
		for _, m := range g.members {
			f.learn(m.id, g.generation)
		}
		g.mu.Unlock()
		if err != nil {
			f.t.Fatal(err)
		}
	}
}

func FuzzCoordinator(f *testing.F) {
	eng := fuzzEngine(f)
	f.Add([]byte{})
	// Two members join g0 (v7, MEMBER_ID_REQUIRED then again), time
	// passes, syncs, heartbeats, commits, a leave.
	f.Add([]byte{0, 7, 0, 0, 3, 0, 0, 0, 1, 0, 1, 7, 0, 2, 3, 0, 0, 0, 1, 0, 7, 20, 2, 5, 0, 2, 3, 3, 1, 0, 3, 4, 0, 2, 3, 3, 5, 8, 0, 2, 3, 3, 0, 0, 4, 4, 0, 2, 0})
	f.Add([]byte{0, 5, 0, 0, 0, 0, 0, 0, 1, 1, 0, 7, 12, 1, 5, 0, 0, 1, 0, 0, 0, 0, 2, 0, 8, 40, 3, 4, 0, 2, 0, 2})
	f.Add([]byte{9, 3, 20, 0, 0, 0, 1, 'g', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1, 5, 1, 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0})
	// A group forms and commits, the broker restarts, the group unloads
	// and loads again.
	f.Add([]byte{0, 7, 0, 0, 3, 0, 0, 0, 1, 0, 7, 20, 10, 10, 10, 5, 0, 2, 3, 3, 1, 0, 250, 3, 0, 0, 0, 251, 0, 10, 250})
	f.Fuzz(func(t *testing.T, data []byte) {
		fz := newFuzzer(t, eng, data)
		defer func() { fz.c.Close() }()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for steps := 0; len(fz.data) > 0 && steps < 200; steps++ {
			fz.step(ctx)
			fz.check()
		}
		fz.clk.Advance(time.Hour)
		fz.check()
		fz.restart()
	})
}

// fuzzEngine opens an in-memory engine with topics "t" (3 partitions) and
// "u" (1).
func fuzzEngine(tb testing.TB) *engine.Engine {
	eng, err := engine.Open(tb.TempDir(), engine.Options{Store: engine.NewMemoryStore(), Logger: quiet, RetentionCheckInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close() })
	for name, n := range map[string]int32{"t": 3, "u": 1} {
		if err := eng.CreateTopic(name, engine.TopicConfig{Partitions: n}); err != nil {
			tb.Fatal(err)
		}
	}
	return eng
}

// durable describes what of c's groups (of one partition, or all with
// partition -1) must survive a restart, by group id: every group's committed
// offsets, and a stable group's generation, protocol, leader, member ids and
// assignments. (A rebalancing group comes back as its last completed
// rebalance left it: only its offsets are certain.)
func durable(c *Coordinator, partition int32) (offsets, stable map[string]string) {
	groups, _ := c.snapshot()
	offsets, stable = make(map[string]string), make(map[string]string)
	for _, g := range groups {
		if partition >= 0 && g.shard.id != partition {
			continue
		}
		g.mu.Lock()
		var desc string
		for _, tp := range g.sortedOffsetsLocked() {
			o := g.offsets[tp]
			desc += fmt.Sprintf("%s/%d=%d,%d,%q ", tp.Topic, tp.Partition, o.offset, o.epoch, o.metadata)
		}
		offsets[g.id] = desc
		if g.state == stateStable {
			desc = fmt.Sprintf("gen %d %s/%s leader %s:", g.generation, g.protocolType, g.protocol, g.leader)
			for _, m := range g.members {
				desc += fmt.Sprintf(" %s(%v)=%q", m.id, m.instance != nil, m.assignment)
			}
			stable[g.id] = desc
		}
		g.mu.Unlock()
	}
	return offsets, stable
}

// compareDurable checks that what was durable in c before is there now.
func compareDurable(t testing.TB, what string, c *Coordinator, partition int32, offsets, stable map[string]string) {
	t.Helper()
	nowOffsets, nowStable := durable(c, partition)
	for id, want := range offsets {
		if want != "" && nowOffsets[id] != want {
			t.Fatalf("%s: group %q has offsets\n\t%s\nhad\n\t%s", what, id, nowOffsets[id], want)
		}
	}
	for id, want := range stable {
		if nowStable[id] != want {
			t.Fatalf("%s: group %q is\n\t%s\nwas stable as\n\t%s", what, id, nowStable[id], want)
		}
	}
}

// restart closes the coordinator and starts another on the same engine,
// checking that it loads what the first had stored.
func (f *fuzzer) restart() {
	waitWrites(f.c)
	offsets, stable := durable(f.c, -1)
	f.c.Close()
	f.c = newCoordinator(f.eng, f.cfg, f.clk, testHooks{})
	if err := f.c.Err(); err != nil {
		f.t.Fatal(err)
	}
	compareDurable(f.t, "after a restart", f.c, -1, offsets, stable)
}

// reload unloads partition p of __consumer_offsets, checks that its groups
// are no longer served, and loads it again.
func (f *fuzzer) reload(p int32) {
	waitWrites(f.c)
	offsets, stable := durable(f.c, p)
	f.c.UnloadPartition(p)
	for id := range offsets {
		r := f.c.Heartbeat(context.Background(), &kmsg.HeartbeatRequest{Version: 4, Group: id})
		if r.ErrorCode != kerr.NotCoordinator.Code {
			f.t.Fatalf("heartbeat to group %q of an unloaded partition: %s", id, code(r.ErrorCode))
		}
	}
	if err := f.c.LoadPartition(p); err != nil {
		f.t.Fatal(err)
	}
	compareDurable(f.t, "after unload and load", f.c, p, offsets, stable)
}

// TestFuzzerReachesStable runs the fuzzer's step on random inputs and
// checks that its space of requests reaches stable groups with several
// members, so that fuzzing explores real rebalances.
func TestFuzzerReachesStable(t *testing.T) {
	eng := fuzzEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := rand.New(rand.NewPCG(1, 2))
	reached := map[state]int{}
	for range 300 {
		data := make([]byte, 2000)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		fz := newFuzzer(t, eng, data)
		for len(fz.data) > 0 {
			fz.step(ctx)
			fz.check()
			groups, _ := fz.c.snapshot()
			for _, g := range groups {
				g.mu.Lock()
				if len(g.members) >= 2 {
					reached[g.state]++
				}
				g.mu.Unlock()
			}
		}
		fz.c.Close()
	}
	t.Logf("steps in each state with 2+ members: %v", reached)
	for _, st := range []state{statePreparingRebalance, stateCompletingRebalance, stateStable} {
		if reached[st] == 0 {
			t.Errorf("never reached %v with 2+ members", st)
		}
	}
}
