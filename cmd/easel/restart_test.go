package main

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// acked is a record the broker acknowledged, and where.
type acked struct {
	key, value string
	partition  int32
	offset     int64
}

// restartValue is the value of record i: distinct per record and of varied
// length.
func restartValue(i int) string {
	return fmt.Sprintf("value %d %0*d", i, i%300, i)
}

// TestRestartAfterKill produces with acks=all while the broker is killed
// with SIGKILL, restarts it on the same data directory and checks that every
// acknowledged record is there at its acknowledged offset; then stops it with
// SIGTERM (exit 0), restarts it and checks that recovery was skipped and the
// records are still there.
func TestRestartAfterKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic = "crash"
	args := []string{"--data-dir", dir, "--num-partitions", "3"}
	p := startEasel(t, args...)
	p.waitLog(regexp.MustCompile(`msg="engine opened"`), time.Second)

	ctx := testContext(t, 2*time.Minute)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowAutoTopicCreation(),
		kgo.RetryTimeout(2*time.Second), kgo.RecordRetries(3), kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		acks    []acked
		enough  = make(chan struct{})
		pending sync.WaitGroup
		stopped = make(chan struct{})
	)
	const wantAcked = 3000
	pctx, stop := context.WithCancel(ctx)
	go func() {
		defer close(stopped)
		for i := 0; pctx.Err() == nil; i++ {
			r := &kgo.Record{Key: fmt.Appendf(nil, "k%06d", i), Value: []byte(restartValue(i))}
			pending.Add(1)
			cl.Produce(pctx, r, func(r *kgo.Record, err error) {
				defer pending.Done()
				if err != nil {
					return
				}
				mu.Lock()
				acks = append(acks, acked{string(r.Key), string(r.Value), r.Partition, r.Offset})
				if len(acks) == wantAcked {
					close(enough)
				}
				mu.Unlock()
			})
		}
	}()
	select {
	case <-enough:
	case <-ctx.Done():
		t.Fatal("producing: too slow")
	}
	if code := p.signal(syscall.SIGKILL, 30*time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGKILL", code)
	}
	stop()
	cl.Close() // fails the records not yet acknowledged
	<-stopped
	pending.Wait()
	mu.Lock()
	all := acks
	mu.Unlock()
	t.Logf("%d records acknowledged before SIGKILL", len(all))

	// Unclean restart: recovery runs, every acknowledged record survives.
	p = startEasel(t, args...)
	p.waitLog(regexp.MustCompile(`msg="engine opened".* clean=false`), time.Second)
	checkAcked(ctx, t, p.addr, topic, all)
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	p.waitLog(regexp.MustCompile(`msg="shutdown complete" clean=true`), time.Second)

	// Clean restart: recovery is skipped, the records are still there.
	p = startEasel(t, args...)
	p.waitLog(regexp.MustCompile(`msg="engine opened".* clean=true`), time.Second)
	checkAcked(ctx, t, p.addr, topic, all)
	if code := p.signal(syscall.SIGINT, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", code)
	}
}

// checkAcked consumes topic up to its end offsets and checks that every
// acknowledged record is at its acknowledged offset.
func checkAcked(ctx context.Context, t *testing.T, addr, topic string, want []acked) {
	t.Helper()
	cl := newClient(t, addr)
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := ends.Error(); err != nil {
		t.Fatal(err)
	}
	consume := make(map[string]map[int32]kgo.Offset)
	consume[topic] = make(map[int32]kgo.Offset)
	total := 0
	ends.Each(func(o kadm.ListedOffset) {
		consume[topic][o.Partition] = kgo.NewOffset().At(0)
		total += int(o.Offset)
	})
	if len(consume[topic]) != 3 {
		t.Fatalf("%d partitions after restart, want 3", len(consume[topic]))
	}
	cl.AddConsumePartitions(consume)
	got := make(map[int32]map[int64]*kgo.Record)
	for _, r := range consumeN(ctx, t, cl, total) {
		if got[r.Partition] == nil {
			got[r.Partition] = make(map[int64]*kgo.Record)
		}
		got[r.Partition][r.Offset] = r
	}
	for _, a := range want {
		r := got[a.partition][a.offset]
		if r == nil {
			t.Fatalf("acknowledged record %s at %d/%d is missing (end offsets %v)", a.key, a.partition, a.offset, ends)
		}
		if string(r.Key) != a.key || string(r.Value) != a.value {
			t.Fatalf("at %d/%d: record %q=%q, acknowledged %q=%q", a.partition, a.offset, r.Key, r.Value, a.key, a.value)
		}
	}
}
