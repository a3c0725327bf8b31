package main

// The report: medians with min–max over the rounds, ratios from medians, a
// tie wherever two min–max ranges overlap (as bench/peers does).

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// spread is the median, min and max of one figure over the runs.
type spread struct {
	med, min, max float64
	n             int
}

func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

// overlaps reports whether the min–max ranges of a and b overlap: a tie.
func (a spread) overlaps(b spread) bool { return a.min <= b.max && b.min <= a.max }

func (a spread) fmt(format string) string {
	if a.n == 0 {
		return "–"
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", a.med, a.min, a.max)
}

func figure(runs []runResult, val func(runResult) float64) spread {
	var vs []float64
	for _, r := range runs {
		if r.err == nil {
			vs = append(vs, val(r))
		}
	}
	return spreadOf(vs)
}

func report(o options, works []workload, results map[workload][]runResult, kills []killSample, foLoad string) {
	var tws, lws []workload
	for _, w := range works {
		if w.latency() {
			lws = append(lws, w)
		} else {
			tws = append(tws, w)
		}
	}
	failed := 0
	for _, rs := range results {
		for _, r := range rs {
			if r.err != nil {
				failed++
			}
		}
	}
	if failed > 0 {
		fmt.Printf("\n%d runs FAILED (see above); they are left out of the figures\n", failed)
	}
	mbps := func(r runResult) float64 { return r.t.MBps }
	if len(tws) > 0 {
		fmt.Printf("\n### Throughput: %d producer clients, 1 KiB records, linger %v; median (min–max) of %d rounds\n\n", o.producers, throughputLinger, o.repeat)
		fmt.Println("| configuration | partitions | MB/s | records/s | brokers' CPU (cores) | bench CPU (cores) | errors |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
		for _, w := range tws {
			rs := results[w]
			var errs int64
			for _, r := range rs {
				errs += r.t.Errors
			}
			fmt.Printf("| %s | %d | %s | %s | %s | %s | %d |\n", w.cfg.name, w.parts,
				figure(rs, mbps).fmt("%.0f"), figure(rs, func(r runResult) float64 { return r.t.RecPerSec }).fmt("%.0f"),
				figure(rs, func(r runResult) float64 { return r.t.BrokerCores }).fmt("%.2f"),
				figure(rs, func(r runResult) float64 { return r.t.BenchCores }).fmt("%.2f"), errs)
		}
		fmt.Printf("\nRatios of median MB/s (in brackets: the ratio's range, worst min ÷ best max to best max ÷ worst min); a tie where the two ranges overlap:\n\n")
		fmt.Println("| partitions | ratio | value | range | verdict |")
		fmt.Println("|---:|---|---:|---|---|")
		for _, p := range []int{1, 16} {
			for _, c := range [][2]config{{rf3acksAll, single1}, {rf3acksAll, cluster1}, {rf3acks1, single1}, {rf3acksAll, rf3acks1}, {cluster1, single1}} {
				a, b := figure(results[workload{c[0], p}], mbps), figure(results[workload{c[1], p}], mbps)
				if a.n == 0 || b.n == 0 {
					continue
				}
				v := "lower"
				switch {
				case a.overlaps(b):
					v = "tie"
				case a.med > b.med:
					v = "higher"
				}
				fmt.Printf("| %d | %s ÷ %s | %.2f | %.2f–%.2f | %s |\n", p, c[0].name, c[1].name, a.med/b.med, a.min/b.max, a.max/b.min, v)
			}
		}
	}
	if len(lws) > 0 {
		fmt.Printf("\n### Produce→ack latency: %d records/s, 1 KiB, 1 partition, 1 client, linger 0; median (min–max) of %d rounds, each %v\n\n", o.latRate, o.repeat, o.dur)
		fmt.Println("| configuration | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | brokers' CPU (cores) |")
		fmt.Println("|---|---:|---:|---:|---:|---:|")
		for _, w := range lws {
			rs := results[w]
			d := func(get func(lat) time.Duration) string {
				return figure(rs, func(r runResult) float64 { return float64(get(r.l)) / 1e6 }).fmt("%.2f")
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", w.cfg.name, d(func(l lat) time.Duration { return l.P50 }),
				d(func(l lat) time.Duration { return l.P99 }), d(func(l lat) time.Duration { return l.P999 }),
				d(func(l lat) time.Duration { return l.Max }), figure(rs, func(r runResult) float64 { return r.l.BrokerCores }).fmt("%.2f"))
		}
	}
	if len(kills) > 0 {
		fmt.Printf("\n### Failover: %d SIGKILLs of a partition leader, --cluster-timing fast, RF 3, min.insync.replicas=2, acks=all (idempotent) every %v; load before: %s\n\n", len(kills), failoverEvery, foLoad)
		var first, led, back []time.Duration
		nf, errs, ctrl := 0, int64(0), 0
		for _, s := range kills {
			if s.failed != "" {
				nf++
			} else {
				first = append(first, s.firstAck)
			}
			if s.newLeader > 0 {
				led = append(led, s.newLeader)
			}
			if s.controller {
				ctrl++
			}
			back = append(back, s.isrBack)
			errs += s.errs
		}
		fmt.Println("| metric | n | p50 | p90 | p99 | max |")
		fmt.Println("|---|---:|---:|---:|---:|---:|")
		for _, row := range []struct {
			name string
			ds   []time.Duration
		}{
			{"kill → first acknowledged acks=all record sent after the kill (client)", first},
			{"kill → a survivor's Metadata shows a new leader", led},
			{"restart exec → full ISR on every partition", back},
		} {
			fmt.Printf("| %s | %d | %s |\n", row.name, len(row.ds), strings.Join(quantiles(row.ds), " | "))
		}
		fmt.Printf("\nfailed failovers: %d; records failed to the client: %d; kills of a leader that was also the controller: %d\n", nf, errs, ctrl)
	}
	fmt.Printf("\nload before each run:\n")
	for _, w := range works {
		var ls []string
		for _, r := range results[w] {
			ls = append(ls, r.load)
		}
		fmt.Printf("  %s: %s\n", w, strings.Join(ls, "; "))
	}
}

// quantiles returns p50, p90, p99 and max of ds (nearest rank), formatted.
func quantiles(ds []time.Duration) []string {
	if len(ds) == 0 {
		return []string{"–", "–", "–", "–"}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var out []string
	for _, q := range []float64{0.50, 0.90, 0.99, 1} {
		d := rank(s, q)
		if d < time.Second {
			out = append(out, fmt.Sprintf("%d ms", d.Milliseconds()))
		} else {
			out = append(out, fmt.Sprintf("%.2f s", d.Seconds()))
		}
	}
	return out
}
