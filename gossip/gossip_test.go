package gossip

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{},
		{NodeID: 7, KafkaAddr: "127.0.0.1:9092", RaftAddr: "127.0.0.1:9093", Rack: "a", ControllerEligible: true, Incarnation: -5},
		{NodeID: -1, KafkaAddr: strings.Repeat("h", 255), RaftAddr: strings.Repeat("r", 200)},
		{NodeID: 2, KafkaAddr: "127.0.0.2:9092", VoterSet: 0x0123456789abcdef},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Meta
		if err := got.UnmarshalBinary(b); err != nil || got != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	if _, err := (Meta{KafkaAddr: strings.Repeat("x", 256)}).MarshalBinary(); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("long string: %v", err)
	}
	if _, err := (Meta{KafkaAddr: strings.Repeat("x", 255), RaftAddr: strings.Repeat("y", 255), Rack: "z"}).MarshalBinary(); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("over 512 bytes: %v", err)
	}
}

func FuzzMeta(f *testing.F) {
	b, _ := Meta{NodeID: 3, KafkaAddr: "h:1", Rack: "r", ControllerEligible: true}.MarshalBinary()
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		if m.UnmarshalBinary(b) != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil || string(out) != string(b) {
			t.Fatalf("accepted %x does not re-encode: %x %v", b, out, err)
		}
	})
}

// node is one member under test, recording the events it saw.
type node struct {
	t     *testing.T
	m     *Membership
	fault *FaultTransport
	mu    sync.Mutex
	seen  []Event
	cond  chan struct{} // closed and replaced at every event
}

func quiet() *slog.Logger {
	if testing.Verbose() && os.Getenv("GOSSIP_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start runs node id on 127.0.0.<host> with FastConfig.
func start(t *testing.T, cluster string, id int32, host int, seeds ...string) (*node, error) {
	t.Helper()
	n := &node{t: t, cond: make(chan struct{})}
	cfg := FastConfig()
	cfg.ClusterID = cluster
	cfg.Meta = Meta{NodeID: id, KafkaAddr: fmt.Sprintf("127.0.0.%d:9092", host), Incarnation: time.Now().UnixNano()}
	cfg.BindAddr = fmt.Sprintf("127.0.0.%d:0", host)
	cfg.Seeds = seeds
	cfg.Logger = quiet()
	cfg.Wrap = func(tr memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		n.fault = NewFaultTransport(tr)
		return n.fault
	}
	m, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	n.m = m
	go func() {
		for ev := range m.Events() {
			n.mu.Lock()
			n.seen = append(n.seen, ev)
			close(n.cond)
			n.cond = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { m.Close() })
	return n, nil
}

func mustStart(t *testing.T, cluster string, id int32, host int, seeds ...string) *node {
	t.Helper()
	n, err := start(t, cluster, id, host, seeds...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor waits until an event matching f was seen, and returns when.
func (n *node) waitFor(what string, timeout time.Duration, f func(Event) bool) time.Time {
	n.t.Helper()
	deadline := time.After(timeout)
	for i := 0; ; {
		n.mu.Lock()
		for ; i < len(n.seen); i++ {
			if f(n.seen[i]) {
				n.mu.Unlock()
				return time.Now()
			}
		}
		ch := n.cond
		n.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			n.t.Fatalf("node %d: no %s within %v; saw %v", n.m.cfg.Meta.NodeID, what, timeout, n.events())
		}
	}
}

func (n *node) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, e := range n.seen {
		out = append(out, fmt.Sprintf("%s %d@%s", e.Type, e.Member.NodeID, e.Member.Addr))
	}
	return out
}

func is(t EventType, id int32) func(Event) bool {
	return func(e Event) bool { return e.Type == t && e.Member.NodeID == id }
}

// Three members find each other; a killed one is reported failed, a leaving
// one as left.
func TestJoinFailLeave(t *testing.T) {
	a := mustStart(t, "c1", 1, 1)
	b := mustStart(t, "c1", 2, 2, a.m.Addr())
	c := mustStart(t, "c1", 3, 3, a.m.Addr())
	for _, n := range []*node{a, b, c} {
		for _, id := range []int32{1, 2, 3} {
			n.waitFor(fmt.Sprintf("join of %d", id), 5*time.Second, is(EventJoin, id))
		}
	}
	if got := len(a.m.Members()); got != 3 {
		t.Fatalf("a sees %d members", got)
	}
	if m := b.m.Members()[0]; m.NodeID != 1 || m.KafkaAddr != "127.0.0.1:9092" {
		t.Fatalf("member meta %+v", m)
	}
	killed := time.Now()
	c.m.Close() // no leave message: a failure
	took := a.waitFor("failure of 3", 5*time.Second, is(EventFail, 3)).Sub(killed)
	b.waitFor("failure of 3", 5*time.Second, is(EventFail, 3))
	t.Logf("failure detected in %v (FastConfig: probe 100 ms, timeout 50 ms, suspicion x2)", took.Round(time.Millisecond))
	if err := b.m.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	a.waitFor("leave of 2", 5*time.Second, is(EventLeave, 2))
}

// A broker back under its node id at a new address is accepted; a second
// live one with the same id is refused.
func TestRestartAndConflict(t *testing.T) {
	a := mustStart(t, "c2", 1, 4)
	b := mustStart(t, "c2", 2, 5, a.m.Addr())
	a.waitFor("join of 2", 5*time.Second, is(EventJoin, 2))
	if _, err := start(t, "c2", 2, 6, a.m.Addr()); !errors.Is(err, ErrConflict) {
		t.Fatalf("second live member with id 2: %v", err)
	}
	a.waitFor("conflict", 5*time.Second, func(e Event) bool { return e.Type == EventConflict })
	old := b.m.Addr()
	b.m.Close()
	a.waitFor("failure of 2", 5*time.Second, is(EventFail, 2))
	time.Sleep(FastConfig().DeadNodeReclaimTime) // the name is reclaimable after it
	b2 := mustStart(t, "c2", 2, 6, a.m.Addr())
	a.waitFor("rejoin of 2 at a new address", 5*time.Second, func(e Event) bool {
		return e.Type == EventJoin && e.Member.NodeID == 2 && e.Member.Addr == b2.m.Addr() && e.Member.Addr != old
	})
}

// A partitioned member is reported failed by both sides; after the network
// heals the seeds are joined again and everyone is back.
func TestPartitionHeals(t *testing.T) {
	a := mustStart(t, "c3", 1, 7)
	b := mustStart(t, "c3", 2, 8, a.m.Addr())
	c := mustStart(t, "c3", 3, 9, a.m.Addr())
	for _, id := range []int32{2, 3} {
		a.waitFor("join", 5*time.Second, is(EventJoin, id))
	}
	c.waitFor("join of 2", 5*time.Second, is(EventJoin, 2))
	// Cut c off from a and b, both directions.
	c.fault.Block(a.m.Addr(), b.m.Addr())
	a.fault.Block(c.m.Addr())
	b.fault.Block(c.m.Addr())
	a.waitFor("failure of 3", 10*time.Second, is(EventFail, 3))
	c.waitFor("failure of 1", 10*time.Second, is(EventFail, 1))
	for _, n := range []*node{a, b, c} {
		n.fault.Heal()
	}
	// c's seed is a: the rejoin loop brings it back.
	a.waitFor("rejoin of 3", 10*time.Second, func(e Event) bool {
		return e.Type == EventJoin && e.Member.NodeID == 3
	})
}

// Members of different clusters do not hear each other.
func TestClustersApart(t *testing.T) {
	a := mustStart(t, "left", 1, 10)
	b := mustStart(t, "right", 2, 11, a.m.Addr())
	time.Sleep(500 * time.Millisecond) // several gossip rounds and a join attempt
	if len(a.m.Members()) != 1 || len(b.m.Members()) != 1 {
		t.Fatalf("clusters mixed: %v / %v", a.m.Members(), b.m.Members())
	}
}
