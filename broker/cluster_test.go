package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/gossip"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/internal/freeport"
	"github.com/easel-io/easel/internal/kclient"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/replica"
)

// clusterTestLogger logs at EASEL_TEST_LOG's level; default: nothing.
func clusterTestLogger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("EASEL_TEST_LOG"))); err != nil {
		return discardLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// clusterMember is one broker of an in-process cluster: its own loopback
// address (127.0.0.(20+id)), data directory, engine, node, broker and
// Kafka listener. The directory and raft and gossip addresses are kept
// across restarts.
type clusterMember struct {
	id                   int32
	host                 string
	dir                  string
	raftAddr, gossipAddr string

	eng  *engine.Engine
	node *controller.Node
	b    *Broker
	srv  *netio.Server
	addr string // Kafka address while running

	// Faults on this member's links to the others (see isolate).
	gfault *gossip.FaultTransport
	dialer *faultDialer
	kc     *kclient.Client // the node's Forward client, over dialer
}

type testBrokers struct {
	mu      sync.Mutex // guards members' engines for watchHW (start and stop hold it)
	t       testing.TB
	voters  []controller.Voter
	members map[int32]*clusterMember
	hist    cluster.History
	views   int
	// lagMax is the brokers' ReplicaLagTimeMax (0: the default).
	lagMax time.Duration
	// fetch is the brokers' ReplicaFetch; seen, if set, sees every
	// request a broker gets before it is handled.
	fetch replica.Config
	seen  func(*netio.Request)
}

// freeHostPort returns host:port free for TCP and UDP, outside the
// ephemeral range (package freeport), so that a restarted broker gets it
// back.
func freeHostPort(t testing.TB, host string) string {
	t.Helper()
	p, err := freeport.Pick(host)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(host, strconv.Itoa(p))
}

func newTestBrokers(t testing.TB, ids ...int32) *testBrokers {
	return newTestBrokersLag(t, 0, ids...)
}

// newTestBrokersLag is newTestBrokers with replica.lag.time.max set.
func newTestBrokersLag(t testing.TB, lagMax time.Duration, ids ...int32) *testBrokers {
	return newTestBrokersSet(t, func(c *testBrokers) { c.lagMax = lagMax }, ids...)
}

// newTestBrokersSet is newTestBrokers with set applied before any broker
// starts.
func newTestBrokersSet(t testing.TB, set func(*testBrokers), ids ...int32) *testBrokers {
	c := &testBrokers{t: t, members: map[int32]*clusterMember{}}
	set(c)
	for _, id := range ids {
		h := "127.0.0." + strconv.Itoa(20+int(id))
		m := &clusterMember{id: id, host: h, dir: t.TempDir(), raftAddr: freeHostPort(t, h), gossipAddr: freeHostPort(t, h)}
		c.members[id] = m
		c.voters = append(c.voters, controller.Voter{ID: id, Addr: m.raftAddr})
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m.id)
		}
	})
	for _, id := range ids {
		c.start(id)
	}
	return c
}

func (c *testBrokers) start(id int32) {
	t := c.t
	t.Helper()
	m := c.members[id]
	log := clusterTestLogger()
	h := &laterHandler{seen: c.seen}
	srv, err := netio.Listen(netio.Config{Addr: m.host + ":0", Logger: log}, h)
	if err != nil {
		t.Fatal(err)
	}
	port := int32(srv.Addr().(*net.TCPAddr).Port)
	eng, err := engine.Open(m.dir, engine.Options{ExternalMetadata: true, ManagedHighWatermarks: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	g := gossip.FastConfig()
	g.BindAddr = m.gossipAddr
	for _, o := range c.members {
		if o.id != id {
			g.Seeds = append(g.Seeds, o.gossipAddr)
		}
	}
	g.Logger = log
	g.Wrap = func(inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		m.gfault = gossip.NewFaultTransport(inner)
		return m.gfault
	}
	m.dialer = newFaultDialer()
	m.kc = kclient.New(kclient.Config{Dial: m.dialer.DialContext, Logger: log})
	node, err := controller.Start(controller.Config{
		Forward:                 m.kc.Request,
		Broker:                  cluster.BrokerInfo{ID: id, Host: m.host, Port: port, RaftAddr: m.raftAddr},
		Dir:                     m.dir + "/__cluster_metadata",
		Voters:                  c.voters,
		Gossip:                  g,
		Raft:                    controller.FastRaftTiming(),
		PreferredLeaderInterval: time.Second,
		Logger:                  log,
	})
	if err != nil {
		t.Fatalf("start node %d: %v", id, err)
	}
	b := New(eng, Config{NodeID: id, Host: m.host, Port: port, AutoCreateTopics: true, Logger: log, Cluster: node,
		Group: group.Config{InitialRebalanceDelay: -1}, Dial: m.dialer.DialContext, ReplicaLagTimeMax: c.lagMax, ReplicaFetch: c.fetch})
	h.b = b
	go srv.Serve()
	c.mu.Lock()
	m.eng, m.node, m.b, m.srv = eng, node, b, srv
	c.mu.Unlock()
	m.addr = net.JoinHostPort(m.host, strconv.Itoa(int(port)))
	c.views++
}

// stop kills a member the way a crash looks to the others: no controlled
// shutdown, no gossip leave.
func (c *testBrokers) stop(id int32) {
	m := c.members[id]
	if m.srv == nil {
		return
	}
	m.srv.Close()
	m.b.Close()
	m.node.Close()
	m.kc.Close()
	if err := m.eng.Close(); err != nil {
		c.t.Errorf("close engine %d: %v", id, err)
	}
	c.mu.Lock()
	m.eng, m.node, m.b, m.srv, m.addr = nil, nil, nil, nil, ""
	c.mu.Unlock()
}

// isolate cuts every link between member id and the others: gossip, raft
// and Kafka (follower fetches, requests to the controller), both ways.
// Clients still reach it.
func (c *testBrokers) isolate(id int32) {
	m := c.members[id]
	for oid, o := range c.members {
		if oid == id || o.node == nil {
			continue
		}
		m.gfault.Block(o.gossipAddr)
		o.gfault.Block(m.gossipAddr)
		m.node.Faults().Block(o.raftAddr)
		o.node.Faults().Block(m.raftAddr)
		m.dialer.Block(o.addr)
		o.dialer.Block(m.addr)
	}
}

// heal restores every link of every running member.
func (c *testBrokers) heal() {
	for _, m := range c.members {
		if m.node == nil {
			continue
		}
		m.gfault.Heal()
		m.node.Faults().Heal()
		m.dialer.Heal()
	}
}

// running lists the running members' Kafka addresses.
func (c *testBrokers) running() []string {
	var out []string
	for _, m := range c.members {
		if m.addr != "" {
			out = append(out, m.addr)
		}
	}
	slices.Sort(out)
	return out
}

// observe checks every running member's copy of the metadata with one
// History: epochs only grow, and no two brokers ever see two leaders for a
// partition in one epoch.
func (c *testBrokers) observe() {
	c.t.Helper()
	for id, m := range c.members {
		if m.node == nil {
			continue
		}
		var err error
		m.node.View(func(s *cluster.State) { err = c.hist.Observe(int(id)*1000+c.views, s) })
		if err != nil {
			c.t.Fatalf("broker %d: %v", id, err)
		}
	}
}

// waitFor polls cond (observing every state) until it holds.
func (c *testBrokers) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.observe()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testBrokers) allReady() bool {
	for _, m := range c.members {
		if m.node == nil {
			continue
		}
		select {
		case <-m.node.Ready():
		default:
			return false
		}
	}
	return true
}

// metadataAt asks one broker for the metadata of topic.
func metadataAt(t testing.TB, kc *kclient.Client, addr, topic string) (*kmsg.MetadataResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &topic
	req.Topics = append(req.Topics, rt)
	resp, err := kc.Request(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// produceTo sends one batch of one record (value, or a default) to
// topic/0 at addr with acks and the timeout, and returns the partition's
// error code (-100 when the request itself failed).
func produceTo(ctx context.Context, t testing.TB, kc *kclient.Client, addr, topic string, acks int16, timeout time.Duration, value string) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = acks, int32(timeout/time.Millisecond)
	o := batchOpts{nrecords: 1}
	if value != "" {
		o.value = []byte(value)
	}
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Records: makeBatch(t, o)}}}}
	resp, err := kc.Request(ctx, addr, req)
	if err != nil {
		return -100
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

// A 3-broker cluster in one process: topics created through any broker
// are placed on all three; Metadata at every broker names the same
// leaders; produce and fetch go to the leader, and another broker answers
// NOT_LEADER_OR_FOLLOWER; when the leader dies its partitions get new
// leaders with bumped epochs, the client follows them, and the broker comes
// back fenced, catches up and is unfenced. No two brokers ever believe two
// leaders for one partition and epoch.
func TestClusterThreeBrokers(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)

	kc := kclient.New(kclient.Config{Logger: discardLogger()})
	defer kc.Close()
	seeds := c.running()
	adm := kadm.NewClient(newClusterClient(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Created through a broker that may not be the controller: forwarded.
	res, err := adm.CreateTopic(ctx, 3, 3, nil, "orders")
	if err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	var leaders map[int32]int32
	c.waitFor("every broker's metadata has the topic on 3 replicas", 20*time.Second, func() bool {
		leaders = map[int32]int32{}
		for _, addr := range c.running() {
			mr, err := metadataAt(t, kc, addr, "orders")
			if err != nil || len(mr.Brokers) != 3 || len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 || len(mr.Topics[0].Partitions) != 3 {
				return false
			}
			for _, p := range mr.Topics[0].Partitions {
				if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 0 {
					return false
				}
				if l, ok := leaders[p.Partition]; ok && l != p.Leader {
					return false
				}
				leaders[p.Partition] = p.Leader
			}
		}
		return true
	})
	// Leaders are spread: each broker leads one of the three partitions.
	if got := len(uniq(leaders)); got != 3 {
		t.Errorf("leaders %v: want each broker to lead one partition", leaders)
	}

	cl := newClusterClient(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(partition int32, v string) {
		t.Helper()
		r := &kgo.Record{Topic: "orders", Partition: partition, Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", partition, err)
		}
	}
	for p := range int32(3) {
		produce(p, fmt.Sprintf("before-%d", p))
	}

	// A broker that does not lead partition 0 refuses to take its writes.
	var other *clusterMember
	for _, m := range c.members {
		if m.id != leaders[0] {
			other = m
			break
		}
	}
	preq := kmsg.NewPtrProduceRequest()
	preq.SetVersion(9)
	preq.Acks = 1
	preq.TimeoutMillis = 1000
	preq.Topics = []kmsg.ProduceRequestTopic{{Topic: "orders", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: makeBatch(t, batchOpts{nrecords: 1})}}}}
	presp, err := kc.Request(ctx, other.addr, preq)
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce at a follower: error %d, want NOT_LEADER_OR_FOLLOWER", code)
	}

	// Kill the leader of partition 0.
	dead := leaders[0]
	var epochBefore int32
	c.members[dead].node.View(func(s *cluster.State) { epochBefore = s.Partition("orders", 0).LeaderEpoch })
	c.stop(dead)
	c.waitFor("partition 0 led elsewhere with a bumped epoch", 20*time.Second, func() bool {
		for _, addr := range c.running() {
			mr, err := metadataAt(t, kc, addr, "orders")
			if err != nil || len(mr.Topics) != 1 || len(mr.Topics[0].Partitions) != 3 {
				return false
			}
			p := mr.Topics[0].Partitions[0]
			if p.Leader < 0 || p.Leader == dead || p.LeaderEpoch <= epochBefore || slices.Contains(p.ISR, dead) {
				return false
			}
			if len(mr.Brokers) != 2 {
				return false
			}
		}
		return true
	})
	produce(0, "after-failover") // the client follows the new leader

	// The dead broker comes back: fenced under a new epoch, then caught up
	// and unfenced, and listed again.
	c.start(dead)
	c.waitFor("the restarted broker ready and listed", 30*time.Second, func() bool {
		if !c.allReady() {
			return false
		}
		mr, err := metadataAt(t, kc, c.members[dead].addr, "orders")
		return err == nil && len(mr.Brokers) == 3
	})
	c.observe()
}

// Consumer groups in a cluster: FindCoordinator names the leader of the
// group's __consumer_offsets partition (created on first use through the
// controller), and commits made there are read back.
func TestClusterConsumerGroup(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	seeds := c.running()
	adm := kadm.NewClient(newClusterClient(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if res, err := adm.CreateTopic(ctx, 2, 1, nil, "events"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	cl := newClusterClient(t, seeds)
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumer := newClusterClient(t, seeds, kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("events"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 10 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 10: %v", got, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		got += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	offs, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != 10 {
		t.Fatalf("committed offsets sum to %d, want 10: %+v", sum, offs)
	}
	// The coordinator is the leader of the group's partition.
	var want int32 = -1
	c.members[1].node.View(func(s *cluster.State) {
		want = s.Partition(engine.ConsumerOffsetsTopic, groupPartition("g1", s)).Leader
	})
	for _, r := range adm.FindGroupCoordinators(ctx, "g1") {
		if r.Err != nil || r.NodeID != want {
			t.Fatalf("coordinator %+v, want node %d", r, want)
		}
	}
	c.observe()

	// __consumer_offsets is replicated: when the coordinator dies, the new
	// leader of the group's partition loads the group from its replica and
	// serves the committed offsets.
	consumer.Close()
	c.waitFor("the offsets partition fully in sync", 20*time.Second, func() bool {
		var isr int
		c.members[1].node.View(func(s *cluster.State) {
			isr = len(s.Partition(engine.ConsumerOffsetsTopic, groupPartition("g1", s)).ISR)
		})
		return isr == 3
	})
	c.stop(want)
	c.waitFor("the committed offsets at the new coordinator", 30*time.Second, func() bool {
		// A fresh client each time: franz-go keeps dialing a cached
		// coordinator that died, until its retry timeout.
		cl := newClusterClient(t, c.running(), kgo.RetryTimeout(time.Second))
		defer cl.Close()
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "g1")
		if err != nil || offs.Error() != nil {
			t.Logf("fetch offsets: %v %v", err, offs.Error())
			return false
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		if sum != 10 {
			t.Logf("offsets %+v", offs)
		}
		return sum == 10
	})
}

func groupPartition(id string, s *cluster.State) int32 {
	t := s.Topic(engine.ConsumerOffsetsTopic)
	return group.PartitionFor(id, t.Partitions)
}

func newClusterClient(t testing.TB, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryTimeout(30 * time.Second), kgo.MetadataMinAge(50 * time.Millisecond)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func uniq(m map[int32]int32) map[int32]bool {
	out := map[int32]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// laterHandler forwards to a Broker created after its listener is bound
// (it must know the port it advertises).
type laterHandler struct {
	b    *Broker
	seen func(*netio.Request) // if set, sees each request first
}

func (h *laterHandler) Handle(ctx context.Context, req *netio.Request) netio.Response {
	if h.seen != nil {
		h.seen(req)
	}
	return h.b.Handle(ctx, req)
}

// Config.ReplicaFetch reaches the followers: with replica.fetch.max.bytes at
// 4 KiB every follower fetch asks for 4 KiB a partition, and replication
// still completes (one small batch a round).
func TestClusterReplicaFetchSettings(t *testing.T) {
	var asked, other atomic.Int64
	c := newTestBrokersSet(t, func(c *testBrokers) {
		c.fetch = replica.Config{PartitionMaxBytes: 4096, MaxWait: 100 * time.Millisecond}
		c.seen = func(req *netio.Request) {
			if req.APIKey != 1 {
				return
			}
			r := kmsg.NewPtrFetchRequest()
			r.SetVersion(req.APIVersion)
			if r.ReadFrom(req.Body) != nil || r.ReplicaID < 0 {
				return
			}
			for _, tp := range r.Topics {
				for _, p := range tp.Partitions {
					if p.PartitionMaxBytes == 4096 {
						asked.Add(1)
					} else {
						other.Add(1)
					}
				}
			}
		}
	}, 1, 2)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	if res, err := adm.CreateTopic(ctx, 1, 2, nil, "small"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	cl := newClusterClient(t, c.running(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("small"), kgo.ProducerLinger(0))
	const n = 64
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 3000)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	c.waitFor("both replicas at the log end", 20*time.Second, func() bool {
		for _, m := range c.members {
			p, err := m.eng.Partition("small", 0)
			if err != nil || p.EndOffset() != n || p.HighWatermark() != n {
				return false
			}
		}
		return true
	})
	if asked.Load() < n || other.Load() != 0 {
		t.Fatalf("follower fetches: %d partitions asked for 4096 bytes, %d for another size", asked.Load(), other.Load())
	}
}

// min.insync.replicas: an acks=all produce to a partition whose ISR is
// smaller gets NOT_ENOUGH_REPLICAS and appends nothing; acks=1 still goes.
func TestClusterMinInsyncReplicas(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	kc := kclient.New(kclient.Config{Logger: discardLogger()})
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	three := "3"
	if res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &three}, "strict"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	var leader, victim int32
	c.waitFor("the topic led somewhere", 20*time.Second, func() bool {
		for _, m := range c.members {
			m.node.View(func(s *cluster.State) {
				if p := s.Partition("strict", 0); p != nil {
					leader = p.Leader
				}
			})
		}
		return leader > 0
	})
	for id := range c.members {
		if id != leader {
			victim = id
			break
		}
	}
	c.stop(victim)
	lm := c.members[leader]
	c.waitFor("the ISR without the dead broker", 20*time.Second, func() bool {
		var isr []int32
		lm.node.View(func(s *cluster.State) {
			if p := s.Partition("strict", 0); p != nil {
				isr = p.ISR
			}
		})
		return len(isr) == 2
	})
	produce := func(acks int16) int16 { return produceTo(ctx, t, kc, lm.addr, "strict", acks, 5*time.Second, "") }
	p, err := lm.eng.Partition("strict", 0)
	if err != nil {
		t.Fatal(err)
	}
	before := p.EndOffset()
	if code := produce(-1); code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with 2 of 3 in sync: error %d, want NOT_ENOUGH_REPLICAS", code)
	}
	if p.EndOffset() != before {
		t.Fatalf("the refused batch was appended: log end %d, was %d", p.EndOffset(), before)
	}
	if code := produce(1); code != 0 {
		t.Fatalf("acks=1: error %d", code)
	}
}

// NOT_ENOUGH_REPLICAS_AFTER_APPEND: an acks=all batch appended while the
// ISR met min.insync.replicas, whose commit then needed the ISR to shrink
// below it (a follower stopped fetching, was proposed out after
// replica.lag.time.max), is answered with that error once the high
// watermark passes it: the batch is in the log and committed, but not on
// as many replicas as the topic demands.
func TestClusterNotEnoughReplicasAfterAppend(t *testing.T) {
	c := newTestBrokersLag(t, 600*time.Millisecond, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	three := "3"
	if res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &three}, "after"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	view := func() (leader int32, isr []int32) {
		leader = -1
		c.members[1].node.View(func(s *cluster.State) {
			if p := s.Partition("after", 0); p != nil {
				leader, isr = p.Leader, p.ISR
			}
		})
		return
	}
	c.waitFor("a full ISR", 20*time.Second, func() bool { _, isr := view(); return len(isr) == 3 })
	leader, _ := view()
	lm := c.members[leader]
	kc := kclient.New(kclient.Config{Logger: discardLogger()})
	defer kc.Close()
	produce := func() int16 { return produceTo(ctx, t, kc, lm.addr, "after", -1, 20*time.Second, "") }
	c.waitFor("an acks=all produce with 3 of 3 in sync", 20*time.Second, func() bool { return produce() == 0 })
	lp, err := lm.eng.Partition("after", 0)
	if err != nil {
		t.Fatal(err)
	}
	var slow int32
	for id := range c.members {
		if id != leader {
			slow = id
			break
		}
	}
	before := lp.EndOffset()
	c.members[slow].dialer.Block(lm.addr) // its fetches fail from now on
	start := time.Now()
	code := produce()
	if _, isr := view(); len(isr) == 3 && time.Since(start) < 300*time.Millisecond {
		t.Fatalf("answered with %d while the ISR was still full", code)
	}
	if code != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("acks=all while a follower stopped: error %d (%v), want NOT_ENOUGH_REPLICAS_AFTER_APPEND", code, kerr.ErrorForCode(code))
	}
	if lp.EndOffset() != before+1 || lp.HighWatermark() < before+1 {
		t.Fatalf("log end %d, high watermark %d: want the batch at %d appended and committed", lp.EndOffset(), lp.HighWatermark(), before)
	}
	c.waitFor("the committed ISR without the stopped follower", 10*time.Second, func() bool {
		_, isr := view()
		return len(isr) == 2 && !slices.Contains(isr, slow)
	})
	if code := produce(); code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with 2 of 3 in sync: error %d, want NOT_ENOUGH_REPLICAS", code)
	}
}

// Unclean leader election (unclean.leader.election.enable=true): the
// followers stop fetching and leave the ISR; the leader, alone in it,
// commits more records and dies; a follower becomes leader from outside the
// ISR (the partition's unclean epoch) and takes new writes. The old leader
// returns with a longer log and a high watermark past what the new leader
// has: as a follower it must cut those committed records (the loss an
// unclean election accepts) to follow, and it does: it ends byte-identical
// to the new leader and back in the ISR, instead of stopping its fetcher
// with ErrBelowHighWatermark.
func TestClusterUncleanElectionTruncatesFollower(t *testing.T) {
	c := newTestBrokersLag(t, 600*time.Millisecond, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	yes := "true"
	if res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"unclean.leader.election.enable": &yes}, "dirty"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	view := func(at int32) (p cluster.Partition) {
		p.Leader = -1
		if n := c.members[at].node; n != nil {
			n.View(func(s *cluster.State) {
				if mp := s.Partition("dirty", 0); mp != nil {
					p = *mp
				}
			})
		}
		return
	}
	c.waitFor("a full ISR", 20*time.Second, func() bool { return len(view(1).ISR) == 3 })
	old := view(1).Leader
	var others []int32
	for id := range c.members {
		if id != old {
			others = append(others, id)
		}
	}
	kc := kclient.New(kclient.Config{Logger: discardLogger()})
	defer kc.Close()
	c.waitFor("a first acks=all write", 20*time.Second, func() bool {
		return produceTo(ctx, t, kc, c.members[old].addr, "dirty", -1, 5*time.Second, "first") == 0
	})
	for _, id := range others {
		c.members[id].dialer.Block(c.members[old].addr)
	}
	c.waitFor("the leader alone in the ISR", 20*time.Second, func() bool { return len(view(others[0]).ISR) == 1 })
	for i := range 5 {
		if code := produceTo(ctx, t, kc, c.members[old].addr, "dirty", -1, 5*time.Second, fmt.Sprintf("lost-%d", i)); code != 0 {
			t.Fatalf("acks=all to the sole in-sync leader: error %d", code)
		}
	}
	op, err := c.members[old].eng.Partition("dirty", 0)
	if err != nil {
		t.Fatal(err)
	}
	oldHW := op.HighWatermark()
	c.stop(old)
	for _, id := range others {
		c.members[id].dialer.Heal()
	}
	var nl int32
	c.waitFor("an unclean election", 20*time.Second, func() bool {
		p := view(others[0])
		nl = p.Leader
		return nl >= 0 && nl != old && p.UncleanEpoch == p.LeaderEpoch
	})
	c.waitFor("acks=all writes to the new leader", 20*time.Second, func() bool {
		return produceTo(ctx, t, kc, c.members[nl].addr, "dirty", -1, 5*time.Second, "after-0") == 0
	})
	np, err := c.members[nl].eng.Partition("dirty", 0)
	if err != nil {
		t.Fatal(err)
	}
	if np.EndOffset() >= oldHW {
		t.Fatalf("the new leader's log end %d reaches the old high watermark %d: nothing to cut, the test proves nothing", np.EndOffset(), oldHW)
	}
	c.start(old)
	c.waitFor("the old leader back in a full ISR", 30*time.Second, func() bool { return len(view(nl).ISR) == 3 })
	// It may lead again now (the preferred replica); compare it with
	// whichever replica leads and stop writing first.
	lp, err := c.members[others[0]].eng.Partition("dirty", 0)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := c.members[old].eng.Partition("dirty", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the old leader's log equal to the others'", 20*time.Second, func() bool {
		return rp.EndOffset() == lp.EndOffset() && rp.HighWatermark() == lp.HighWatermark()
	})
	if lb, rb := readAllBytes(t, lp), readAllBytes(t, rp); !bytes.Equal(lb, rb) {
		t.Fatalf("logs differ: %d and %d bytes", len(lb), len(rb))
	}
	got := map[string]bool{}
	it := rp.Records(rp.StartOffset())
	for it.Next() {
		got[string(it.Record().Value)] = true
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if !got["first"] || !got["after-0"] {
		t.Fatalf("records %v: want first and after-0", got)
	}
}

// Replication: records acknowledged with acks=all on a topic with RF 3 and
// min.insync.replicas=2 survive the loss of the leader, then of the next
// one: the new leader (elected from the ISR) has every acknowledged record,
// in order, and consumers read them. A restarted broker catches up, rejoins
// the ISR, and takes its preferred leadership back.
func TestClusterReplication(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seeds := c.running()
	adm := kadm.NewClient(newClusterClient(t, seeds))
	two := "2"
	if res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &two}, "durable"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	cl := newClusterClient(t, seeds, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("durable"))
	acked := 0
	produce := func(n int) {
		t.Helper()
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(acked))}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", acked, err)
			}
			acked++
		}
	}
	state := func() (leader int32, isr []int32, epoch int32) {
		for _, m := range c.members {
			if m.node == nil {
				continue
			}
			m.node.View(func(s *cluster.State) {
				if p := s.Partition("durable", 0); p != nil && p.LeaderEpoch >= epoch {
					leader, isr, epoch = p.Leader, p.ISR, p.LeaderEpoch
				}
			})
		}
		return leader, isr, epoch
	}
	// readAll reads the partition from the start and checks that the
	// acknowledged records are all there, in order.
	readAll := func() {
		t.Helper()
		cons := newClusterClient(t, c.running(), kgo.ConsumeTopics("durable"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cons.Close()
		next := 0
		for next < acked {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d acknowledged records", next, acked)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Value) != strconv.Itoa(next) && next < acked {
					t.Fatalf("record %d is %q", next, r.Value)
				}
				next++
			})
		}
	}

	produce(50)
	c.waitFor("all three in the ISR", 20*time.Second, func() bool { _, isr, _ := state(); return len(isr) == 3 })
	readAll()

	first, _, epoch := state()
	c.stop(first)
	c.waitFor("a new leader from the ISR", 20*time.Second, func() bool {
		l, _, e := state()
		return l >= 0 && l != first && e > epoch
	})
	produce(50) // 2 of 3 in sync: acks=all still goes
	readAll()

	// The first comes back: it catches up from the new leader and rejoins
	// the ISR (three voters: raft needs two of them alive, so brokers are
	// killed one at a time).
	c.start(first)
	c.waitFor("all three in the ISR again", 30*time.Second, func() bool { _, isr, _ := state(); return len(isr) == 3 })

	second, _, epoch := state()
	c.stop(second)
	c.waitFor("another new leader", 20*time.Second, func() bool {
		l, _, e := state()
		return l >= 0 && l != second && e > epoch
	})
	readAll() // every acknowledged record is on the new leader
	c.start(second)
	c.waitFor("all three in the ISR again", 30*time.Second, func() bool { _, isr, _ := state(); return len(isr) == 3 })
	produce(20)
	readAll()
}

// hwMonitor samples the high watermark of one partition on every running
// member until stopped and reports a move backwards on any of them (per
// engine: a restarted broker starts a new series).
type hwMonitor struct {
	stop chan struct{}
	done chan error
}

func (c *testBrokers) watchHW(topic string, partition int32) *hwMonitor {
	m := &hwMonitor{stop: make(chan struct{}), done: make(chan error, 1)}
	type series struct {
		eng *engine.Engine
		hw  int64
	}
	last := map[int32]*series{}
	// The members' fields change on stop and start: sample what each has
	// now from the test goroutine's view, copied under this lock.
	engines := func() map[int32]*engine.Engine {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := map[int32]*engine.Engine{}
		for id, mb := range c.members {
			if mb.eng != nil {
				out[id] = mb.eng
			}
		}
		return out
	}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				m.done <- nil
				return
			case <-tick.C:
			}
			for id, eng := range engines() {
				p, err := eng.Partition(topic, partition)
				if err != nil {
					continue
				}
				hw := p.HighWatermark()
				s := last[id]
				if s == nil || s.eng != eng {
					last[id] = &series{eng: eng, hw: hw}
					continue
				}
				if hw < s.hw {
					m.done <- fmt.Errorf("broker %d: high watermark of %s/%d went back from %d to %d", id, topic, partition, s.hw, hw)
					return
				}
				s.hw = hw
			}
		}
	}()
	return m
}

func (m *hwMonitor) check(t *testing.T) {
	t.Helper()
	close(m.stop)
	if err := <-m.done; err != nil {
		t.Fatal(err)
	}
}

// A zombie leader: the leader of a partition is cut off from the other
// brokers (gossip, raft, follower fetches) while clients still reach it.
// Nothing produced to it with acks=all is acknowledged (its followers
// cannot fetch, so its high watermark stays); the others elect a new leader
// that takes acks=all writes; once healed, the old leader follows, cuts its
// uncommitted tail and ends byte-identical to the new leader; every
// acknowledged record is there; no high watermark ever moved back.
func TestClusterZombieLeader(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	two := "2"
	if res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &two}, "z"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	view := func(id int32) (leader int32, isr []int32, epoch int32) {
		leader = -1
		if m := c.members[id]; m.node != nil {
			m.node.View(func(s *cluster.State) {
				if p := s.Partition("z", 0); p != nil {
					leader, isr, epoch = p.Leader, p.ISR, p.LeaderEpoch
				}
			})
		}
		return
	}
	c.waitFor("a full ISR", 20*time.Second, func() bool { _, isr, _ := view(1); return len(isr) == 3 })
	mon := c.watchHW("z", 0)

	kc := kclient.New(kclient.Config{Logger: discardLogger()})
	defer kc.Close()
	cl := newClusterClient(t, c.running(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("z"),
		kgo.ProduceRequestTimeout(2*time.Second))
	var acked []string
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			acked = append(acked, v)
		}
	}
	produce("before", 20)

	zombie, _, epoch := view(1)
	c.isolate(zombie)
	// Written to the zombie: appended there, never acknowledged.
	if code := produceTo(ctx, t, kc, c.members[zombie].addr, "z", -1, 2*time.Second, "zombie"); code == 0 {
		t.Fatalf("an acks=all produce to the cut-off leader was acknowledged")
	}
	var other int32
	for id := range c.members {
		if id != zombie {
			other = id
			break
		}
	}
	c.waitFor("a new leader on the majority side", 20*time.Second, func() bool {
		l, _, e := view(other)
		return l >= 0 && l != zombie && e > epoch
	})
	// The client still knows the zombie as leader until its metadata
	// refresh sends it to the new one.
	produce("after", 20)

	c.heal()
	// Back in a full ISR it may lead again (it is the preferred replica);
	// either way its uncommitted tail is gone and its log equals the
	// other replicas'.
	c.waitFor("the old leader back in a full ISR, in a newer epoch", 30*time.Second, func() bool {
		l, isr, e := view(zombie)
		return l >= 0 && len(isr) == 3 && e > epoch+1 || (l != zombie && l >= 0 && len(isr) == 3)
	})
	lp, err := c.members[other].eng.Partition("z", 0)
	if err != nil {
		t.Fatal(err)
	}
	zp, err := c.members[zombie].eng.Partition("z", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the old leader's log equal to another replica's", 20*time.Second, func() bool {
		return zp.EndOffset() == lp.EndOffset() && zp.HighWatermark() == lp.HighWatermark()
	})
	lb, zb := readAllBytes(t, lp), readAllBytes(t, zp)
	if !bytes.Equal(lb, zb) {
		t.Fatalf("logs differ after the heal: leader %d bytes, old leader %d bytes", len(lb), len(zb))
	}
	// Every acknowledged record is in the log, and nothing the zombie took.
	got := map[string]bool{}
	it := lp.Records(lp.StartOffset())
	for it.Next() {
		got[string(it.Record().Value)] = true
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	for _, v := range acked {
		if !got[v] {
			t.Fatalf("acknowledged record %s lost", v)
		}
	}
	mon.check(t)
}

// readAllBytes returns a partition's log from its start to its end, as a
// follower would fetch it.
func readAllBytes(t *testing.T, p *engine.Partition) []byte {
	t.Helper()
	var out []byte
	for off := p.StartOffset(); off < p.EndOffset(); {
		c, err := p.ReadBatches(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Bytes) == 0 {
			c.Release()
			break
		}
		out = append(out, c.Bytes...)
		for rest := c.Bytes; len(rest) > 0; {
			b, r, err := record.Split(rest)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := record.ParseHeader(b)
			off = h.LastOffset() + 1
			rest = r
		}
		c.Release()
	}
	return out
}

// ISR shrink and expansion: a follower whose fetches cannot reach the
// leader (gossip and raft still can, so it is not fenced) leaves the ISR
// after replica.lag.time.max.ms, proposed by the leader; acks=all goes on
// with the other two; once the link heals it catches up and the leader
// proposes it back in.
func TestClusterISRShrinkExpand(t *testing.T) {
	c := newTestBrokersLag(t, 600*time.Millisecond, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	two := "2"
	if res, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &two}, "lag"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	view := func() (leader int32, isr []int32) {
		leader = -1
		c.members[1].node.View(func(s *cluster.State) {
			if p := s.Partition("lag", 0); p != nil {
				leader, isr = p.Leader, p.ISR
			}
		})
		return
	}
	c.waitFor("a full ISR", 20*time.Second, func() bool { _, isr := view(); return len(isr) == 3 })
	leader, _ := view()
	var slow int32
	for id := range c.members {
		if id != leader {
			slow = id
			break
		}
	}
	cl := newClusterClient(t, c.running(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("lag"))
	produce := func(n int) {
		t.Helper()
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	produce(5)
	c.members[slow].dialer.Block(c.members[leader].addr) // its fetches fail
	c.waitFor("the slow follower out of the ISR", 20*time.Second, func() bool {
		_, isr := view()
		return len(isr) == 2 && !slices.Contains(isr, slow)
	})
	produce(5) // two in sync >= min.insync.replicas
	c.members[slow].dialer.Heal()
	c.waitFor("the follower back in the ISR", 20*time.Second, func() bool {
		_, isr := view()
		return len(isr) == 3
	})
	sp, err := c.members[slow].eng.Partition("lag", 0)
	if err != nil {
		t.Fatal(err)
	}
	lp, _ := c.members[leader].eng.Partition("lag", 0)
	c.waitFor("the follower caught up", 10*time.Second, func() bool { return sp.EndOffset() == lp.EndOffset() })
	if sp.EndOffset() < 10 {
		t.Fatalf("follower log end %d, want the 10 records", sp.EndOffset())
	}
}

// Reassignment (KIP-455): a partition on brokers [1 2] moves to [3 4]
// through AlterPartitionReassignments: the new replicas are hosted, catch
// up and join the ISR, then the old ones are dropped (their logs removed)
// and leadership moves to the new set; no acknowledged record is lost and
// the new replicas' logs are byte-identical.
func TestClusterReassignment(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3, 4)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	// An explicit assignment: the partition starts on [1 2].
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "moved", -1, -1
	rt.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{{Partition: 0, Replicas: []int32{1, 2}}}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	kc := kclient.New(kclient.Config{Logger: discardLogger()})
	defer kc.Close()
	cr, err := kc.Request(ctx, c.members[1].addr, req)
	if err != nil || cr.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, cr)
	}
	view := func() (p *cluster.Partition) {
		c.members[3].node.View(func(s *cluster.State) { p = s.Partition("moved", 0) })
		return p
	}
	c.waitFor("the topic in sync on [1 2]", 20*time.Second, func() bool { p := view(); return p != nil && len(p.ISR) == 2 })
	cl := newClusterClient(t, c.running(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("moved"))
	acked := 0
	produce := func(n int) {
		t.Helper()
		for range n {
			r := &kgo.Record{Value: []byte(strconv.Itoa(acked))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			acked++
		}
	}
	produce(30)

	var ar kadm.AlterPartitionAssignmentsReq
	ar.Assign("moved", 0, []int32{3, 4})
	res, err := adm.AlterPartitionAssignments(ctx, ar)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatalf("reassign: %v", err)
	}
	c.waitFor("the partition on [3 4] only, led there, in sync", 30*time.Second, func() bool {
		p := view()
		return p != nil && slices.Equal(p.Replicas, []int32{3, 4}) && len(p.ISR) == 2 && (p.Leader == 3 || p.Leader == 4) && !p.Reassigning()
	})
	lr, err := adm.ListPartitionReassignments(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr) != 0 {
		t.Errorf("reassignments still listed after completion: %+v", lr)
	}
	produce(10)
	// The old replicas' logs go; the new ones hold everything, equal.
	c.waitFor("the old replicas' logs removed", 20*time.Second, func() bool {
		_, e1 := c.members[1].eng.Partition("moved", 0)
		_, e2 := c.members[2].eng.Partition("moved", 0)
		return e1 != nil && e2 != nil
	})
	p3, err := c.members[3].eng.Partition("moved", 0)
	if err != nil {
		t.Fatal(err)
	}
	p4, err := c.members[4].eng.Partition("moved", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the new replicas equal", 20*time.Second, func() bool {
		return p3.EndOffset() == int64(acked) && p4.EndOffset() == int64(acked) &&
			p3.HighWatermark() == int64(acked) && p4.HighWatermark() == int64(acked)
	})
	if !bytes.Equal(readAllBytes(t, p3), readAllBytes(t, p4)) {
		t.Fatal("the new replicas' logs differ")
	}
}
