package broker

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

// produceRequests counts the Produce requests a client wrote (a kgo hook).
type produceRequests struct{ n atomic.Int64 }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (p *produceRequests) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil {
		p.n.Add(1)
	}
}

// BenchmarkProduceAcks compares acks=1 with acks=all on one node over
// loopback: franz-go, 1 KiB records, no idempotence, 5 produce requests in
// flight on one connection, disk and memory stores. "all" is answered at
// once (the high watermark follows the log end); "all-deferred" has a
// managed high watermark that a stand-in follower moves to the log end
// after each append, so produces park in the purgatory and are completed
// from another goroutine (parks/req says how many requests did).
//
//	go test -run '^$' -bench BenchmarkProduceAcks -benchtime 300000x -count 5 ./broker/
func BenchmarkProduceAcks(b *testing.B) {
	for _, store := range []string{"disk", "memory", "disk-cluster-of-one"} {
		for _, mode := range []string{"1", "all", "all-deferred"} {
			b.Run(store+"/acks="+mode, func(b *testing.B) { benchProduceAcks(b, store, mode) })
		}
	}
}

func benchProduceAcks(b *testing.B, store, mode string) {
	var opts engine.Options
	if store == "memory" {
		opts.Store = engine.NewMemoryStore()
	}
	if mode == "all-deferred" {
		opts.ManagedHighWatermarks = true
	}
	var ts *testServer
	if store == "disk-cluster-of-one" {
		// What `easel` runs by default: the broker in cluster mode over a
		// single raft voter (every produce checks the metadata's leader).
		ts = startClusterOfOne(b, opts)
		createTopic(b, ts.addr, "bench", 1, nil)
		waitFor(b, "the topic led here", func() bool {
			_, err := ts.b.localPartition("bench", 0, true)
			return err == nil
		})
	} else {
		ts = startServer(b, serverOpts{engine: opts})
		if err := ts.eng.CreateTopic("bench", engine.TopicConfig{}); err != nil {
			b.Fatal(err)
		}
	}
	if mode == "all-deferred" {
		p, _ := ts.eng.Partition("bench", 0)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); follow(ctx, p) }()
		b.Cleanup(func() { cancel(); wg.Wait() })
	}
	var reqs produceRequests
	acks := kgo.LeaderAck()
	if mode != "1" {
		acks = kgo.AllISRAcks()
	}
	cl := newClient(b, ts.addr,
		kgo.DefaultProduceTopic("bench"),
		kgo.RequiredAcks(acks),
		kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(5),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(1<<20),
		kgo.WithHooks(&reqs),
	)
	value := bytes.Repeat([]byte("x"), 1024)
	var wg sync.WaitGroup
	var failed sync.Once
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Do(func() { b.Error(err) })
		}
		wg.Done()
	}
	parks, sent := ts.b.parked.parks(), reqs.n.Load()
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Value: value}, cb)
	}
	wg.Wait()
	b.StopTimer()
	n := reqs.n.Load() - sent
	b.ReportMetric(float64(b.N)/float64(max(n, 1)), "records/req")
	b.ReportMetric(float64(ts.b.parked.parks()-parks)/float64(max(n, 1)), "parks/req")
}

// startClusterOfOne serves a broker in cluster mode over a single raft
// voter on an in-process transport, as the easel binary does by default.
func startClusterOfOne(t testing.TB, opts engine.Options) *testServer {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts.Logger, opts.ExternalMetadata, opts.ManagedHighWatermarks = log, true, true
	eng, err := engine.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &laterHandler{}
	srv, err := netio.Listen(netio.Config{Addr: "127.0.0.1:0", Logger: log}, h)
	if err != nil {
		t.Fatal(err)
	}
	port := int32(srv.Addr().(*net.TCPAddr).Port)
	const raftAddr = "localhost:9093"
	_, trans := raft.NewInmemTransport(raftAddr)
	node, err := controller.Start(controller.Config{
		Broker:        cluster.BrokerInfo{ID: 0, Host: "127.0.0.1", Port: port, RaftAddr: raftAddr},
		Dir:           dir + "/__cluster_metadata",
		Voters:        []controller.Voter{{ID: 0, Addr: raftAddr}},
		RaftTransport: trans,
		Raft:          controller.FastRaftTiming(),
		Logger:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-node.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("single voter not ready")
	}
	b := New(eng, Config{Host: "127.0.0.1", Port: port, Logger: log, Cluster: node})
	h.b = b
	go srv.Serve()
	t.Cleanup(func() {
		srv.Close()
		b.Close()
		node.Close()
		eng.Close()
	})
	return &testServer{eng: eng, b: b, srv: srv, addr: srv.Addr().String(), dir: dir, logs: logs}
}
