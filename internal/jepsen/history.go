package jepsen

import (
	"slices"
	"sync"
	"time"
)

// Outcome is how a send ended.
type Outcome int8

const (
	// Acked: the broker acknowledged the value at (Partition, Offset).
	Acked Outcome = iota + 1
	// Failed: the value was definitely not written (the client knows no
	// attempt of it was appended).
	Failed
	// Indeterminate: an error or a timeout after which the value may or may
	// not have been written.
	Indeterminate
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Failed:
		return "failed"
	case Indeterminate:
		return "indeterminate"
	}
	return "unknown"
}

// Send is one produce attempt of one value.
type Send struct {
	Producer int
	// Value is unique per run: no two sends carry the same value.
	Value string
	// Partition is the partition the value was sent to; for Acked, the one
	// it was acknowledged in.
	Partition int32
	// Offset is the acknowledged offset; only meaningful for Acked.
	Offset     int64
	Start, End time.Time
	Outcome    Outcome
	// Err is the error of a Failed or Indeterminate send.
	Err string
}

// FinalReader is the consumer id of polls made by the final read.
const FinalReader = -1

// Poll is one record delivered to one consumer.
type Poll struct {
	// Consumer is the consumer's id, or FinalReader.
	Consumer int
	// Epoch counts the consumer's rebalances and seeks: offsets must grow
	// within one (Consumer, Epoch, Partition).
	Epoch     int
	Partition int32
	Offset    int64
	Value     string
	Time      time.Time
}

// History records sends and polls; its methods are safe for concurrent
// use. Polls of one consumer must be recorded by one goroutine at a time,
// in the order the consumer got them.
type History struct {
	mu struct {
		sync.Mutex
		sends []Send
		polls []Poll
		ends  map[int32]int64
		acked int // Invariant: the number of sends with Outcome Acked
	}
}

// NewHistory returns an empty history.
func NewHistory() *History {
	h := &History{}
	h.mu.ends = map[int32]int64{}
	return h
}

// AddSend records a completed send attempt.
func (h *History) AddSend(s Send) {
	h.mu.Lock()
	h.mu.sends = append(h.mu.sends, s)
	if s.Outcome == Acked {
		h.mu.acked++
	}
	h.mu.Unlock()
}

// AddPolls records polls in the order given.
func (h *History) AddPolls(ps ...Poll) {
	h.mu.Lock()
	h.mu.polls = append(h.mu.polls, ps...)
	h.mu.Unlock()
}

// FinalEnd records the end offset (the high watermark) of a partition at
// the final read: the final read covers every offset below it.
func (h *History) FinalEnd(partition int32, end int64) {
	h.mu.Lock()
	h.mu.ends[partition] = end
	h.mu.Unlock()
}

// Sends returns a copy of the sends in recording order.
func (h *History) Sends() []Send {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.mu.sends)
}

// Polls returns a copy of the polls in recording order.
func (h *History) Polls() []Poll {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.mu.polls)
}

// Ends returns a copy of the final end offsets by partition.
func (h *History) Ends() map[int32]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int32]int64, len(h.mu.ends))
	for p, e := range h.mu.ends {
		out[p] = e
	}
	return out
}

// Acked returns how many sends have been acknowledged so far.
func (h *History) Acked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.acked
}
