package group_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
)

// server is engine + broker + netio on a loopback port, in-process.
type server struct {
	t    testing.TB
	dir  string
	addr string
	eng  *engine.Engine
	b    *broker.Broker
	srv  *netio.Server
	logs *logRecorder
}

// logRecorder is a slog.Handler keeping the messages of every record (at
// Debug and above), and passing them on to next.
type logRecorder struct {
	next slog.Handler
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder(next slog.Handler) *logRecorder {
	return &logRecorder{next: next, mu: new(sync.Mutex), msgs: new([]string)}
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	*l.msgs = append(*l.msgs, r.Message)
	l.mu.Unlock()
	if l.next.Enabled(ctx, r.Level) {
		return l.next.Handle(ctx, r)
	}
	return nil
}

func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{next: l.next.WithAttrs(as), mu: l.mu, msgs: l.msgs}
}

func (l *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{next: l.next.WithGroup(name), mu: l.mu, msgs: l.msgs}
}

// count returns how many records so far have message msg, and the total.
func (l *logRecorder) count(msg string) (n, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range *l.msgs {
		if m == msg {
			n++
		}
	}
	return n, len(*l.msgs)
}

func startServer(t testing.TB, dir string) *server {
	t.Helper()
	return startServerWith(t, dir, nil)
}

// startServerWith is startServer with engine and group settings changed by
// tweak (nil: none).
func startServerWith(t testing.TB, dir string, tweak func(*engine.Options, *group.Config)) *server {
	t.Helper()
	var out slog.Handler = slog.NewTextHandler(io.Discard, nil)
	if os.Getenv("EASEL_TEST_LOG") != "" {
		out = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	logs := newLogRecorder(out)
	log := slog.New(logs)
	eo, gc := engine.Options{Logger: log}, group.Config{InitialRebalanceDelay: 100 * time.Millisecond}
	if tweak != nil {
		tweak(&eo, &gc)
	}
	eng, err := engine.Open(dir, eo)
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(eng, broker.Config{DataDir: dir, Logger: log, Group: gc})
	srv, err := netio.Listen(netio.Config{Addr: "127.0.0.1:0", Logger: log}, b)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	s := &server{t: t, dir: dir, addr: srv.Addr().String(), eng: eng, b: b, srv: srv, logs: logs}
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	if s.eng == nil {
		return
	}
	s.b.Close()
	s.srv.Close()
	if err := s.eng.Close(); err != nil {
		s.t.Error(err)
	}
	s.eng = nil
}

func client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func createTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
}

// ledger records what a group's consumers were given.
type ledger struct {
	mu        sync.Mutex
	delivered map[int32]map[int64]int // partition → offset → deliveries
	floor     map[string]int64        // "member/partition" → committed offset when assigned
	bad       []string
}

func newLedger() *ledger {
	return &ledger{delivered: map[int32]map[int64]int{}, floor: map[string]int64{}}
}

func (l *ledger) assigned(member string, p int32, committed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor[fmt.Sprintf("%s/%d", member, p)] = committed
}

func (l *ledger) deliver(member string, r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.delivered[r.Partition]
	if m == nil {
		m = map[int64]int{}
		l.delivered[r.Partition] = m
	}
	m[r.Offset]++
	if f, ok := l.floor[fmt.Sprintf("%s/%d", member, r.Partition)]; ok && r.Offset < f && len(l.bad) < 10 {
		l.bad = append(l.bad, fmt.Sprintf("%s got %d/%d below the committed offset %d it was assigned at", member, r.Partition, r.Offset, f))
	}
}

// waitMore waits until n more records are delivered than now.
func (l *ledger) waitMore(t testing.TB, n int) {
	t.Helper()
	count := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		seen := 0
		for _, m := range l.delivered {
			for _, k := range m {
				seen += k
			}
		}
		return seen
	}
	from := count()
	waitFor(t, fmt.Sprintf("%d more records delivered", n), func() bool { return count() >= from+n })
}

// consumer is one group member polling in a goroutine.
type consumer struct {
	name       string
	cl         *kgo.Client
	cancel     context.CancelFunc
	done       chan struct{}
	assigns    atomic.Int32
	revokes    atomic.Int32
	heartbeats atomic.Int32 // Heartbeat round trips completed
	mu         sync.Mutex
	assigned   map[int32]bool
}

func startConsumer(t testing.TB, s *server, name, groupID, topic string, l *ledger, opts ...kgo.Opt) *consumer {
	t.Helper()
	adm := kadm.NewClient(client(t, s.addr))
	c := &consumer{name: name, done: make(chan struct{}), assigned: map[int32]bool{}}
	onAssigned := func(ctx context.Context, _ *kgo.Client, a map[string][]int32) {
		c.assigns.Add(1)
		// A member starts each partition it is given at the group's
		// committed offset: record it to check nothing below it comes.
		offs, err := adm.FetchOffsets(ctx, groupID)
		if err != nil {
			t.Errorf("%s: fetch offsets: %v", name, err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range a[topic] {
			c.assigned[p] = true
			committed := int64(0)
			if o, ok := offs.Lookup(topic, p); ok && o.At >= 0 {
				committed = o.At
			}
			l.assigned(name, p, committed)
		}
	}
	forget := func(r map[string][]int32) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range r[topic] {
			delete(c.assigned, p)
		}
	}
	onRevoked := func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
		c.revokes.Add(1)
		forget(r)
		// What kgo does when the hook is not overridden: commit what was
		// polled before giving partitions up (and before leaving on Close).
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Logf("%s: commit on revoke: %v", name, err)
		}
	}
	onLost := func(_ context.Context, _ *kgo.Client, r map[string][]int32) { forget(r) }
	opts = append([]kgo.Opt{
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.ClientID(name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(onAssigned),
		kgo.OnPartitionsRevoked(onRevoked),
		kgo.OnPartitionsLost(onLost),
		kgo.WithHooks(heartbeatCounter{&c.heartbeats}),
	}, opts...)
	c.cl = client(t, s.addr, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		for {
			fs := c.cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { l.deliver(name, r) })
			if ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// heartbeatCounter counts a client's Heartbeat responses.
type heartbeatCounter struct{ n *atomic.Int32 }

func (h heartbeatCounter) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key == 12 && e2e.Err() == nil {
		h.n.Add(1)
	}
}

// stop ends polling and closes the client, which commits and (for a
// dynamic member) leaves the group.
func (c *consumer) stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
	c.cl.Close()
	c.cancel = nil
}

func (c *consumer) partitions() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int32
	for p := range c.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TestConsumerGroupIntegration runs franz-go consumers against the broker:
// three members consume a 12-partition topic while records are produced and
// members join and leave; every record is processed, and no member is
// given a record below the committed offset it started a partition at.
func TestConsumerGroupIntegration(t *testing.T) {
	for _, bal := range []struct {
		name string
		opt  kgo.Opt
	}{
		{"eager-range", kgo.Balancers(kgo.RangeBalancer())},
		{"cooperative-sticky", kgo.Balancers(kgo.CooperativeStickyBalancer())},
	} {
		t.Run(bal.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, t.TempDir())
			adm := kadm.NewClient(client(t, s.addr))
			defer adm.Close()
			const topic, groupID = "events", "workers"
			createTopic(t, adm, topic, 12)
			l := newLedger()

			// Produce continuously while the group changes.
			prod := client(t, s.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
			stopProducing := make(chan struct{})
			produced := make(chan int, 1)
			var failed atomic.Int64
			go func() {
				defer prod.Close()
				n := 0
				for {
					select {
					case <-stopProducing:
						if err := prod.Flush(context.Background()); err != nil {
							failed.Add(1)
						}
						produced <- n
						return
					default:
					}
					for range 50 {
						prod.Produce(context.Background(), &kgo.Record{Key: []byte(strconv.Itoa(n)), Value: []byte("v")}, func(_ *kgo.Record, err error) {
							if err != nil {
								failed.Add(1)
							}
						})
						n++
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			var stopOnce sync.Once
			stop := func() int {
				stopOnce.Do(func() { close(stopProducing) })
				return <-produced
			}
			t.Cleanup(func() { stopOnce.Do(func() { close(stopProducing) }) })

			c1 := startConsumer(t, s, "c1", groupID, topic, l, bal.opt)
			c2 := startConsumer(t, s, "c2", groupID, topic, l, bal.opt)
			c3 := startConsumer(t, s, "c3", groupID, topic, l, bal.opt)
			waitFor(t, "three members share the partitions", func() bool {
				return len(c1.partitions())+len(c2.partitions())+len(c3.partitions()) == 12 &&
					len(c1.partitions()) > 0 && len(c2.partitions()) > 0 && len(c3.partitions()) > 0
			})
			l.waitMore(t, 200) // the group consumes for a while
			c2.stop()          // leaves
			c4 := startConsumer(t, s, "c4", groupID, topic, l, bal.opt)
			waitFor(t, "c4 gets partitions", func() bool { return len(c4.partitions()) > 0 })
			l.waitMore(t, 200)
			c1.stop()
			waitFor(t, "c3 and c4 share all partitions", func() bool {
				return len(c3.partitions())+len(c4.partitions()) == 12
			})
			n := stop()
			if failed.Load() != 0 {
				t.Fatalf("%d records failed to produce", failed.Load())
			}

			// Everything produced is eventually processed.
			ends, err := adm.ListEndOffsets(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
			if total != int64(n) {
				t.Fatalf("end offsets sum to %d, produced %d", total, n)
			}
			waitFor(t, "every record processed", func() bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				seen := 0
				for _, m := range l.delivered {
					seen += len(m)
				}
				return seen == n
			})
			c3.stop()
			c4.stop()

			l.mu.Lock()
			defer l.mu.Unlock()
			for _, b := range l.bad {
				t.Error(b)
			}
			dups := 0
			for _, m := range l.delivered {
				for _, k := range m {
					dups += k - 1
				}
			}
			// Once every member has left, the group's committed offsets are
			// the end offsets.
			offs, err := adm.FetchOffsets(context.Background(), groupID)
			if err != nil {
				t.Fatal(err)
			}
			ends.Each(func(o kadm.ListedOffset) {
				if c, ok := offs.Lookup(topic, o.Partition); !ok || c.At != o.Offset {
					t.Errorf("partition %d: committed %+v, end offset %d", o.Partition, c, o.Offset)
				}
			})
			t.Logf("%d records, %d redelivered (at or above the committed offset), assignments c1=%d c2=%d c3=%d c4=%d",
				n, dups, c1.assigns.Load(), c2.assigns.Load(), c3.assigns.Load(), c4.assigns.Load())
		})
	}
}

// TestStaticMemberRestartIntegration restarts a static member within its
// session timeout: the group does not rebalance (the other member is not
// revoked or assigned anything) and the restarted member gets its
// partitions back.
func TestStaticMemberRestartIntegration(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	adm := kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	createTopic(t, adm, "static", 6)
	l := newLedger()
	opts := []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(20 * time.Second)}
	a := startConsumer(t, s, "a", "g", "static", l, append(opts, kgo.InstanceID("instance-a"))...)
	b := startConsumer(t, s, "b", "g", "static", l, append(opts, kgo.InstanceID("instance-b"))...)
	waitFor(t, "both members assigned", func() bool {
		return len(a.partitions())+len(b.partitions()) == 6 && len(a.partitions()) > 0 && len(b.partitions()) > 0
	})
	aAssigns, aRevokes := a.assigns.Load(), a.revokes.Load()
	prepared, _ := s.logs.count("group: preparing rebalance")
	before := b.partitions()
	b.stop() // a static member does not leave the group on close
	b2 := startConsumer(t, s, "b2", "g", "static", l, append(opts, kgo.InstanceID("instance-b"))...)
	waitFor(t, "restarted member assigned", func() bool { return len(b2.partitions()) > 0 })
	if got := b2.partitions(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("restarted member got %v, had %v", got, before)
	}
	// A rebalance would start when b2 joins, before b2 is assigned
	// anything: none was prepared since b left. And a heartbeat of a's
	// that completes from now on would carry it to a.
	if n, _ := s.logs.count("group: preparing rebalance"); n != prepared {
		t.Fatalf("the broker prepared %d rebalances when the static member restarted", n-prepared)
	}
	hb := a.heartbeats.Load()
	waitFor(t, "two more heartbeats of a", func() bool { return a.heartbeats.Load() >= hb+2 })
	if a.assigns.Load() != aAssigns || a.revokes.Load() != aRevokes {
		t.Fatalf("the other member saw a rebalance: assigns %d→%d, revokes %d→%d",
			aAssigns, a.assigns.Load(), aRevokes, a.revokes.Load())
	}
	groups, err := adm.DescribeGroups(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	d := groups["g"]
	if d.State != "Stable" || len(d.Members) != 2 {
		t.Fatalf("group %+v", d)
	}
}

// TestOffsetsSurviveBrokerRestart commits through the broker, restarts
// engine and broker on the same directory, and fetches the same offsets.
func TestOffsetsSurviveBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	adm := kadm.NewClient(client(t, s.addr))
	createTopic(t, adm, "t", 3)
	ctx := context.Background()
	want := kadm.Offsets{}
	for p := int32(0); p < 3; p++ {
		want.Add(kadm.Offset{Topic: "t", Partition: p, At: int64(10 * (p + 1)), LeaderEpoch: -1, Metadata: "m" + strconv.Itoa(int(p))})
	}
	resp, err := adm.CommitOffsets(ctx, "g", want)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	adm.Close()
	s.stop()

	s = startServer(t, dir)
	adm = kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	got, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	want.Each(func(o kadm.Offset) {
		g, ok := got.Lookup("t", o.Partition)
		if !ok || g.At != o.At || g.Metadata != o.Metadata {
			t.Errorf("partition %d: got %+v, want %+v", o.Partition, g, o)
		}
	})
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["g"]; !ok {
		t.Fatalf("group not listed after restart: %v", listed)
	}
}

// TestApiVersionsListsGroupAPIs checks the broker advertises exactly the
// versions of group.Versions.
func TestApiVersionsListsGroupAPIs(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	cl := client(t, s.addr)
	defer cl.Close()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for key, want := range group.Versions {
		if got[key] != want {
			t.Errorf("key %d: advertised %v, want %v", key, got[key], want)
		}
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeleteTopicDeletesOffsets commits through the broker, deletes the
// topic with DeleteTopics and creates it again: the group has no offsets
// for it, also after a restart.
func TestDeleteTopicDeletesOffsets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	adm := kadm.NewClient(client(t, s.addr))
	createTopic(t, adm, "doomed", 2)
	createTopic(t, adm, "kept", 1)
	ctx := context.Background()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "doomed", Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "doomed", Partition: 1, At: 6, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "kept", Partition: 0, At: 7, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, "g", offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if resp, err := adm.DeleteTopics(ctx, "doomed"); err != nil || resp.Error() != nil {
		t.Fatalf("delete: %v %v", err, resp.Error())
	}
	createTopic(t, adm, "doomed", 2)
	check := func(when string) {
		got, err := adm.FetchOffsets(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Lookup("doomed", 0); ok {
			t.Fatalf("%s: offsets of the deleted topic remain: %v", when, got)
		}
		if o, ok := got.Lookup("kept", 0); !ok || o.At != 7 {
			t.Fatalf("%s: offsets of the other topic: %v", when, got)
		}
	}
	check("after the delete")
	adm.Close()
	s.stop()
	s = startServer(t, dir)
	adm = kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	check("after a restart")
}

// TestConsumerOffsetsReadable consumes __consumer_offsets with a Kafka
// client, as monitoring tools do, and decodes what a commit wrote there.
func TestConsumerOffsetsReadable(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	adm := kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	createTopic(t, adm, "watched", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "watched", Partition: 0, At: 42, LeaderEpoch: 3, Metadata: "md"})
	if resp, err := adm.CommitOffsets(ctx, "monitored", offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	p := group.PartitionFor("monitored", group.DefaultOffsetsTopicNumPartitions)
	cl := client(t, s.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		engine.ConsumerOffsetsTopic: {p: kgo.NewOffset().AtStart()},
	}))
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("no offset commit record read")
		}
		var found bool
		fs.EachRecord(func(r *kgo.Record) {
			var k kmsg.OffsetCommitKey
			var v kmsg.OffsetCommitValue
			if k.ReadFrom(r.Key) != nil || k.Version != 1 || v.ReadFrom(r.Value) != nil {
				return
			}
			if k.Group != "monitored" || k.Topic != "watched" || v.Offset != 42 || v.LeaderEpoch != 3 || v.Metadata != "md" {
				t.Fatalf("record %+v %+v", k, v)
			}
			found = true
		})
		if found {
			return
		}
	}
}
