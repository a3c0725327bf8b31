package engine

import (
	"sync"
	"testing"
	"time"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// managedLeader is the partition t/0 of an engine with managed high
// watermarks, leader in epoch 1, holding batches batches of records
// records each.
func managedLeader(t *testing.T, batches, records int) *Partition {
	t.Helper()
	opts := quietOpts()
	opts.ManagedHighWatermarks = true
	e := mustOpen(t, t.TempDir(), opts)
	t.Cleanup(func() { e.Close() })
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	if err := p.BecomeLeader(1); err != nil {
		t.Fatal(err)
	}
	for range batches {
		if _, err := p.Append(simpleBatch(t, records, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Committed is closed when the high watermark passes its offset, and at
// changes that may end the wait otherwise; appends and smaller moves of the
// high watermark leave it open.
func TestCommitted(t *testing.T) {
	cases := []struct {
		name   string
		offset int64
		do     func(t *testing.T, p *Partition)
		closed bool
	}{
		{"append", 3, func(t *testing.T, p *Partition) {
			if _, err := p.Append(simpleBatch(t, 2, 10, 1)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"hw to the offset", 3, func(t *testing.T, p *Partition) { p.SetHighWatermark(3) }, false},
		{"hw past the offset", 3, func(t *testing.T, p *Partition) { p.SetHighWatermark(4) }, true},
		{"already passed", 1, func(t *testing.T, p *Partition) {}, true},
		{"sole replica", 3, func(t *testing.T, p *Partition) { p.SetSoleReplica(true) }, true},
		{"truncation", 3, func(t *testing.T, p *Partition) {
			if _, err := p.TruncateTo(5, false); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"new leader epoch", 3, func(t *testing.T, p *Partition) {
			if err := p.BecomeLeader(2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"follower", 3, func(t *testing.T, p *Partition) {
			if err := p.BecomeFollower(2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"close", 3, func(t *testing.T, p *Partition) { p.close() }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := managedLeader(t, 3, 2)
			p.SetHighWatermark(2)
			other := p.Committed(5) // a later batch: only the structural changes release it
			ch := p.Committed(c.offset)
			c.do(t, p)
			if got := isClosed(ch); got != c.closed {
				t.Fatalf("Committed(%d) closed %v after %s (hw %d), want %v", c.offset, got, c.name, p.HighWatermark(), c.closed)
			}
			if c.name == "hw past the offset" || c.name == "append" || c.name == "hw to the offset" {
				if isClosed(other) {
					t.Fatalf("Committed(5) closed after %s with hw %d", c.name, p.HighWatermark())
				}
			}
		})
	}
}

// Waits are released in offset order as the high watermark moves, whatever
// the order they were registered in.
func TestCommittedOrder(t *testing.T) {
	p := managedLeader(t, 10, 2)
	offsets := []int64{13, 1, 7, 19, 3, 11, 5, 17, 9, 15, 0}
	chs := make(map[int64]<-chan struct{})
	for _, o := range offsets {
		chs[o] = p.Committed(o)
	}
	for hw := int64(1); hw <= 20; hw++ {
		got := p.SetHighWatermark(hw) // moves at batch boundaries
		for _, o := range offsets {
			if closed, want := isClosed(chs[o]), o < got; closed != want {
				t.Fatalf("hw %d: Committed(%d) closed %v, want %v", got, o, closed, want)
			}
		}
	}
	if n := len(p.commits.h); n != 0 {
		t.Fatalf("%d waits left registered", n)
	}
}

// A wait registered after Close is released at once.
func TestCommittedAfterClose(t *testing.T) {
	p := managedLeader(t, 1, 2)
	p.close()
	if ch := p.Committed(5); !isClosed(ch) {
		t.Fatal("Committed after Close is not closed")
	}
}

// Waits registered while the high watermark moves are all released once it
// has passed them: none is lost between the check and the registration.
func TestCommittedConcurrent(t *testing.T) {
	const batches = 200
	p := managedLeader(t, batches, 1)
	var wg sync.WaitGroup
	chs := make([][]<-chan struct{}, 4)
	for g := range chs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range int64(batches) {
				chs[g] = append(chs[g], p.Committed(o))
			}
		}()
	}
	for hw := int64(1); hw <= batches; hw++ {
		p.SetHighWatermark(hw)
	}
	wg.Wait()
	for g := range chs {
		for o, ch := range chs[g] {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatalf("Committed(%d) not released with hw %d", o, p.HighWatermark())
			}
		}
	}
}
