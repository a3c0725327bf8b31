package main

// Failover as a producer sees it: SIGKILL of a partition's leader while a
// client produces to that partition with acks=all, timed to the first
// record sent after the kill that is acknowledged.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/bench/internal/easelproc"
)

const (
	// failoverTimeout is how long a failover may take before it counts as
	// failed.
	failoverTimeout = 30 * time.Second
	// failoverEvery is the failover producer's send interval.
	failoverEvery = 5 * time.Millisecond
	// clientRetry is the failover client's retry backoff and metadata
	// minimum age: short, so that the figure is the cluster's, not the
	// client's (franz-go defaults: 250 ms–5 s backoff, 5 s metadata age).
	clientRetry = 10 * time.Millisecond
)

// killSample is one leader kill.
type killSample struct {
	victim, part int32
	controller   bool          // the victim was also the controller
	firstAck     time.Duration // kill → first acknowledged record sent after it
	newLeader    time.Duration // kill → a survivor's Metadata shows another leader
	isrBack      time.Duration // restart exec → full ISR on every partition
	errs         int64         // records that failed (none should: the client retries)
	failed       string
}

// failovers kills a leader of topic kills times, restarting it and waiting
// for a full ISR between kills. It picks a partition led by a broker that
// is not the controller where there is one.
func failovers(ctx context.Context, bs *brokers, topic string, parts, kills int, progress func(killSample)) ([]killSample, error) {
	if err := bs.CreateTopic(ctx, topic, parts, 3, nil); err != nil {
		return nil, err
	}
	var out []killSample
	for k := range kills {
		if err := bs.WaitReady(ctx, easelproc.ReadyTimeout); err != nil {
			return out, err
		}
		if err := bs.WaitTopic(ctx, topic, parts, 3, time.Minute); err != nil {
			return out, fmt.Errorf("kill %d: %w", k+1, err)
		}
		s, err := killOne(ctx, bs, topic, parts, k)
		if err != nil {
			return out, fmt.Errorf("kill %d: %w", k+1, err)
		}
		out = append(out, s)
		progress(s)
	}
	return out, nil
}

func killOne(ctx context.Context, bs *brokers, topic string, parts, k int) (killSample, error) {
	leaders, ctrl, err := bs.Leaders(ctx, topic)
	if err != nil {
		return killSample{}, err
	}
	s := killSample{part: int32(k % parts)}
	for i := range parts {
		p := int32((k + i) % parts)
		if l := leaders[p]; l >= 0 && l != ctrl {
			s.part = p
			break
		}
	}
	s.victim = leaders[s.part]
	s.controller = s.victim == ctrl
	victim := bs.ByID(s.victim)
	if victim == nil || !victim.Running() {
		return s, fmt.Errorf("partition %d led by %d, not a running broker", s.part, s.victim)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(bs.Seeds()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.MetadataMinAge(clientRetry),
		kgo.RetryBackoffFn(func(int) time.Duration { return clientRetry }),
		kgo.RecordDeliveryTimeout(failoverTimeout), kgo.DialTimeout(time.Second))
	if err != nil {
		return s, err
	}
	defer cl.Close()
	var (
		killAt  atomic.Int64 // unix nanos; 0 before the kill
		acked   atomic.Int64
		errs    atomic.Int64
		firstOK atomic.Int64 // unix nanos of the first ack of a record sent after the kill
		gotOK   = make(chan struct{})
		once    sync.Once
	)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(failoverEvery)
		defer tick.Stop()
		for pctx.Err() == nil {
			sent := time.Now().UnixNano()
			after := killAt.Load() != 0 && sent > killAt.Load()
			cl.Produce(pctx, &kgo.Record{Partition: s.part, Value: payload}, func(_ *kgo.Record, err error) {
				if err != nil {
					if pctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				acked.Add(1)
				if after {
					once.Do(func() { firstOK.Store(time.Now().UnixNano()); close(gotOK) })
				}
			})
			select {
			case <-pctx.Done():
			case <-tick.C:
			}
		}
	}()
	defer wg.Wait()
	defer stop()
	// Warm: the client knows the leader and its records are acknowledged.
	for deadline := time.Now().Add(30 * time.Second); acked.Load() < 20; {
		if time.Now().After(deadline) {
			return s, fmt.Errorf("no acks=all produce to partition %d before the kill (%d errors)", s.part, errs.Load())
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return s, ctx.Err()
		}
	}

	at, err := bs.Kill(victim)
	if err != nil {
		return s, err
	}
	killAt.Store(at.UnixNano())
	var newLeader atomic.Int64
	wctx, wcancel := context.WithTimeout(ctx, failoverTimeout)
	defer wcancel()
	for _, b := range bs.Live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil && newLeader.Load() == 0 {
				if m, err := easelproc.MetadataFrom(wctx, b.Kafka, topic); err == nil {
					if p, ok := m.Topics[topic].Partitions[s.part]; ok && p.Leader >= 0 && p.Leader != s.victim {
						newLeader.CompareAndSwap(0, time.Now().UnixNano())
						return
					}
				}
				sleepCtx(wctx, 10*time.Millisecond)
			}
		}()
	}
	select {
	case <-gotOK:
		s.firstAck = time.Duration(firstOK.Load() - at.UnixNano())
	case <-wctx.Done():
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		s.failed = fmt.Sprintf("no acknowledged produce within %v", failoverTimeout)
	}
	// Let the Metadata pollers finish (they stop at the first new leader).
	for wctx.Err() == nil && newLeader.Load() == 0 {
		sleepCtx(wctx, 5*time.Millisecond)
	}
	wcancel()
	if n := newLeader.Load(); n != 0 {
		s.newLeader = time.Duration(n - at.UnixNano())
	}
	stop()
	s.errs = errs.Load()

	if err := bs.Start(victim); err != nil {
		return s, err
	}
	if err := bs.WaitTopic(ctx, topic, parts, 3, time.Minute); err != nil {
		return s, fmt.Errorf("after restarting broker %d: %w", s.victim, err)
	}
	s.isrBack = time.Since(victim.Started)
	return s, nil
}
