package jepsen_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/easel-io/easel/internal/jepsen"
)

var t0 = time.Unix(1700000000, 0)

// clean is a history without anomalies: three acked values, one
// indeterminate that was written, one indeterminate that was not, and one
// definite failure; two consumers (one rebalanced and re-reading) and a
// final read of both partitions.
func clean() *jepsen.History {
	h := jepsen.NewHistory()
	h.AddSend(jepsen.Send{Producer: 0, Value: "a", Partition: 0, Offset: 0, Start: t0, End: t0, Outcome: jepsen.Acked})
	h.AddSend(jepsen.Send{Producer: 0, Value: "b", Partition: 0, Offset: 1, Start: t0, End: t0, Outcome: jepsen.Acked})
	h.AddSend(jepsen.Send{Producer: 1, Value: "c", Partition: 1, Offset: 0, Start: t0, End: t0, Outcome: jepsen.Acked})
	h.AddSend(jepsen.Send{Producer: 1, Value: "d", Partition: 1, Start: t0, End: t0, Outcome: jepsen.Indeterminate, Err: "timeout"})
	h.AddSend(jepsen.Send{Producer: 1, Value: "e", Partition: 1, Start: t0, End: t0, Outcome: jepsen.Indeterminate, Err: "timeout"})
	h.AddSend(jepsen.Send{Producer: 0, Value: "f", Partition: 0, Start: t0, End: t0, Outcome: jepsen.Failed, Err: "too large"})
	h.AddPolls(
		jepsen.Poll{Consumer: 0, Epoch: 1, Partition: 0, Offset: 0, Value: "a"},
		jepsen.Poll{Consumer: 0, Epoch: 1, Partition: 0, Offset: 1, Value: "b"},
		jepsen.Poll{Consumer: 1, Epoch: 1, Partition: 1, Offset: 0, Value: "c"},
		// Rebalanced: consumer 1 takes partition 0 and reads it again.
		jepsen.Poll{Consumer: 1, Epoch: 2, Partition: 0, Offset: 0, Value: "a"},
		jepsen.Poll{Consumer: 1, Epoch: 2, Partition: 1, Offset: 1, Value: "d"},
	)
	final(h, 0, "a", "b")
	final(h, 1, "c", "d")
	return h
}

// final records a final read of partition p holding values from offset 0.
func final(h *jepsen.History, p int32, values ...string) {
	for i, v := range values {
		h.AddPolls(jepsen.Poll{Consumer: jepsen.FinalReader, Partition: p, Offset: int64(i), Value: v})
	}
	h.FinalEnd(p, int64(len(values)))
}

func TestCheckClean(t *testing.T) {
	r := jepsen.Check(clean())
	if !r.Valid() {
		t.Fatalf("clean history has anomalies:\n%v", r)
	}
	if r.Sends != 6 || r.Acked != 3 || r.Failed != 1 || r.Indeterminate != 2 || r.IndeterminateWritten != 1 || r.FinalRecords != 4 {
		t.Errorf("counts: %s", r.Summary())
	}
}

// Each anomaly is found, counted and given as a counterexample.
func TestCheckAnomalies(t *testing.T) {
	ack := func(v string, p int32, o int64) jepsen.Send {
		return jepsen.Send{Value: v, Partition: p, Offset: o, Start: t0, End: t0, Outcome: jepsen.Acked}
	}
	poll := func(c, e int, p int32, o int64, v string) jepsen.Poll {
		return jepsen.Poll{Consumer: c, Epoch: e, Partition: p, Offset: o, Value: v}
	}
	tests := []struct {
		name  string
		build func(h *jepsen.History)
		kind  string
		check func(t *testing.T, r *jepsen.Result)
	}{
		{"lost: acked, not in the final read", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddSend(ack("b", 0, 1))
			h.AddPolls(poll(0, 1, 0, 0, "a"))
			final(h, 0, "a")
		}, "Lost", func(t *testing.T, r *jepsen.Result) {
			if l := r.Lost[0]; l.Value != "b" || l.Acked != (jepsen.Pos{Partition: 0, Offset: 1}) || l.FinalEnd != 1 {
				t.Errorf("lost %+v", l)
			}
		}},
		{"lost: overwritten at its offset", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddSend(jepsen.Send{Value: "x", Partition: 0, Outcome: jepsen.Indeterminate})
			h.AddPolls(poll(0, 1, 0, 0, "x"))
			final(h, 0, "x")
		}, "Lost", func(t *testing.T, r *jepsen.Result) {
			if l := r.Lost[0]; l.Value != "a" || l.FinalValue != "x" {
				t.Errorf("lost %+v", l)
			}
			if r.Counts["InconsistentOffsets"] != 1 {
				t.Errorf("the overwritten offset is not inconsistent: %v", r)
			}
		}},
		{"inconsistent offset: two values read at one offset", func(h *jepsen.History) {
			h.AddSend(jepsen.Send{Value: "a", Partition: 0, Outcome: jepsen.Indeterminate})
			h.AddSend(jepsen.Send{Value: "b", Partition: 0, Outcome: jepsen.Indeterminate})
			h.AddPolls(poll(0, 1, 0, 0, "a"))
			final(h, 0, "b")
		}, "InconsistentOffsets", func(t *testing.T, r *jepsen.Result) {
			io := r.InconsistentOffsets[0]
			if io.Pos != (jepsen.Pos{}) || len(io.Values) != 2 || io.Values["a"][0] != "consumer 0" || io.Values["b"][0] != "final" {
				t.Errorf("inconsistent %+v", io)
			}
		}},
		{"duplicate: one value at two offsets", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddPolls(poll(0, 1, 0, 0, "a"), poll(0, 1, 0, 1, "a"))
			final(h, 0, "a", "a")
		}, "Duplicates", func(t *testing.T, r *jepsen.Result) {
			if d := r.Duplicates[0]; d.Value != "a" || len(d.Positions) != 2 {
				t.Errorf("duplicate %+v", d)
			}
		}},
		{"duplicate: acked at one offset, read at another", func(h *jepsen.History) {
			h.AddSend(ack("a", 1, 5))
			h.AddPolls(poll(0, 1, 1, 0, "a"))
			final(h, 1, "a")
		}, "Duplicates", func(t *testing.T, r *jepsen.Result) {
			if d := r.Duplicates[0]; d.Positions[0] != (jepsen.Pos{Partition: 1}) || d.Positions[1] != (jepsen.Pos{Partition: 1, Offset: 5}) {
				t.Errorf("duplicate %+v", d)
			}
		}},
		{"unseen: in the final read, never polled", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddSend(ack("b", 0, 1))
			h.AddPolls(poll(0, 1, 0, 0, "a"))
			final(h, 0, "a", "b")
		}, "Unseen", func(t *testing.T, r *jepsen.Result) {
			if u := r.Unseen[0]; u.Value != "b" {
				t.Errorf("unseen %+v", u)
			}
		}},
		{"non-monotonic: offsets back within an epoch", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddSend(ack("b", 0, 1))
			h.AddPolls(poll(3, 7, 0, 0, "a"), poll(3, 7, 0, 1, "b"), poll(3, 7, 0, 0, "a"))
			final(h, 0, "a", "b")
		}, "NonMonotonic", func(t *testing.T, r *jepsen.Result) {
			if n := r.NonMonotonic[0]; n.Consumer != 3 || n.Epoch != 7 || n.Prev != 1 || n.Next != 0 {
				t.Errorf("non-monotonic %+v", n)
			}
		}},
		{"skipped: a record between two successive polls", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddSend(ack("b", 0, 1))
			h.AddSend(ack("c", 0, 2))
			h.AddPolls(poll(0, 1, 0, 0, "a"), poll(0, 1, 0, 2, "c"), poll(1, 1, 0, 1, "b"))
			final(h, 0, "a", "b", "c")
		}, "Skipped", func(t *testing.T, r *jepsen.Result) {
			if s := r.Skipped[0]; s.Prev != 0 || s.Next != 2 || s.Missed != 1 {
				t.Errorf("skipped %+v", s)
			}
		}},
		{"aborted read: a failed send read", func(h *jepsen.History) {
			h.AddSend(jepsen.Send{Value: "a", Partition: 0, Outcome: jepsen.Failed, Err: "rejected"})
			h.AddPolls(poll(0, 1, 0, 0, "a"))
			final(h, 0, "a")
		}, "AbortedReads", func(t *testing.T, r *jepsen.Result) {
			if a := r.AbortedReads[0]; a.Reason != "send failed" || a.Value != "a" {
				t.Errorf("aborted read %+v", a)
			}
		}},
		{"aborted read: polled, then vanished", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddSend(jepsen.Send{Value: "b", Partition: 0, Outcome: jepsen.Indeterminate})
			h.AddPolls(poll(0, 1, 0, 0, "a"), poll(0, 1, 0, 1, "b"))
			final(h, 0, "a")
		}, "AbortedReads", func(t *testing.T, r *jepsen.Result) {
			if a := r.AbortedReads[0]; a.Reason != "vanished" || a.Value != "b" || a.FinalValue != "" {
				t.Errorf("aborted read %+v", a)
			}
		}},
		{"unexpected: a value no one sent", func(h *jepsen.History) {
			h.AddSend(ack("a", 0, 0))
			h.AddPolls(poll(0, 1, 0, 0, "a"), poll(0, 1, 0, 1, "zz"))
			final(h, 0, "a")
		}, "Unexpected", func(t *testing.T, r *jepsen.Result) {
			if u := r.Unexpected[0]; u.Value != "zz" {
				t.Errorf("unexpected %+v", u)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := jepsen.NewHistory()
			tt.build(h)
			r := jepsen.Check(h)
			if r.Valid() || r.Counts[tt.kind] == 0 {
				t.Fatalf("no %s found:\n%v", tt.kind, r)
			}
			tt.check(t, r)
			t.Log(r)
		})
	}
}

// Counterexample lists are bounded; the counts are not.
func TestCheckBounded(t *testing.T) {
	h := jepsen.NewHistory()
	for i := range 100 {
		h.AddSend(jepsen.Send{Value: fmt.Sprint(i), Partition: 0, Offset: int64(i), Outcome: jepsen.Acked})
	}
	h.FinalEnd(0, 100)
	r := jepsen.Check(h)
	if r.Counts["Lost"] != 100 || len(r.Lost) != jepsen.MaxExamples {
		t.Fatalf("lost: count %d, %d examples", r.Counts["Lost"], len(r.Lost))
	}
}

// Recording is safe from many goroutines at once.
func TestHistoryConcurrent(t *testing.T) {
	h := jepsen.NewHistory()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				v := fmt.Sprintf("%d-%d", g, i)
				h.AddSend(jepsen.Send{Producer: g, Value: v, Partition: int32(g), Offset: int64(i), Outcome: jepsen.Acked})
				h.AddPolls(jepsen.Poll{Consumer: g, Epoch: 1, Partition: int32(g), Offset: int64(i), Value: v})
				h.AddPolls(jepsen.Poll{Consumer: jepsen.FinalReader, Partition: int32(g), Offset: int64(i), Value: v})
				_ = h.Acked()
			}
			h.FinalEnd(int32(g), 200)
		}()
	}
	wg.Wait()
	r := jepsen.Check(h)
	if !r.Valid() || r.Acked != 1600 || h.Acked() != 1600 || r.FinalRecords != 1600 {
		t.Fatalf("%v", r)
	}
}
