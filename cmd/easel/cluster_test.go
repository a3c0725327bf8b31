package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// procCluster is a cluster of easel child processes on 127.0.0.1, each
// with its own Kafka, raft and gossip ports and data directory, kept across
// restarts.
type procCluster struct {
	t      *testing.T
	ids    []int32
	kafka  map[int32]string
	raft   map[int32]string
	gossip map[int32]string
	dirs   map[int32]string
	procs  map[int32]*proc
	voters string
	extra  map[int32][]string // more flags for a broker
}

func newProcCluster(t *testing.T, ids ...int32) *procCluster {
	c := newProcAddrs(t, ids...)
	for _, id := range ids {
		c.start(id)
	}
	return c
}

// newProcAddrs picks the brokers' addresses and directories, starting none.
func newProcAddrs(t *testing.T, ids ...int32) *procCluster {
	c := &procCluster{t: t, ids: ids, kafka: map[int32]string{}, raft: map[int32]string{}, gossip: map[int32]string{},
		dirs: map[int32]string{}, procs: map[int32]*proc{}, extra: map[int32][]string{}}
	var vs []string
	for _, id := range ids {
		c.kafka[id], c.raft[id], c.gossip[id], c.dirs[id] = freeAddr(t), freeAddr(t), freeAddr(t), t.TempDir()
		vs = append(vs, fmt.Sprintf("%d@%s", id, c.raft[id]))
	}
	c.voters = strings.Join(vs, ",")
	return c
}

func (c *procCluster) start(id int32) {
	c.t.Helper()
	var join []string
	for _, o := range c.ids {
		if o != id {
			join = append(join, c.gossip[o])
		}
	}
	p := launch(c.t, append([]string{"--listen", c.kafka[id], "--data-dir", c.dirs[id], "--node-id", fmt.Sprint(id),
		"--controller-voters", c.voters, "--gossip-listen", c.gossip[id], "--join", strings.Join(join, ","),
		"--cluster-timing", "fast", "--default-replication-factor", "3"}, c.extra[id]...)...)
	p.waitLog(startedRE, 60*time.Second)
	p.addr = c.kafka[id]
	c.procs[id] = p
}

// kill SIGKILLs a broker.
func (c *procCluster) kill(id int32) {
	c.t.Helper()
	p := c.procs[id]
	p.signal(syscall.SIGKILL, 30*time.Second)
	delete(c.procs, id)
}

// createClusterTopic waits until Metadata shows three brokers and a
// controller, then creates topic with replication factor 3.
func createClusterTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	waitUntil(ctx, t, "three brokers in Metadata", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		return err == nil && len(m.Brokers) == 3 && m.Controller >= 0
	})
	if res, err := adm.CreateTopic(ctx, partitions, 3, configs, topic); err != nil || res.Err != nil {
		t.Fatalf("create topic %s: %v %v", topic, err, res.Err)
	}
}

func (c *procCluster) seeds() []string {
	var out []string
	for _, id := range c.ids {
		out = append(out, c.kafka[id])
	}
	return out
}

func (c *procCluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	opts = append([]kgo.Opt{kgo.RetryTimeout(60 * time.Second), kgo.MetadataMinAge(100 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}, opts...)
	return newClient(c.t, strings.Join(c.seeds(), ","), append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...)}, opts...)...)
}

// Three easel processes form a cluster: kcat -L lists the three brokers and
// the leaders; franz-go keeps producing and consuming through a SIGKILL of
// a partition leader (its partitions get new leaders, the client follows
// them) and of the controller (a new one is elected and topics can still be
// created), and a killed broker restarts and rejoins. Replication is not
// there yet, so what a dead leader held is not on its successor: the test
// judges leadership and routing, and the records produced after the last
// failover are all read back.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers")
	}
	kc := kcat(t)
	c := newProcCluster(t, 1, 2, 3)
	ctx := testContext(t, 150*time.Second)
	adm := kadm.NewClient(c.client())
	createClusterTopic(ctx, t, adm, "orders", 3, nil)
	leaders := func() (map[int32]int32, int32) {
		m, err := adm.Metadata(ctx, "orders")
		if err != nil {
			return nil, -1
		}
		out := map[int32]int32{}
		for _, p := range m.Topics["orders"].Partitions {
			if p.Err != nil || p.Leader < 0 {
				return nil, -1
			}
			out[p.Partition] = p.Leader
		}
		return out, m.Controller
	}
	var lead map[int32]int32
	waitUntil(ctx, t, "a leader for every partition", func() bool { lead, _ = leaders(); return len(lead) == 3 })

	// kcat (librdkafka) sees the three brokers and the same leaders (once
	// the broker asked hosts what it leads: until then it reports those
	// partitions without a leader).
	var kcatOut []byte
	waitUntil(ctx, t, "kcat -L showing the three brokers and the same leaders", func() bool {
		kcatOut = runKcat(ctx, t, kc, nil, "-L", "-J", "-b", c.kafka[1], "-t", "orders", "-m", "20")
		var md kcatMetadata
		if err := json.Unmarshal(kcatOut, &md); err != nil {
			t.Fatalf("kcat -L -J output: %v\n%s", err, kcatOut)
		}
		var ids []int32
		for _, b := range md.Brokers {
			ids = append(ids, b.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []int32{1, 2, 3}) {
			return false
		}
		n := 0
		for _, tp := range md.Topics {
			for _, pa := range tp.Partitions {
				if pa.Leader != lead[pa.Partition] {
					return false
				}
				n++
			}
		}
		return n == 3
	})

	cl := c.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			r := &kgo.Record{Topic: "orders", Partition: int32(i % 3), Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s-%d: %v", prefix, i, err)
			}
		}
	}
	produce("first", 30)

	// SIGKILL the leader of partition 0: its partitions move, the client
	// follows.
	dead := lead[0]
	c.kill(dead)
	waitUntil(ctx, t, "partition 0 led by a live broker", func() bool {
		l, _ := leaders()
		return len(l) == 3 && l[0] != dead && l[1] != dead && l[2] != dead
	})
	produce("after-leader-kill", 30)
	c.start(dead)
	waitUntil(ctx, t, "the restarted broker listed again", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})

	// SIGKILL the controller: another is elected and still decides.
	_, ctrl := leaders()
	if ctrl < 0 {
		t.Fatal("no controller")
	}
	c.kill(ctrl)
	waitUntil(ctx, t, "a new controller", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		return err == nil && m.Controller >= 0 && m.Controller != ctrl && len(m.Brokers) == 2
	})
	if res, err := adm.CreateTopic(ctx, 1, 2, nil, "after-controller-kill"); err != nil || res.Err != nil {
		t.Fatalf("create topic after the controller died: %v %v", err, res.Err)
	}
	waitUntil(ctx, t, "leaders on live brokers", func() bool {
		l, _ := leaders()
		return len(l) == 3 && l[0] != ctrl && l[1] != ctrl && l[2] != ctrl
	})
	produce("last", 30)

	// Every record produced after the last failover is read back.
	cons := c.client(kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	want := map[string]bool{}
	for i := range 30 {
		want[fmt.Sprintf("last-%d", i)] = true
	}
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d records of the last round not consumed", len(want))
		}
		fs.EachRecord(func(r *kgo.Record) { delete(want, string(r.Value)) })
	}
	c.start(ctrl)
	waitUntil(ctx, t, "all three brokers back", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})

	// SIGTERM: a controlled shutdown moves the broker's leaderships away
	// before it exits, and it exits 0. (A fresh topic: without replication
	// the ISRs of "orders" have shrunk to the survivors of the kills.)
	if res, err := adm.CreateTopic(ctx, 3, 3, nil, "rolling"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	rolling := func() map[int32]int32 {
		m, err := adm.Metadata(ctx, "rolling")
		if err != nil {
			return nil
		}
		out := map[int32]int32{}
		for _, p := range m.Topics["rolling"].Partitions {
			if p.Err == nil && p.Leader >= 0 && len(p.ISR) == 3 {
				out[p.Partition] = p.Leader
			}
		}
		return out
	}
	var rl map[int32]int32
	waitUntil(ctx, t, "leaders for the new topic", func() bool { rl = rolling(); return len(rl) == 3 })
	stopping := rl[0]
	p := c.procs[stopping]
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	delete(c.procs, stopping)
	if p.hasLog(regexp.MustCompile(`controlled shutdown did not complete`)) {
		t.Fatalf("controlled shutdown failed:\n%s", p.logs)
	}
	waitUntil(ctx, t, "no partition led by the stopped broker", func() bool {
		m, err := adm.Metadata(ctx, "rolling")
		if err != nil {
			return false
		}
		for _, p := range m.Topics["rolling"].Partitions {
			if p.Err != nil || p.Leader < 0 || p.Leader == stopping {
				return false
			}
		}
		return true
	})
	for i := range 9 {
		r := &kgo.Record{Topic: "rolling", Partition: int32(i % 3), Value: []byte("after-sigterm")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce after SIGTERM: %v", err)
		}
	}
}

// No acknowledged record is lost: a franz-go producer with acks=all keeps
// writing to a topic with RF 3 and min.insync.replicas=2 while brokers are
// SIGKILLed one at a time (partition leaders and the controller) and
// restarted; afterwards every acknowledged record is read back at the
// partition and offset it was acknowledged at.
func TestClusterNoAcknowledgedLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers and kills them")
	}
	c := newProcCluster(t, 1, 2, 3)
	ctx := testContext(t, 150*time.Second)
	adm := kadm.NewClient(c.client())
	two := "2"
	createClusterTopic(ctx, t, adm, "acked", 3, map[string]*string{"min.insync.replicas": &two})
	fullISR := func() bool {
		m, err := adm.Metadata(ctx, "acked")
		if err != nil {
			return false
		}
		td := m.Topics["acked"]
		if len(td.Partitions) != 3 {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 || len(p.ISR) != 3 {
				return false
			}
		}
		return true
	}
	waitUntil(ctx, t, "every partition fully in sync", fullISR)

	type ack struct {
		partition int32
		offset    int64
	}
	var (
		mu     sync.Mutex
		acked  = map[string]ack{}
		failed int
	)
	cl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("acked"), kgo.ProducerLinger(0))
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; pctx.Err() == nil; i++ {
			v := strconv.Itoa(i)
			r := &kgo.Record{Value: []byte(v)}
			err := cl.ProduceSync(pctx, r).FirstErr()
			mu.Lock()
			if err == nil {
				acked[v] = ack{r.Partition, r.Offset}
			} else {
				failed++
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	_, ctrl := func() (int, int32) { m, _ := adm.BrokerMetadata(ctx); return 0, m.Controller }()
	victims := []int32{}
	for round := range 4 {
		before := count()
		waitUntil(ctx, t, "records acknowledged before the kill", func() bool { return count() >= before+50 })
		m, err := adm.Metadata(ctx, "acked")
		if err != nil {
			t.Fatal(err)
		}
		victim := m.Topics["acked"].Partitions[int32(round%3)].Leader
		if round == 3 {
			victim = ctrl
			if mm, err := adm.BrokerMetadata(ctx); err == nil && mm.Controller >= 0 {
				victim = mm.Controller
			}
		}
		victims = append(victims, victim)
		c.kill(victim)
		after := count()
		waitUntil(ctx, t, "records acknowledged with a broker down", func() bool { return count() >= after+50 })
		c.start(victim)
		waitUntil(ctx, t, "every partition fully in sync again", fullISR)
	}
	stop()
	wg.Wait()

	mu.Lock()
	want := maps.Clone(acked)
	nfailed := failed
	mu.Unlock()
	t.Logf("killed %v; %d records acknowledged, %d produce calls failed", victims, len(want), nfailed)
	cons := c.client(kgo.ConsumeTopics("acked"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			n := 0
			for v, a := range want {
				if n++; n <= 5 {
					t.Errorf("acknowledged record %s (partition %d offset %d) not read", v, a.partition, a.offset)
				}
			}
			t.Fatalf("%d acknowledged records lost", len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if a, ok := want[v]; ok {
				if a.partition != r.Partition || a.offset != r.Offset {
					t.Fatalf("record %s acknowledged at %d/%d, read at %d/%d", v, a.partition, a.offset, r.Partition, r.Offset)
				}
				delete(want, v)
			}
		})
	}
}
