package main

// The produce workloads: saturating throughput from several franz-go
// clients, and produce→ack latency at a fixed rate from one.

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// recordSize is the value size of every record (no key, no headers).
	recordSize = 1024
	// maxBuffered caps the bytes a throughput client buffers, so that a
	// run does not end with seconds of backlog.
	maxBuffered = 32 << 20
	// throughputLinger is the linger of the throughput clients: franz-go's
	// default, stated.
	throughputLinger = 10 * time.Millisecond
	// inflight is the number of produce requests a client keeps in flight
	// per broker (franz-go's idempotent limit, Kafka's default).
	inflight = 5
)

// payload is the value of every record: random, so incompressible.
var payload = func() []byte {
	b := make([]byte, recordSize)
	rand.Read(b)
	return b
}()

// producerOpts are the franz-go options of every bench producer: no
// idempotence (so that acks is the only difference between acks=1 and
// acks=all) with inflight requests in flight per broker, no compression,
// partitions chosen by the bench.
func producerOpts(seeds []string, topic, acks string, linger time.Duration) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(inflight),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedBytes(maxBuffered),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	if acks == "all" {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	}
	return opts
}

// tput is one throughput run.
type tput struct {
	MBps, RecPerSec float64
	Errors          int64
	FirstErr        string
	BrokerCores     float64 // CPU of the brokers over the window, in cores
	BenchCores      float64 // CPU of this process (the clients)
}

// throughput runs producers clients producing 1 KiB records as fast as they
// can to topic's parts partitions (client i starts at partition i and goes
// round), and measures the acknowledged records over dur after warm.
func throughput(ctx context.Context, bs *brokers, topic string, parts, producers int, acks string, warm, dur time.Duration) (tput, error) {
	var (
		acked, errs atomic.Int64
		mu          sync.Mutex
		firstErr    string
		wg          sync.WaitGroup
	)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var clients []*kgo.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := range producers {
		cl, err := kgo.NewClient(producerOpts(bs.Seeds(), topic, acks, throughputLinger)...)
		if err != nil {
			return tput{}, err
		}
		clients = append(clients, cl)
		cb := func(_ *kgo.Record, err error) {
			if err == nil {
				acked.Add(1)
				return
			}
			if pctx.Err() == nil {
				errs.Add(1)
				mu.Lock()
				if firstErr == "" {
					firstErr = err.Error()
				}
				mu.Unlock()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; pctx.Err() == nil; j++ {
				cl.Produce(pctx, &kgo.Record{Partition: int32(j % parts), Value: payload}, cb)
			}
		}()
	}
	if !sleepCtx(ctx, warm) {
		return tput{}, ctx.Err()
	}
	a0, t0 := acked.Load(), time.Now()
	b0, s0 := cpuOf(bs.Pids()), selfCPU()
	profiled := bs.profile(ctx, dur)
	if !sleepCtx(ctx, dur) {
		return tput{}, ctx.Err()
	}
	if err := <-profiled; err != nil {
		return tput{}, err
	}
	a1, t1 := acked.Load(), time.Now()
	b1, s1 := cpuOf(bs.Pids()), selfCPU()
	stop()
	wg.Wait()
	secs := t1.Sub(t0).Seconds()
	n := float64(a1 - a0)
	mu.Lock()
	defer mu.Unlock()
	return tput{MBps: n * recordSize / secs / 1e6, RecPerSec: n / secs, Errors: errs.Load(), FirstErr: firstErr,
		BrokerCores: (b1 - b0).Seconds() / secs, BenchCores: (s1 - s0).Seconds() / secs}, nil
}

// lat is one latency run: produce→ack percentiles.
type lat struct {
	P50, P99, P999, Max time.Duration
	N                   int
	Errors              int64
	FirstErr            string
	BrokerCores         float64
}

// latency produces 1 KiB records to partition 0 of topic at rate records a
// second from one client with linger 0, for warm+dur, and returns the
// percentiles of the records sent after warm. Each record's latency runs
// from the time it was due to be sent (open loop: a stalled client does
// not hide the stall) to its acknowledgement.
func latency(ctx context.Context, bs *brokers, topic string, acks string, rate int, warm, dur time.Duration) (lat, error) {
	cl, err := kgo.NewClient(producerOpts(bs.Seeds(), topic, acks, 0)...)
	if err != nil {
		return lat{}, err
	}
	defer cl.Close()
	var (
		mu       sync.Mutex
		ds       []time.Duration
		errs     int64
		firstErr string
	)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	from, end := start.Add(warm), start.Add(warm+dur)
	var b0 time.Duration
	measuring := false
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.After(end) {
			break
		}
		if d := time.Until(due); d > 0 && !sleepCtx(ctx, d) {
			return lat{}, ctx.Err()
		}
		if !measuring && !due.Before(from) {
			measuring, b0 = true, cpuOf(bs.Pids())
		}
		cl.Produce(ctx, &kgo.Record{Partition: 0, Value: payload}, func(_ *kgo.Record, err error) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			if !due.Before(from) {
				ds = append(ds, now.Sub(due))
			}
		})
	}
	b1 := cpuOf(bs.Pids())
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return lat{}, fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ds) == 0 {
		return lat{}, fmt.Errorf("no record acknowledged (%d errors, first: %s)", errs, firstErr)
	}
	slices.Sort(ds)
	return lat{P50: rank(ds, 0.50), P99: rank(ds, 0.99), P999: rank(ds, 0.999), Max: ds[len(ds)-1], N: len(ds),
		Errors: errs, FirstErr: firstErr, BrokerCores: (b1 - b0).Seconds() / dur.Seconds()}, nil
}

// rank is the nearest-rank quantile q of sorted ds.
func rank(ds []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
