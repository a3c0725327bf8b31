package main

import (
	"math"
	"slices"
	"strings"
)

// Repeats. With -repeat N every target runs N times, interleaved: round 1
// runs every target once in the -targets order, then round 2 does the same,
// and so on (A B C A B C, never A A A B B B), so that a slow drift of the
// machine (another job starting, the page cache filling) falls on every
// target alike. Each (target, generator, phase, workload) then has N runs;
// the report gives their median with min and max, computes ratios from the
// medians, and calls a comparison a tie when the two min–max ranges overlap.

// slot is one target's turn in one round.
type slot struct {
	Round  int // 0-based
	Target string
}

// schedule returns the order in which the targets run: every target once
// per round, rounds one after another.
func schedule(targets []string, repeat int) []slot {
	var out []slot
	for r := range max(1, repeat) {
		for _, t := range targets {
			out = append(out, slot{Round: r, Target: t})
		}
	}
	return out
}

// spread summarises one figure over the runs of a measurement.
type spread struct {
	Med, Min, Max float64
	N             int // runs with a figure (> 0)
}

// spreadOf is the median, min and max of val over runs, skipping runs where
// val is not positive (not measured).
func spreadOf(runs []*result, val func(*result) float64) spread {
	var vs []float64
	for _, r := range runs {
		if v := val(r); v > 0 && !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return spread{}
	}
	slices.Sort(vs)
	return spread{Med: median(vs), Min: vs[0], Max: vs[len(vs)-1], N: len(vs)}
}

// median of sorted values; the mean of the middle two for an even count.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// verdict is the outcome of comparing Easel with a peer.
type verdict int

const (
	tie verdict = iota
	win
	lose
)

// singleRunTie is how close to 1 a ratio of single runs (no range known)
// must be to count as a tie.
const singleRunTie = 0.05

// compare returns e.Med ÷ p.Med and who wins: a tie if the min–max ranges
// overlap (or, with a single run on either side, if the ratio is within 5%
// of 1); else Easel wins if its median is higher (lower if lowerBetter).
func compare(e, p spread, lowerBetter bool) (float64, verdict) {
	r := e.Med / p.Med
	if e.Min <= p.Max && p.Min <= e.Max {
		return r, tie
	}
	if min(e.N, p.N) < 2 && math.Abs(r-1) < singleRunTie {
		return r, tie
	}
	if (r > 1) != lowerBetter {
		return r, win
	}
	return r, lose
}

// agg is every run of one measurement: a (target, generator, phase,
// workload) or a machine limit.
type agg struct {
	med    result    // the median of the runs in every figure (see medianOf)
	runs   []*result // the runs that succeeded, in round order
	failed []*result // the runs that failed
}

// spread of one figure over the runs.
func (a *agg) spread(val func(*result) float64) spread {
	if a == nil {
		return spread{}
	}
	return spreadOf(a.runs, val)
}

// medianOf builds a result whose figures are the medians of the runs'
// (each latency percentile separately), with the runs' distinct notes.
func medianOf(runs []*result) result {
	m := *runs[0]
	m.Round = 0
	med := func(val func(*result) float64) float64 { return spreadOf(runs, val).Med }
	m.MBps = med(func(r *result) float64 { return r.MBps })
	m.RecordsPerSec = med(func(r *result) float64 { return r.RecordsPerSec })
	m.ConsumeMBps = med(func(r *result) float64 { return r.ConsumeMBps })
	m.OfferedRate = med(func(r *result) float64 { return r.OfferedRate })
	m.Value = med(func(r *result) float64 { return r.Value })
	m.Seconds = med(func(r *result) float64 { return r.Seconds })
	m.Records = int64(med(func(r *result) float64 { return float64(r.Records) }))
	m.RSSBytes = int64(med(func(r *result) float64 { return float64(r.RSSBytes) }))
	m.DataBytes = int64(med(func(r *result) float64 { return float64(r.DataBytes) }))
	m.Ack = medianLatency(runs, func(r *result) *latency { return r.Ack })
	m.E2E = medianLatency(runs, func(r *result) *latency { return r.E2E })
	var notes []string
	for _, r := range runs {
		if r.Note != "" && !slices.Contains(notes, r.Note) {
			notes = append(notes, r.Note)
		}
	}
	m.Note = strings.Join(notes, "; ")
	return m
}

func medianLatency(runs []*result, get func(*result) *latency) *latency {
	var some []*result
	for _, r := range runs {
		if get(r) != nil {
			some = append(some, r)
		}
	}
	if len(some) == 0 {
		return nil
	}
	med := func(val func(*latency) float64) float64 {
		return spreadOf(some, func(r *result) float64 { return val(get(r)) }).Med
	}
	l := &latency{
		P50:  med(func(l *latency) float64 { return l.P50 }),
		P99:  med(func(l *latency) float64 { return l.P99 }),
		P999: med(func(l *latency) float64 { return l.P999 }),
		Max:  med(func(l *latency) float64 { return l.Max }),
	}
	for _, r := range some {
		l.Count += get(r).Count
	}
	return l
}
