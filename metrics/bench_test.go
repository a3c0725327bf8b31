package metrics

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

// BenchmarkProduceMetrics measures what metrics cost produce throughput.
// Two single-node brokers on disk engines serve over loopback, one with
// the netio and engine observers and the scrape-time collectors (scraped
// once a second, as a busy Prometheus would at most), one without any;
// franz-go produces 1 KiB records to each with acks=1, no idempotence,
// linger 0 and 5 requests in flight (as BenchmarkProduceAcks/disk/acks=1
// in package broker). The records go in rounds of 5000, alternately to
// each broker (which one goes first alternates too), so that a noisy
// machine slows both alike; it reports each side's ns per record, the
// median over rounds of on÷off time as overhead-% (negative: noise), and
// how many records a Produce request carried (metrics cost per request:
// BenchmarkObserveRequest).
//
// "batched" keeps the client's buffer full (hundreds of records a request);
// "one-per-request" produces synchronously, one record a request, where
// the cost per request weighs most.
//
//	go test -run '^$' -bench BenchmarkProduceMetrics/batched -benchtime 2000000x ./metrics/
//	go test -run '^$' -bench BenchmarkProduceMetrics/one-per-request -benchtime 40000x ./metrics/
//
// one-per-request-control is the same with metrics off on both sides: its
// overhead-% is the comparison's own bias and noise.
func BenchmarkProduceMetrics(b *testing.B) {
	b.Run("batched", func(b *testing.B) { benchProduceMetrics(b, false, 5000, true) })
	b.Run("one-per-request", func(b *testing.B) { benchProduceMetrics(b, true, 200, true) })
	// The control: metrics off on both sides, to show the bias and noise
	// of the comparison itself.
	b.Run("one-per-request-control", func(b *testing.B) { benchProduceMetrics(b, true, 200, false) })
}

func benchProduceMetrics(b *testing.B, oneByOne bool, round int, on bool) {
	sides := [2]*produceSide{newProduceSide(b, false, oneByOne), newProduceSide(b, on, oneByOne)}
	var took [2]time.Duration
	var ratios []float64
	reqs := sides[1].reqs.n.Load()
	b.SetBytes(2 * 1024) // a record to each side per op
	b.ReportAllocs()
	b.ResetTimer()
	for i, r := 0, 0; i < b.N; i, r = i+round, r+1 {
		k := min(round, b.N-i)
		var t [2]time.Duration
		for j := range 2 {
			side := (j + r) % 2
			start := time.Now()
			sides[side].produce(b, k)
			t[side] = time.Since(start)
			took[side] += t[side]
		}
		ratios = append(ratios, float64(t[1])/float64(t[0]))
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "ns/rec-off")
	b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N), "ns/rec-on")
	b.ReportMetric((ratios[len(ratios)/2]-1)*100, "overhead-%")
	b.ReportMetric(float64(len(ratios)), "rounds")
	b.ReportMetric(float64(b.N)/float64(max(sides[1].reqs.n.Load()-reqs, 1)), "records/req")
}

// produceSide is one broker of BenchmarkProduceMetrics and its producer.
type produceSide struct {
	cl    *kgo.Client
	value []byte
	reqs  produceRequests
	sync  bool // one record per request: each waits for the previous
}

// produceRequests counts the Produce requests a client wrote (a kgo hook).
type produceRequests struct{ n atomic.Int64 }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (p *produceRequests) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil {
		p.n.Add(1)
	}
}

func newProduceSide(b *testing.B, on, oneByOne bool) *produceSide {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var m *Metrics
	opts := engine.Options{Logger: log}
	ncfg := netio.Config{Addr: "127.0.0.1:0", Logger: log}
	if on {
		m = New()
		opts.Observer = m.EngineObserver()
		ncfg.Observer = m.NetObserver()
	}
	eng, err := engine.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	if err := eng.CreateTopic("bench", engine.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	br := broker.New(eng, broker.Config{Logger: log})
	srv, err := netio.Listen(ncfg, br)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve()
	b.Cleanup(func() { srv.Close(); br.Close() })
	if on {
		m.Watch(Sources{Engine: eng, Broker: br})
		stop := make(chan struct{})
		var scrapes sync.WaitGroup
		scrapes.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := m.Registry().Gather(); err != nil {
						b.Error(err)
					}
				}
			}
		})
		b.Cleanup(func() { close(stop); scrapes.Wait() })
	}
	s := &produceSide{value: bytes.Repeat([]byte("x"), 1024), sync: oneByOne}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr().String()),
		kgo.WithHooks(&s.reqs),
		kgo.DefaultProduceTopic("bench"),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(5),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(1<<20),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	s.cl = cl
	s.produce(b, 1000) // warm up: connection, metadata, the metrics' first resolution
	return s
}

// produce produces n records and waits for their acknowledgements: all at
// once, or one after the other.
func (s *produceSide) produce(b *testing.B, n int) {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: s.value}
	}
	batch := n
	if s.sync {
		batch = 1
	}
	for len(recs) > 0 {
		if err := s.cl.ProduceSync(context.Background(), recs[:batch]...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		recs = recs[batch:]
	}
}

// BenchmarkObserveRequest is the cost of counting one request (counter,
// three histograms), one append (two histograms) and the three clock reads
// netio takes per request when an Observer is set.
func BenchmarkObserveRequest(b *testing.B) {
	m := New()
	net, eng := m.NetObserver(), m.EngineObserver()
	net.RequestDone(0, 9, 0, 0, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			t1 := time.Now()
			t2 := time.Now()
			net.RequestDone(0, 9, t1.Sub(t0), t2.Sub(t1), time.Since(t2))
			eng.Appended(1024, 1)
		}
	})
}
