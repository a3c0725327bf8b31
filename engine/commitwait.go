package engine

import (
	"container/heap"
	"sync"
	"sync/atomic"
)

// commitWaits holds the channels of Committed: one per wait, ordered by the
// offset the high watermark must pass. A move of the high watermark closes
// only the channels it satisfies, so that an acks=all produce is woken once,
// when its batch is committed, and not at every append and every follower
// fetch: with many produces in flight a wake-up of all of them at each move
// kept the leader's fetch handlers waiting for the CPU behind them.
type commitWaits struct {
	// n is len(h), read without mu so that an append with nobody waiting
	// takes no lock.
	n  atomic.Int64
	mu sync.Mutex
	h  commitHeap
}

type commitWait struct {
	offset int64
	ch     chan struct{}
}

// commitHeap is a min-heap of waits by offset (container/heap).
type commitHeap []commitWait

func (h commitHeap) Len() int           { return len(h) }
func (h commitHeap) Less(i, j int) bool { return h[i].offset < h[j].offset }
func (h commitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *commitHeap) Push(x any)        { *h = append(*h, x.(commitWait)) }
func (h *commitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = commitWait{}
	*h = old[:len(old)-1]
	return w
}

// Committed returns a channel that is closed once the high watermark passes
// offset (HighWatermark() > offset), and also at any change that may end a
// wait for it otherwise: a truncation, a change of role or leader epoch, the
// log started over, Close. Appends and other moves of the high watermark do
// not close it. A wait must check the partition again after the channel is
// closed (and call Committed again to go on waiting); calling Committed
// before that check loses no wake-up.
//
// A channel whose waiter gave up stays registered until the high watermark
// passes its offset or such a change happens.
func (p *Partition) Committed(offset int64) <-chan struct{} {
	ch := make(chan struct{})
	if p.closed.Load() || p.hw.Load() > offset {
		close(ch)
		return ch
	}
	c := &p.commits
	c.mu.Lock()
	heap.Push(&c.h, commitWait{offset: offset, ch: ch})
	c.n.Store(int64(len(c.h)))
	c.mu.Unlock()
	// The high watermark may have passed offset (or the partition closed)
	// between the check and the push, with its release done already.
	if p.closed.Load() {
		p.releaseCommits(true)
	} else if p.hw.Load() > offset {
		p.releaseCommits(false)
	}
	return ch
}

// releaseCommits closes the channels of Committed that the high watermark
// has passed, or all of them.
func (p *Partition) releaseCommits(all bool) {
	c := &p.commits
	if c.n.Load() == 0 {
		return // a Committed that registers now checks again after
	}
	c.mu.Lock()
	defer func() {
		c.n.Store(int64(len(c.h)))
		c.mu.Unlock()
	}()
	if all {
		for _, w := range c.h {
			close(w.ch)
		}
		clear(c.h)
		c.h = c.h[:0]
		return
	}
	hw := p.hw.Load()
	for len(c.h) > 0 && c.h[0].offset < hw {
		close(heap.Pop(&c.h).(commitWait).ch)
	}
}
