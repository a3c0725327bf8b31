package engine

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

// A leader's high watermark moves while an append holds the partition lock
// (writing a producer's batch): a follower's fetch, which moves it, never
// waits for a write.
func TestHighWatermarkDoesNotWaitForAppends(t *testing.T) {
	opts := quietOpts()
	opts.ManagedHighWatermarks = true
	e := mustOpen(t, t.TempDir(), opts)
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	for range 3 {
		if _, err := p.Append(simpleBatch(t, 2, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock() // an append in progress
	done := make(chan int64, 1)
	go func() {
		p.SetHighWatermark(3) // inside the second batch: rounded down
		p.SetSoleReplica(true)
		done <- p.HighWatermark()
	}()
	select {
	case hw := <-done:
		p.mu.Unlock()
		if hw != 6 {
			t.Fatalf("high watermark %d, want the log end 6", hw)
		}
	case <-time.After(10 * time.Second):
		p.mu.Unlock()
		<-done
		t.Fatal("SetHighWatermark waited for the append lock")
	}
}

// Cuts of the log end race with moves of the high watermark and fsyncs
// made without the partition lock: neither the high watermark nor the
// flushed offset is ever left above the log end.
func TestCutsRaceHighWatermarkAndFsync(t *testing.T) {
	opts := quietOpts()
	opts.ManagedHighWatermarks = true
	e, l, f := followerPair(t, t.TempDir(), opts, 12, 12)
	defer e.Close()
	batches := splitBatches(t, readAllBatchesTo(t, l))
	w, err := f.Follower(2)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait() // before the engine closes (deferred first)
	defer close(stop)
	var flushErr sync.Once
	spin(&wg, stop, func() { f.SetHighWatermark(1 << 40) })
	spin(&wg, stop, func() {
		if err := f.Flush(); err != nil {
			flushErr.Do(func() { t.Error(err) })
		}
	})
	check := func(when string) {
		t.Helper()
		if hw, fl, end := f.HighWatermark(), f.flushed.Load(), f.EndOffset(); hw > end || fl > end {
			t.Fatalf("%s: high watermark %d, flushed %d, log end %d", when, hw, fl, end)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 100 {
		end, err := w.TruncateTo(rng.Int64N(f.EndOffset()+1), true)
		if err != nil {
			t.Fatal(err)
		}
		check("after the cut")
		// Let the fsync that may have begun before the cut finish.
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
		check("after a pause")
		var rest [][]byte
		for _, b := range batches {
			if h, _ := record.ParseHeader(b); h.BaseOffset >= end {
				rest = append(rest, b)
			}
		}
		if _, err := w.Append(bytes.Join(rest, nil)); err != nil {
			t.Fatalf("round %d: append from %d: %v", round, end, err)
		}
		check("after the append")
	}
}
