package jepsen

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// MaxExamples bounds each list of counterexamples in a Result; the counts
// are complete.
const MaxExamples = 10

// Pos is a record's position.
type Pos struct {
	Partition int32
	Offset    int64
}

func (p Pos) String() string { return fmt.Sprintf("%d/%d", p.Partition, p.Offset) }

// LostWrite is an acknowledged value absent from the final read.
type LostWrite struct {
	Value string
	Acked Pos
	// AckedAt is when the acknowledgement arrived.
	AckedAt time.Time
	// FinalEnd is the partition's end offset at the final read (-1: none
	// recorded); FinalValue what the final read holds at Acked ("" if
	// nothing).
	FinalEnd   int64
	FinalValue string
}

// InconsistentOffset is one position seen with several values.
type InconsistentOffset struct {
	Pos Pos
	// Values maps each value to who saw it there: "ack", "final",
	// "consumer N".
	Values map[string][]string
}

// Duplicate is one value at several positions.
type Duplicate struct {
	Value     string
	Positions []Pos
}

// Unseen is a value in the final read that no group consumer polled.
type Unseen struct {
	Value string
	Pos   Pos
}

// NonMonotonic is a consumer's poll at an offset not above the previous one
// of the same epoch and partition.
type NonMonotonic struct {
	Consumer, Epoch int
	Partition       int32
	Prev, Next      int64
	At              time.Time
}

// Skip is a consumer's two successive polls of one epoch and partition
// with records of the final read between them.
type Skip struct {
	Consumer, Epoch int
	Partition       int32
	Prev, Next      int64
	// Missed is how many final-read records lie strictly between.
	Missed int
	At     time.Time
}

// AbortedRead is a poll of a value that was never durably written: its
// send definitely failed, or the final read does not hold it there.
type AbortedRead struct {
	Consumer int
	Value    string
	Pos      Pos
	// Reason is "send failed" or "vanished" (FinalValue is then what the
	// final read holds at Pos, "" if nothing).
	Reason     string
	FinalValue string
}

// Result is the outcome of Check.
type Result struct {
	Sends, Acked, Failed, Indeterminate int
	// IndeterminateWritten counts indeterminate sends whose value was read.
	IndeterminateWritten int
	Polls, FinalRecords  int
	// Counts has the full count of every anomaly kind (by the field name
	// of its list).
	Counts map[string]int

	Lost                []LostWrite
	InconsistentOffsets []InconsistentOffset
	Duplicates          []Duplicate
	Unseen              []Unseen
	NonMonotonic        []NonMonotonic
	Skipped             []Skip
	AbortedReads        []AbortedRead
	Unexpected          []Poll
}

// Anomalies is the total count of anomalies of every kind.
func (r *Result) Anomalies() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// Valid reports whether no anomaly was found.
func (r *Result) Valid() bool { return r.Anomalies() == 0 }

// Summary is a one-line summary of the counts.
func (r *Result) Summary() string {
	return fmt.Sprintf("%d sends (%d acked, %d failed, %d indeterminate of which %d written), %d polls, %d records in the final read; "+
		"lost %d, inconsistent offsets %d, duplicates %d, unseen %d, non-monotonic %d, skipped %d, aborted reads %d, unexpected %d",
		r.Sends, r.Acked, r.Failed, r.Indeterminate, r.IndeterminateWritten, r.Polls, r.FinalRecords,
		r.Counts["Lost"], r.Counts["InconsistentOffsets"], r.Counts["Duplicates"], r.Counts["Unseen"],
		r.Counts["NonMonotonic"], r.Counts["Skipped"], r.Counts["AbortedReads"], r.Counts["Unexpected"])
}

// String is the summary followed by every counterexample kept.
func (r *Result) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "\nlost: %q acked at %v (%s), final end %d, final value there %q", l.Value, l.Acked, l.AckedAt.Format(time.StampMicro), l.FinalEnd, l.FinalValue)
	}
	for _, io := range r.InconsistentOffsets {
		fmt.Fprintf(&b, "\ninconsistent offset %v:", io.Pos)
		for _, v := range slices.Sorted(maps.Keys(io.Values)) {
			fmt.Fprintf(&b, " %q (%s)", v, strings.Join(io.Values[v], ", "))
		}
	}
	for _, d := range r.Duplicates {
		fmt.Fprintf(&b, "\nduplicate: %q at %v", d.Value, d.Positions)
	}
	for _, u := range r.Unseen {
		fmt.Fprintf(&b, "\nunseen by the group: %q at %v", u.Value, u.Pos)
	}
	for _, n := range r.NonMonotonic {
		fmt.Fprintf(&b, "\nnon-monotonic: consumer %d epoch %d partition %d: offset %d after %d (%s)", n.Consumer, n.Epoch, n.Partition, n.Next, n.Prev, n.At.Format(time.StampMicro))
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "\nskipped: consumer %d epoch %d partition %d: offset %d after %d, %d records between (%s)", s.Consumer, s.Epoch, s.Partition, s.Next, s.Prev, s.Missed, s.At.Format(time.StampMicro))
	}
	for _, a := range r.AbortedReads {
		fmt.Fprintf(&b, "\naborted read (%s): consumer %d read %q at %v, final value there %q", a.Reason, a.Consumer, a.Value, a.Pos, a.FinalValue)
	}
	for _, u := range r.Unexpected {
		fmt.Fprintf(&b, "\nunexpected value: consumer %d read %q at %d/%d", u.Consumer, u.Value, u.Partition, u.Offset)
	}
	return b.String()
}

// add appends x to *list while it is shorter than MaxExamples and counts it.
func add[T any](r *Result, kind string, list *[]T, x T) {
	r.Counts[kind]++
	if len(*list) < MaxExamples {
		*list = append(*list, x)
	}
}

// Check runs every checker on h. Consumer polls are read in recording
// order; the final read is every poll by FinalReader.
func Check(h *History) *Result {
	sends, polls, ends := h.Sends(), h.Polls(), h.Ends()
	r := &Result{Sends: len(sends), Polls: len(polls), Counts: map[string]int{}}

	bySend := make(map[string]*Send, len(sends))
	for i := range sends {
		s := &sends[i]
		bySend[s.Value] = s
		switch s.Outcome {
		case Acked:
			r.Acked++
		case Failed:
			r.Failed++
		default:
			r.Indeterminate++
		}
	}

	// The final read: position -> value, and the sorted offsets per
	// partition (for Skipped).
	final := map[Pos]string{}
	finalVals := map[string]bool{}
	finalOffsets := map[int32][]int64{}
	for _, p := range polls {
		if p.Consumer != FinalReader {
			continue
		}
		pos := Pos{p.Partition, p.Offset}
		if _, ok := final[pos]; !ok {
			finalOffsets[p.Partition] = append(finalOffsets[p.Partition], p.Offset)
		}
		final[pos] = p.Value // two values here are reported below
		finalVals[p.Value] = true
	}
	r.FinalRecords = len(final)
	for _, offs := range finalOffsets {
		slices.Sort(offs)
	}

	// Every observation of a position and of a value.
	atPos := map[Pos]map[string][]string{}
	posOf := map[string]map[Pos]bool{}
	observe := func(pos Pos, value, who string) {
		vs := atPos[pos]
		if vs == nil {
			vs = map[string][]string{}
			atPos[pos] = vs
		}
		if !slices.Contains(vs[value], who) {
			vs[value] = append(vs[value], who)
		}
		ps := posOf[value]
		if ps == nil {
			ps = map[Pos]bool{}
			posOf[value] = ps
		}
		ps[pos] = true
	}
	for _, s := range sends {
		if s.Outcome == Acked {
			observe(Pos{s.Partition, s.Offset}, s.Value, "ack")
		}
	}
	for _, p := range polls {
		who := "final"
		if p.Consumer != FinalReader {
			who = fmt.Sprintf("consumer %d", p.Consumer)
		}
		if bySend[p.Value] == nil {
			add(r, "Unexpected", &r.Unexpected, p)
			continue
		}
		observe(Pos{p.Partition, p.Offset}, p.Value, who)
	}

	// Lost writes.
	for _, s := range sends {
		if s.Outcome != Acked || finalVals[s.Value] {
			continue
		}
		end, ok := ends[s.Partition]
		if !ok {
			end = -1
		}
		pos := Pos{s.Partition, s.Offset}
		add(r, "Lost", &r.Lost, LostWrite{Value: s.Value, Acked: pos, AckedAt: s.End, FinalEnd: end, FinalValue: final[pos]})
	}
	for _, s := range sends {
		if s.Outcome == Indeterminate && len(posOf[s.Value]) > 0 {
			r.IndeterminateWritten++
		}
	}

	// Inconsistent offsets, duplicates; in position and value order so
	// that the examples are stable.
	for _, pos := range slices.SortedFunc(maps.Keys(atPos), comparePos) {
		if vs := atPos[pos]; len(vs) > 1 {
			add(r, "InconsistentOffsets", &r.InconsistentOffsets, InconsistentOffset{Pos: pos, Values: vs})
		}
	}
	for _, v := range slices.Sorted(maps.Keys(posOf)) {
		if ps := posOf[v]; len(ps) > 1 {
			add(r, "Duplicates", &r.Duplicates, Duplicate{Value: v, Positions: slices.SortedFunc(maps.Keys(ps), comparePos)})
		}
	}

	// Unseen: in the final read, never polled by a group consumer.
	polled := map[string]bool{}
	for _, p := range polls {
		if p.Consumer != FinalReader {
			polled[p.Value] = true
		}
	}
	for _, pos := range slices.SortedFunc(maps.Keys(final), comparePos) {
		if v := final[pos]; !polled[v] {
			add(r, "Unseen", &r.Unseen, Unseen{Value: v, Pos: pos})
		}
	}

	// Non-monotonic and skipped polls, per consumer, epoch and partition;
	// aborted reads.
	type stream struct {
		consumer, epoch int
		partition       int32
	}
	last := map[stream]int64{}
	for _, p := range polls {
		if p.Consumer == FinalReader {
			continue
		}
		pos := Pos{p.Partition, p.Offset}
		if s := bySend[p.Value]; s != nil && s.Outcome == Failed {
			add(r, "AbortedReads", &r.AbortedReads, AbortedRead{Consumer: p.Consumer, Value: p.Value, Pos: pos, Reason: "send failed", FinalValue: final[pos]})
		} else if s != nil && final[pos] != p.Value {
			add(r, "AbortedReads", &r.AbortedReads, AbortedRead{Consumer: p.Consumer, Value: p.Value, Pos: pos, Reason: "vanished", FinalValue: final[pos]})
		}
		k := stream{p.Consumer, p.Epoch, p.Partition}
		prev, ok := last[k]
		last[k] = p.Offset
		if !ok {
			continue
		}
		if p.Offset <= prev {
			add(r, "NonMonotonic", &r.NonMonotonic, NonMonotonic{Consumer: p.Consumer, Epoch: p.Epoch, Partition: p.Partition, Prev: prev, Next: p.Offset, At: p.Time})
			continue
		}
		offs := finalOffsets[p.Partition]
		lo, _ := slices.BinarySearch(offs, prev+1)
		hi, _ := slices.BinarySearch(offs, p.Offset)
		if hi > lo {
			add(r, "Skipped", &r.Skipped, Skip{Consumer: p.Consumer, Epoch: p.Epoch, Partition: p.Partition, Prev: prev, Next: p.Offset, Missed: hi - lo, At: p.Time})
		}
	}
	return r
}

func comparePos(a, b Pos) int {
	return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
}
