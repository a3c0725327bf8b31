package replica_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/internal/kclient"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/replica"
)

// testTimeout bounds every wait of a test; reaching it means a hang.
const testTimeout = 15 * time.Second

// testBackoff is the fetchers' backoff in tests: short, so that recovery
// tests do not wait long, but not a spin.
const testBackoff = 20 * time.Millisecond

func quietLogger() *slog.Logger {
	if os.Getenv("REPLICA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// leader is a real single-node broker (it leads every partition) on a
// loopback port.
type leader struct {
	t    testing.TB
	eng  *engine.Engine
	b    *broker.Broker
	mu   sync.Mutex
	srv  *netio.Server
	addr string
}

// startLeader opens an engine with opts and serves a broker on it.
func startLeader(t testing.TB, opts engine.Options) *leader {
	t.Helper()
	dir := t.TempDir()
	opts.Logger = quietLogger()
	eng, err := engine.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	l := &leader{t: t, eng: eng, b: broker.New(eng, broker.Config{DataDir: dir, Logger: opts.Logger})}
	l.listen("127.0.0.1:0")
	t.Cleanup(func() {
		l.b.Close()
		l.mu.Lock()
		l.srv.Close()
		l.mu.Unlock()
		eng.Close()
	})
	return l
}

func (l *leader) listen(addr string) {
	l.t.Helper()
	var srv *netio.Server
	var err error
	deadline := time.Now().Add(testTimeout)
	for {
		srv, err = netio.Listen(netio.Config{Addr: addr, Logger: quietLogger()}, l.b)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the port is still being released
	}
	if err != nil {
		l.t.Fatal(err)
	}
	go srv.Serve()
	l.mu.Lock()
	l.srv, l.addr = srv, srv.Addr().String()
	l.mu.Unlock()
}

// restart closes the listener (and its connections) and listens again on
// the same port.
func (l *leader) restart() {
	l.mu.Lock()
	srv, addr := l.srv, l.addr
	l.mu.Unlock()
	srv.Close()
	l.listen(addr)
}

// topic creates a topic and returns its info.
func (l *leader) topic(name string, partitions int32) engine.TopicInfo {
	l.t.Helper()
	if err := l.eng.CreateTopic(name, engine.TopicConfig{Partitions: partitions}); err != nil {
		l.t.Fatal(err)
	}
	info, err := l.eng.Topic(name)
	if err != nil {
		l.t.Fatal(err)
	}
	return info
}

func (l *leader) part(topic string, partition int32) *engine.Partition {
	l.t.Helper()
	p, err := l.eng.Partition(topic, partition)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *leader) asg(info engine.TopicInfo, partition, id, epoch int32) replica.Assignment {
	return replica.Assignment{Topic: info.Name, TopicID: info.ID, Partition: partition, Leader: id, LeaderAddr: l.addr, LeaderEpoch: epoch}
}

// produce appends n batches of recs records each with value size size.
func produce(t testing.TB, p *engine.Partition, codecID int8, n, recs, size int) {
	t.Helper()
	for i := range n {
		rs := make([]record.Record, recs)
		for j := range rs {
			v := bytes.Repeat([]byte{byte(i + j)}, size)
			rs[j] = record.Record{Key: []byte(fmt.Sprintf("k%d-%d", i, j)), Value: v}
		}
		if _, err := p.AppendRecords(codecID, rs...); err != nil {
			t.Fatal(err)
		}
	}
}

// openFollower opens a follower engine (managed high watermarks, external
// metadata).
func openFollower(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.Open(t.TempDir(), engine.Options{ManagedHighWatermarks: true, ExternalMetadata: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// host hosts a partition on a follower engine as a follower in epoch.
func host(t testing.TB, e *engine.Engine, info engine.TopicInfo, partition, epoch int32) *engine.Partition {
	t.Helper()
	p, err := e.HostPartition(info, partition)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.BecomeFollower(epoch); err != nil {
		t.Fatal(err)
	}
	return p
}

// newFetchers returns replica.Fetchers for e closed at the end of the test, and
// checks that Close leaves no goroutine of theirs behind.
func newFetchers(t testing.TB, e *engine.Engine, cfg replica.Config) *replica.Fetchers {
	t.Helper()
	cfg.Engine = e
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = testBackoff
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 100 * time.Millisecond
	}
	f := replica.New(cfg)
	t.Cleanup(func() { f.Close() })
	return f
}

// logBytes returns a partition's whole log, up to its log end, as stored.
func logBytes(t testing.TB, p *engine.Partition) []byte {
	t.Helper()
	var out []byte
	off, end := p.StartOffset(), p.EndOffset()
	for off < end {
		c, err := p.ReadReplica(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b := c.Bytes
		if c.File != nil {
			b = make([]byte, c.Len)
			if _, err := c.File.ReadAt(b, c.Pos); err != nil {
				c.Release()
				t.Fatal(err)
			}
		} else {
			b = bytes.Clone(b)
		}
		c.Release()
		n := 0
		for rest := b; len(rest) > 0; {
			batch, r, err := record.Split(rest)
			if err != nil {
				break // a partial last batch
			}
			h, err := record.ParseHeader(batch)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, batch...)
			off = h.LastOffset() + 1
			rest = r
			n++
		}
		if n == 0 {
			t.Fatalf("no whole batch at offset %d (end %d)", off, end)
		}
	}
	return out
}

// waitFor polls cond until it holds or the test times out. Polling an
// engine's offsets is the event here: there is no channel for "the
// follower wrote".
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitSame waits until follower's log is byte-identical to leader's, with
// the same high watermark.
func waitSame(t testing.TB, leader, follower *engine.Partition) {
	t.Helper()
	waitFor(t, "the follower to catch up", func() bool {
		return follower.EndOffset() == leader.EndOffset() && follower.HighWatermark() == leader.HighWatermark()
	})
	lb, fb := logBytes(t, leader), logBytes(t, follower)
	if !bytes.Equal(lb, fb) {
		t.Fatalf("follower log (%d bytes) differs from the leader's (%d bytes)", len(fb), len(lb))
	}
}

// statusOf returns one partition's status.
func statusOf(t testing.TB, f *replica.Fetchers, topic string, partition int32) replica.Status {
	t.Helper()
	for _, s := range f.Status() {
		if s.Topic == topic && s.Partition == partition {
			return s
		}
	}
	t.Fatalf("no status for %s/%d", topic, partition)
	return replica.Status{}
}

// requester is a fault-injecting Request: a real kclient, with hooks.
type requester struct {
	c *kclient.Client
	// fetchCap caps the Fetch version (0: none).
	fetchCap int16
	// hook, if set, runs around each request: it may delay or fail it.
	mu   sync.Mutex
	hook func(ctx context.Context, addr string, req kmsg.Request, send func() (kmsg.Response, error)) (kmsg.Response, error)
	// keys counts requests by API key.
	keys map[int16]int
}

func newRequester(t testing.TB) *requester {
	r := &requester{c: kclient.New(kclient.Config{Logger: quietLogger()}), keys: make(map[int16]int)}
	t.Cleanup(func() { r.c.Close() })
	return r
}

func (r *requester) setHook(h func(ctx context.Context, addr string, req kmsg.Request, send func() (kmsg.Response, error)) (kmsg.Response, error)) {
	r.mu.Lock()
	r.hook = h
	r.mu.Unlock()
}

func (r *requester) count(key int16) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[key]
}

func (r *requester) request(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	if fr, ok := req.(*kmsg.FetchRequest); ok && r.fetchCap > 0 {
		fr.SetVersion(min(fr.GetVersion(), r.fetchCap))
	}
	r.mu.Lock()
	r.keys[req.Key()]++
	h := r.hook
	r.mu.Unlock()
	send := func() (kmsg.Response, error) { return r.c.Request(ctx, addr, req) }
	if h != nil {
		return h(ctx, addr, req, send)
	}
	return send()
}
