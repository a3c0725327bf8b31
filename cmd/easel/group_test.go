package main

// Consumer-group tests against the binary: a librdkafka group consumer
// (kcat -G) resuming from its commits, commits surviving SIGKILL, and a
// franz-go group keeping its members across a restart.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/internal/freeport"
)

// produceValues produces "<prefix>-<i>" for i in [from, to) and waits for
// every ack.
func produceValues(t *testing.T, cl *kgo.Client, topic, prefix string, from, to int) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var rs []*kgo.Record
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestKcatGroupResumes consumes a topic with kcat -G, produces more, and
// checks that a second run of the same group reads exactly the new records:
// librdkafka's group protocol and offset commits work against the broker.
func TestKcatGroupResumes(t *testing.T) {
	t.Parallel()
	kc := kcat(t)
	p := startEasel(t, "--data-dir", t.TempDir(), "--num-partitions", "3")
	const topic, group = "grouped", "kcat-group"
	cl := newClient(t, p.addr, kgo.AllowAutoTopicCreation())
	produceValues(t, cl, topic, "first", 0, 60)

	consume := func(want int) [][]byte {
		ctx := testContext(t, 90*time.Second)
		out := runKcat(ctx, t, kc, nil, "-b", p.addr, "-G", group, "-e", "-q", "-f", "%s\n",
			"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", topic)
		lines := bytes.Fields(out)
		if len(lines) != want {
			t.Fatalf("kcat -G read %d records, want %d:\n%s", len(lines), want, out)
		}
		return lines
	}
	first := consume(60)
	for _, l := range first {
		if !bytes.HasPrefix(l, []byte("first-")) {
			t.Fatalf("first run read %q", l)
		}
	}
	produceValues(t, cl, topic, "second", 0, 25)
	for _, l := range consume(25) {
		if !bytes.HasPrefix(l, []byte("second-")) {
			t.Fatalf("second run read %q: the group did not resume at its commits", l)
		}
	}
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// TestCommittedOffsetsSurviveKill commits offsets, kills the broker with
// SIGKILL, restarts it on the same data directory and fetches them back.
func TestCommittedOffsetsSurviveKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startEasel(t, "--data-dir", dir)
	ctx := testContext(t, time.Minute)
	adm := kadm.NewClient(newClient(t, p.addr))
	const topic, group = "committed", "kill-group"
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	want := kadm.Offsets{}
	for part := range int32(4) {
		want.Add(kadm.Offset{Topic: topic, Partition: part, At: int64(100 + part), LeaderEpoch: -1, Metadata: fmt.Sprint("m", part)})
	}
	resp, err := adm.CommitOffsets(ctx, group, want)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if code := p.signal(syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGKILL", code)
	}

	p = startEasel(t, "--data-dir", dir)
	p.waitLog(regexp.MustCompile(`msg="engine opened".* clean=false`), 30*time.Second)
	adm = kadm.NewClient(newClient(t, p.addr))
	got, err := adm.FetchOffsets(ctx, group)
	if err != nil || got.Error() != nil {
		t.Fatalf("fetch: %v %v", err, got.Error())
	}
	for part := range int32(4) {
		o, ok := got.Lookup(topic, part)
		if !ok || o.At != int64(100+part) || o.Metadata != fmt.Sprint("m", part) {
			t.Fatalf("partition %d after SIGKILL: %+v (found %v), want offset %d", part, o, ok, 100+part)
		}
	}
}

// stableAddr is a TCP proxy on a fixed loopback address in front of a
// broker that restarts: it accepts connections while the broker is down and
// connects them once it is back (dialling every 10 ms), as a load balancer
// or socket activation would. Without it a single-broker client sees
// "connection refused" between the two processes, and franz-go does not
// retry that for group requests: it ends its group session, which would
// hide what the broker kept.
type stableAddr struct {
	ln      net.Listener
	backend atomic.Value // string: the broker's address
}

func newStableAddr(t *testing.T) *stableAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stableAddr{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *stableAddr) addr() string { return s.ln.Addr().String() }

func (s *stableAddr) serve(c net.Conn) {
	defer c.Close()
	var b net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		var err error
		if backend, _ := s.backend.Load().(string); backend != "" {
			if b, err = net.Dial("tcp", backend); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done // either side closing ends both
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, outside the ephemeral range (package freeport), so that a restarted
// broker can listen where it listened before.
func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// groupMember is a franz-go group consumer counting its rebalance
// callbacks and the records it got.
type groupMember struct {
	cl                      *kgo.Client
	assigns, revokes, losts atomic.Int32
	records                 atomic.Int64
	done                    chan struct{}
}

func startMember(t *testing.T, addr, group, topic, name string) *groupMember {
	t.Helper()
	m := &groupMember{done: make(chan struct{})}
	m.cl = newClient(t, addr,
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ClientID(name),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(30*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.AutoCommitInterval(200*time.Millisecond), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { m.assigns.Add(1) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			m.revokes.Add(1)
			cl.CommitUncommittedOffsets(ctx)
		}),
		kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) { m.losts.Add(1) }),
	)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			m.records.Add(int64(m.cl.PollFetches(ctx).NumRecords()))
		}
	}()
	t.Cleanup(func() { cancel(); <-m.done })
	return m
}

func (m *groupMember) callbacks() string {
	return fmt.Sprintf("assigned %d revoked %d lost %d", m.assigns.Load(), m.revokes.Load(), m.losts.Load())
}

// waitUntil polls cond (in tests only) until it holds or the context ends.
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// committedAtEnd reports whether group's committed offsets of topic are
// its end offsets.
func committedAtEnd(ctx context.Context, adm *kadm.Client, group, topic string) bool {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil || offs.Error() != nil {
		return false
	}
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		o, found := offs.Lookup(topic, e.Partition)
		if found && o.At != e.Offset || !found && e.Offset != 0 {
			ok = false
		}
	})
	return ok
}

// TestGroupSurvivesRestart runs a two-member franz-go consumer group, stops
// the broker with SIGTERM and starts it again on the same address and data
// directory (clients reach it through stableAddr, which holds their new
// connections while it is down): the members carry on with their ids,
// generation and partitions (no rebalance callback, no rebalance on the
// broker), consuming and committing what is produced after the restart.
// Then the members leave, the broker is killed with SIGKILL, and the group's
// offsets are there after the next start.
func TestGroupSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir, listen, proxy := t.TempDir(), freeAddr(t), newStableAddr(t)
	proxy.backend.Store(listen)
	addr := proxy.addr()
	args := []string{"--data-dir", dir, "--listen", listen, "--advertise", addr, "--log-level", "debug"}
	p := startEasel(t, args...)
	ctx := testContext(t, 3*time.Minute)
	const topic, group = "members", "restart-group"
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// Keyed, so that both members get records.
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	produce := func(prefix string) {
		var rs []*kgo.Record
		for i := range 40 {
			rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce("before")

	a := startMember(t, addr, group, topic, "member-a")
	b := startMember(t, addr, group, topic, "member-b")
	describe := func() (string, []string) {
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return "", nil
		}
		d := gs[group]
		var ids []string
		for _, m := range d.Members {
			ids = append(ids, m.MemberID)
		}
		slices.Sort(ids)
		return d.State, ids
	}
	waitUntil(ctx, t, "both members consumed everything and committed it", func() bool {
		st, ids := describe()
		return st == "Stable" && len(ids) == 2 && a.records.Load()+b.records.Load() == 40 &&
			a.records.Load() > 0 && b.records.Load() > 0 && committedAtEnd(ctx, adm, group, topic)
	})
	_, idsBefore := describe()
	cbA, cbB := a.callbacks(), b.callbacks()

	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	p = startEasel(t, args...)
	produce("after")
	waitUntil(ctx, t, "the members consumed and committed what came after the restart", func() bool {
		return a.records.Load()+b.records.Load() >= 80 && committedAtEnd(ctx, adm, group, topic)
	})
	st, idsAfter := describe()
	if st != "Stable" || !slices.Equal(idsAfter, idsBefore) {
		t.Fatalf("after the restart: state %s members %v, before %v", st, idsAfter, idsBefore)
	}
	if a.callbacks() != cbA || b.callbacks() != cbB {
		t.Fatalf("a member saw a rebalance: a %s (was %s), b %s (was %s)", a.callbacks(), cbA, b.callbacks(), cbB)
	}
	if n := a.records.Load() + b.records.Load(); n != 80 {
		t.Fatalf("%d records consumed, want 80 (the members resumed from their commits)", n)
	}
	for _, re := range []string{`msg="group: preparing rebalance"`, `msg="group: rebalanced"`, `msg="group: member session timed out"`} {
		if p.hasLog(regexp.MustCompile(re)) {
			t.Fatalf("the restarted broker logged %s:\n%s", re, p.logs)
		}
	}

	// Offsets across SIGKILL: the members leave, the broker is killed.
	a.cl.Close()
	b.cl.Close()
	waitUntil(ctx, t, "the group is empty", func() bool { st, _ := describe(); return st == "Empty" })
	if code := p.signal(syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGKILL", code)
	}
	p = startEasel(t, args...)
	p.waitLog(regexp.MustCompile(`msg="engine opened".* clean=false`), 30*time.Second)
	if !committedAtEnd(ctx, adm, group, topic) {
		offs, err := adm.FetchOffsets(ctx, group)
		t.Fatalf("offsets after SIGKILL: %v %v", offs, err)
	}
	if st, ids := describe(); st != "Empty" || len(ids) != 0 {
		t.Fatalf("after SIGKILL: state %s members %v, want the stored empty group", st, ids)
	}
}
