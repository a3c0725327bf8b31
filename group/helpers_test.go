package group

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// fakeClock is a manual clock: timers fire, in deadline order, only inside
// Advance, on the goroutine that calls it.
type fakeClock struct {
	mu     sync.Mutex
	base   time.Time
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Duration
	f    func()
	done bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + max(d, 0), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.now)
}

// Advance moves the clock forward by d, firing every timer that comes due,
// including timers that fired timers set.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now + d
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		live := c.timers[:0]
		for _, t := range c.timers {
			if t.done {
				continue
			}
			live = append(live, t)
			if t.at <= target && (next == nil || t.at < next.at) {
				next = t
			}
		}
		clear(c.timers[len(live):])
		c.timers = live
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		next.done = true
		c.now = max(c.now, next.at)
		c.mu.Unlock()
		next.f()
	}
}

// pendingTimers counts the timers that have not fired or been stopped.
func (c *fakeClock) pendingTimers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	t     testing.TB
	dir   string
	eng   *engine.Engine
	clk   *fakeClock
	c     *Coordinator
	cfg   Config
	opts  engine.Options // for engine.Open; Logger, RetentionCheckInterval and Now are set by open
	hooks testHooks
}

// newHarness opens an engine in a temporary directory with topics "t" (3
// partitions) and "u" (1), and a coordinator on a fake clock. Unless cfg
// says otherwise, __consumer_offsets gets 5 partitions (fewer files per
// test; the placement of groups is the same function).
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	if cfg.OffsetsTopicNumPartitions == 0 {
		cfg.OffsetsTopicNumPartitions = 5
	}
	h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: cfg}
	h.open()
	if err := h.c.Err(); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int32{"t": 3, "u": 1} {
		if err := h.eng.CreateTopic(name, engine.TopicConfig{Partitions: n}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) open() {
	h.openEngine()
	h.openCoordinator()
}

func (h *harness) openEngine() {
	opts := h.opts
	opts.Logger, opts.RetentionCheckInterval, opts.Now = quiet, -1, h.clk.Now
	eng, err := engine.Open(h.dir, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
}

func (h *harness) openCoordinator() {
	cfg := h.cfg
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	cfg.Now = h.clk.Now
	h.c = newCoordinator(h.eng, cfg, h.clk, h.hooks)
}

func (h *harness) close() {
	if h.c != nil {
		h.c.Close()
		h.c = nil
	}
	if h.eng != nil {
		if err := h.eng.Close(); err != nil {
			h.t.Error(err)
		}
		h.eng = nil
	}
}

// restart closes the coordinator and engine and opens both again on the
// same directory.
func (h *harness) restart() {
	h.close()
	h.open()
}

// grp returns the live group id, or nil.
func (h *harness) grp(id string) *group { return lookupGroup(h.c, id) }

// lookupGroup returns c's live group id, or nil.
func lookupGroup(c *Coordinator, id string) *group {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.shardFor(id).groups[id]
}

// eventually waits (polling, in tests only) until cond holds for group id.
func (h *harness) eventually(id string, what string, cond func(g *group) bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if g := h.grp(id); g != nil {
			g.mu.Lock()
			ok := cond(g)
			g.mu.Unlock()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("group %s: timed out waiting for %s", id, what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (h *harness) state(id string) state {
	g := h.grp(id)
	if g == nil {
		return stateDead
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

func (h *harness) checkInvariants(id string) {
	h.t.Helper()
	if g := h.grp(id); g != nil {
		g.mu.Lock()
		err := g.checkLocked()
		g.mu.Unlock()
		if err != nil {
			h.t.Fatal(err)
		}
	}
}

// tm is a test member: what a client remembers between requests.
type tm struct {
	group    string
	id       string
	instance *string
	gen      int32
	protos   []kmsg.JoinGroupRequestProtocol
	version  int16
	session  time.Duration
	rebal    time.Duration
	leader   bool
	members  []kmsg.JoinGroupResponseMember
	protocol string
}

func newTM(group string, version int16, protos ...string) *tm {
	m := &tm{group: group, version: version, session: 10 * time.Second, rebal: 30 * time.Second, gen: -1}
	for _, p := range protos {
		m.protos = append(m.protos, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: []byte("md-" + p)})
	}
	return m
}

func (m *tm) static(instance string) *tm {
	m.instance = &instance
	return m
}

func (m *tm) joinReq() *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = m.version
	req.Group = m.group
	req.MemberID = m.id
	req.InstanceID = m.instance
	req.SessionTimeoutMillis = int32(m.session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(m.rebal / time.Millisecond)
	req.ProtocolType = "consumer"
	req.Protocols = m.protos
	return req
}

// join sends JoinGroup (again with the new id after MEMBER_ID_REQUIRED) and
// records the result in m.
func (h *harness) join(ctx context.Context, m *tm) *kmsg.JoinGroupResponse {
	resp := h.c.JoinGroup(ctx, m.joinReq())
	if resp.ErrorCode == kerr.MemberIDRequired.Code {
		m.id = resp.MemberID
		resp = h.c.JoinGroup(ctx, m.joinReq())
	}
	if resp.ErrorCode == 0 {
		m.id = resp.MemberID
		m.gen = resp.Generation
		m.leader = resp.LeaderID == resp.MemberID
		m.members = resp.Members
		if resp.Protocol != nil {
			m.protocol = *resp.Protocol
		}
	}
	return resp
}

// joinAsync runs join in a goroutine.
func (h *harness) joinAsync(m *tm) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- h.join(context.Background(), m) }()
	return ch
}

func (h *harness) syncReq(m *tm, assign map[string]string) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = min(m.version, 5)
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	for id, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: []byte(a)})
	}
	return req
}

func (h *harness) sync(m *tm, assign map[string]string) *kmsg.SyncGroupResponse {
	return h.c.SyncGroup(context.Background(), h.syncReq(m, assign))
}

func (h *harness) syncAsync(m *tm) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	req := h.syncReq(m, nil)
	go func() { ch <- h.c.SyncGroup(context.Background(), req) }()
	return ch
}

func (h *harness) heartbeat(m *tm) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = min(m.version, 4)
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	return h.c.Heartbeat(context.Background(), req).ErrorCode
}

func (h *harness) leave(m *tm) int16 {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 4
	req.Group = m.group
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m.id, InstanceID: m.instance}}
	resp := h.c.LeaveGroup(context.Background(), req)
	if resp.ErrorCode != 0 {
		return resp.ErrorCode
	}
	return resp.Members[0].ErrorCode
}

// commit commits offsets topic/partition → offset from m (m may be nil
// for a simple consumer: generation -1, no member id).
func (h *harness) commit(group string, m *tm, offsets map[string]map[int32]int64) *kmsg.OffsetCommitResponse {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = group
	req.Generation = -1
	if m != nil {
		req.Generation = m.gen
		req.MemberID = m.id
		req.InstanceID = m.instance
	}
	for topic, ps := range offsets {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for p, o := range ps {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition = p
			rp.Offset = o
			rp.LeaderEpoch = 7
			md := fmt.Sprintf("md-%s-%d", topic, p)
			rp.Metadata = &md
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return h.c.OffsetCommit(context.Background(), req)
}

// commitCodes flattens a commit response to "topic/partition" → code.
func commitCodes(resp *kmsg.OffsetCommitResponse) map[string]int16 {
	out := make(map[string]int16)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[fmt.Sprintf("%s/%d", t.Topic, p.Partition)] = p.ErrorCode
		}
	}
	return out
}

// fetch returns the committed offsets (v7, all topics when topics is nil)
// as "topic/partition" → offset.
func (h *harness) fetch(group string, topics map[string][]int32) (map[string]int64, int16) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = group
	if topics != nil {
		req.Topics = []kmsg.OffsetFetchRequestTopic{}
		for t, ps := range topics {
			req.Topics = append(req.Topics, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: ps})
		}
	}
	resp := h.c.OffsetFetch(context.Background(), req)
	out := make(map[string]int64)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				h.t.Fatalf("fetch %s/%d: %v", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			out[fmt.Sprintf("%s/%d", t.Topic, p.Partition)] = p.Offset
		}
	}
	return out, resp.ErrorCode
}

// recv waits for one value from ch.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// noRecv checks that ch has nothing yet.
func noRecv[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s returned early", what)
	case <-time.After(2 * time.Millisecond):
	}
}

func code(c int16) string {
	if c == 0 {
		return "NONE"
	}
	if e := kerr.ErrorForCode(c); e != nil {
		return e.Error()
	}
	return fmt.Sprint(c)
}

func wantCode(t testing.TB, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %s, want %s", what, code(got), code(want))
	}
}

// stableGroup forms a stable group of ms (all joined and synced), leader
// assigning "a-<member id>" to each; it returns the leader.
func (h *harness) stableGroup(ms ...*tm) *tm {
	h.t.Helper()
	id := ms[0].group
	chs := make([]<-chan *kmsg.JoinGroupResponse, len(ms))
	for i, m := range ms {
		chs[i] = h.joinAsync(m)
	}
	h.eventually(id, "all joined", func(g *group) bool {
		return g.state == stateCompletingRebalance ||
			g.state == statePreparingRebalance && g.awaitingJoin == len(ms) && len(g.pending) == 0
	})
	for h.state(id) == statePreparingRebalance {
		h.clk.Advance(time.Second)
	}
	var leader *tm
	for i, m := range ms {
		resp := recv(h.t, chs[i], "join")
		wantCode(h.t, "join", resp.ErrorCode, 0)
		if m.leader {
			leader = m
		}
	}
	if leader == nil {
		h.t.Fatal("no leader")
	}
	syncs := make([]<-chan *kmsg.SyncGroupResponse, len(ms))
	for i, m := range ms {
		if m != leader {
			syncs[i] = h.syncAsync(m)
		}
	}
	assign := make(map[string]string)
	for _, mem := range leader.members {
		assign[mem.MemberID] = "a-" + mem.MemberID
	}
	h.eventually(id, "followers synced", func(g *group) bool {
		n := 0
		for _, m := range g.members {
			if m.sync != nil {
				n++
			}
		}
		return n == len(ms)-1
	})
	resp := h.sync(leader, assign)
	wantCode(h.t, "leader sync", resp.ErrorCode, 0)
	for i, m := range ms {
		if m == leader {
			continue
		}
		r := recv(h.t, syncs[i], "sync")
		wantCode(h.t, "follower sync", r.ErrorCode, 0)
		if string(r.MemberAssignment) != "a-"+m.id {
			h.t.Fatalf("member %s got assignment %q", m.id, r.MemberAssignment)
		}
	}
	if st := h.state(id); st != stateStable {
		h.t.Fatalf("state %v after sync", st)
	}
	h.checkInvariants(id)
	return leader
}

// waitWrites waits until c's writers have appended everything queued and run
// every completion, so that the groups' states no longer change on their own.
func waitWrites(c *Coordinator) {
	c.mu.RLock()
	var ws []*writer
	for _, s := range c.shards {
		if s.w != nil {
			ws = append(ws, s.w)
		}
	}
	c.mu.RUnlock()
	for _, w := range ws {
		w.wait()
	}
}
