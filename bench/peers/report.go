package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sectionTitle is the BENCHMARKS.md heading the report replaces.
const sectionTitle = "Peers (bench/peers)"

// writeOutputs writes results.json, the charts and report.md into cfg.Out
// and, with -benchmarks-md, the BENCHMARKS.md section.
func writeOutputs(rep *report, cfg config) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	charts, err := writeCharts(rep, cfg.Out)
	if err != nil {
		rep.Notes = append(rep.Notes, "charts: "+err.Error())
	}
	md := renderReport(rep, charts, "", 1)
	if err := os.WriteFile(filepath.Join(cfg.Out, "report.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if cfg.BenchmarksMD == "" {
		return nil
	}
	// Charts in bench/out are not committed: copy them beside the harness.
	chartDir := filepath.Join(cfg.Root, "bench", "peers", "charts")
	if err := os.MkdirAll(chartDir, 0o755); err != nil {
		return err
	}
	for _, c := range charts {
		for _, ext := range []string{".png", ".svg"} {
			data, err := os.ReadFile(filepath.Join(cfg.Out, c+ext))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(chartDir, c+ext), data, 0o644); err != nil {
				return err
			}
		}
	}
	rel, err := filepath.Rel(filepath.Dir(cfg.BenchmarksMD), chartDir)
	if err != nil {
		return err
	}
	section := renderReport(rep, charts, filepath.ToSlash(rel)+"/", 2)
	return replaceSection(cfg.BenchmarksMD, section)
}

// replaceSection puts section (starting with its "## " heading) in place of
// the file's section of the same title, up to the next level-2 heading, or
// appends it.
func replaceSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n"
	}
	head := "## " + sectionTitle
	lines := strings.SplitAfter(text, "\n")
	start, end := -1, len(lines)
	for i, l := range lines {
		t := strings.TrimRight(l, "\n")
		if start < 0 && t == head {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(t, "## ") {
			end = i
			break
		}
	}
	var out string
	if start < 0 {
		out = strings.TrimRight(text, "\n") + "\n\n" + section
	} else {
		out = strings.Join(lines[:start], "") + section
		if end < len(lines) {
			out += "\n" + strings.Join(lines[end:], "")
		}
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// index finds the runs of a measurement by target, generator, phase and
// workload (or machine limit), over every round.
type index struct {
	byKey map[string]*agg
	keys  []string // in first-seen order
}

func idxKey(target, gen, phase, wl string) string { return target + "|" + gen + "|" + phase + "|" + wl }

// keyOf is r's measurement key.
func keyOf(r *result) string {
	if r.Phase == phaseLimit {
		return idxKey(r.Target, r.Gen, r.Phase, "limit:"+r.Metric)
	}
	return idxKey(r.Target, r.Gen, r.Phase, r.Workload)
}

func newIndex(rs []result) *index {
	ix := &index{byKey: map[string]*agg{}}
	for i := range rs {
		r := &rs[i]
		k := keyOf(r)
		a := ix.byKey[k]
		if a == nil {
			a = &agg{}
			ix.byKey[k] = a
			ix.keys = append(ix.keys, k)
		}
		if r.Err != "" {
			a.failed = append(a.failed, r)
		} else {
			a.runs = append(a.runs, r)
		}
	}
	for _, a := range ix.byKey {
		if len(a.runs) > 0 {
			a.med = medianOf(a.runs)
		}
	}
	return ix
}

// agg returns every run of one measurement, or nil.
func (ix *index) agg(target, gen, phase, wl string) *agg {
	return ix.byKey[idxKey(target, gen, phase, wl)]
}

// get returns the median of a measurement's runs, or nil if none succeeded.
func (ix *index) get(target, gen, phase, wl string) *result {
	if a := ix.agg(target, gen, phase, wl); a != nil && len(a.runs) > 0 {
		return &a.med
	}
	return nil
}

// limit returns a machine limit's median.
func (ix *index) limit(metric string) *result {
	return ix.get("machine", "", phaseLimit, "limit:"+metric)
}

// each calls f for every measurement, in first-seen order.
func (ix *index) each(f func(a *agg)) {
	for _, k := range ix.keys {
		f(ix.byKey[k])
	}
}

// pair is an Easel target compared with a peer.
type pair struct {
	easel, easelGen, peer, peerGen string
}

func (p pair) label() string {
	return fmt.Sprintf("%s ÷ %s", shortName(p.easel, p.easelGen), shortName(p.peer, p.peerGen))
}

func shortName(target, gen string) string {
	switch target {
	case "easel-broker":
		return "broker/" + gen
	case "easel-cluster":
		return "cluster/" + gen
	case "easel-embedded":
		return "embedded"
	case "easel-embedded-prealloc":
		return "embedded-prealloc"
	case "kfake":
		return "kfake/" + gen
	}
	return target
}

var pairs = []pair{
	{"easel-broker", "raw", "kfake", "raw"},
	{"easel-broker", "kgo", "kfake", "kgo"},
	{"easel-broker", "kgo-linger0", "kfake", "kgo-linger0"},
	{"easel-broker", "kgo", "nats", "nats.go"},
	{"easel-broker", "kgo", "redis", "go-redis"},
	{"easel-embedded", "api", "wal", "api"},
}

// metric is one figure compared in the ratio tables.
type metric struct {
	name        string
	phase       string
	lowerBetter bool
	val         func(*result) float64
}

var metrics = []metric{
	{"produce MB/s", phaseProduce, false, func(r *result) float64 { return r.MBps }},
	{"consume MB/s", phaseConsume, false, func(r *result) float64 { return r.MBps }},
	{"produce+consume MB/s", phaseProdCons, false, func(r *result) float64 { return r.MBps }},
	{"e2e p99 at the e2e rate (lower is better)", phaseE2E, true, func(r *result) float64 {
		if r.E2E == nil {
			return 0
		}
		return r.E2E.P99
	}},
}

// workloads lists the distinct workload keys in first-seen order.
func workloadKeys(rs []result) []string {
	var ks []string
	for _, r := range rs {
		if r.Workload != "" && !slices.Contains(ks, r.Workload) && r.Phase != phaseScale &&
			r.Phase != phaseStartClean && r.Phase != phaseStartKilled {
			ks = append(ks, r.Workload)
		}
	}
	return ks
}

// loss is one comparison Easel loses.
type loss struct {
	text  string
	ratio float64
}

// ratioCell formats easel ÷ peer (of the medians) and notes a loss: a
// ratio whose min–max ranges overlap is a tie, printed "(tie)".
func ratioCell(m metric, e, p *agg, what string, losses *[]loss) string {
	es, ps := e.spread(m.val), p.spread(m.val)
	if es.N == 0 || ps.N == 0 {
		return "–"
	}
	r, v := compare(es, ps, m.lowerBetter)
	cell := fmt.Sprintf("%.2f×", r)
	switch v {
	case tie:
		cell += " (tie)"
	case lose:
		cell = "**" + cell + "**"
		*losses = append(*losses, loss{ratio: r, text: fmt.Sprintf("%s, %s: %s %s vs %s (%.2f×)",
			what, m.name, shortName(e.med.Target, e.med.Gen), fmtMetricSpread(m, es), fmtMetricSpread(m, ps), r)})
	}
	return cell
}

// fmtMetricSpread prints a median with its unit and, over several runs,
// its range: "557 MB/s (540–570)".
func fmtMetricSpread(m metric, s spread) string {
	out := fmtMetric(m, s.Med)
	f := fmtMB
	if m.lowerBetter {
		f = fmtUS
	}
	if s.N > 1 && f(s.Min) != f(s.Max) {
		out += " (" + f(s.Min) + "–" + f(s.Max) + ")"
	}
	return out
}

// fmtSpreadMB prints a median MB/s and, over several runs, its range:
// "557 (540–570)".
func fmtSpreadMB(s spread) string {
	if s.N == 0 {
		return "–"
	}
	return spreadText(s, fmtMB)
}

func mbps(r *result) float64 { return r.MBps }

func fmtMetric(m metric, v float64) string {
	if m.lowerBetter {
		return fmtUS(v)
	}
	return fmtMB(v) + " MB/s"
}

func fmtMB(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtCount(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtUS(v float64) string {
	switch {
	case v <= 0 || math.IsNaN(v):
		return "–"
	case v >= 1e6:
		return fmt.Sprintf("%.2f s", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0f ms", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1f ms", v/1e3)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func fmtLat(l *latency) string {
	if l == nil {
		return "–"
	}
	return fmtUS(l.P50) + " / " + fmtUS(l.P99) + " / " + fmtUS(l.P999)
}

func fmtBytes(n int64) string {
	switch {
	case n <= 0:
		return "–"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}

// renderReport writes the Markdown report; level 1 makes a document, level 2
// a BENCHMARKS.md section. chartPrefix is prepended to chart file names.
// Every figure is the median of a measurement's runs (rounds), with the
// min–max range where the runs were several.
func renderReport(rep *report, charts []string, chartPrefix string, level int) string {
	h := func(n int) string { return strings.Repeat("#", level+n-1) + " " }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.Meta
	if level == 1 {
		w("%sEasel and its peers\n\n", h(1))
	} else {
		w("%s%s\n\n", h(1), sectionTitle)
	}
	w("Measured %s on %d cores (%s), %.0f GiB memory, Linux %s, %s, %s mode in %.0f s", m.Date, m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.Go, m.Mode, m.Seconds)
	if m.Load != "" {
		w("; load average (1, 5, 15 min) %s at the start, %s at the end", loadTriple(m.Load), loadTriple(m.LoadEnd))
	}
	if m.CPU != nil {
		w("; of the machine's CPU time, %.1f%% was stolen by the hypervisor, %.1f%% waited for the disk and %.1f%% was idle", m.CPU.Steal, m.CPU.IOWait, m.CPU.Idle)
		if len(m.RoundCPU) > 1 {
			var st []string
			for _, rc := range m.RoundCPU {
				st = append(st, fmt.Sprintf("%.1f", rc.Steal))
			}
			w(" (steal by round: %s%%)", strings.Join(st, ", "))
		}
	}
	w(":\n\n```\n%s\n```\n\n", m.Command)
	w("Method. The load generator runs in the harness process and every broker in its own process; on a 2-core machine they compete for the CPU. ")
	if m.Repeat > 1 {
		w("Every target ran %d times, interleaved: round 1 ran every target once in turn, then round 2, and so on (A B C A B C, never A A A B B B), "+
			"so that a drift of the machine falls on every target alike. Figures are the median of the %d runs, with min–max in brackets; "+
			"ratios are of the medians, and a ratio whose two min–max ranges overlap is marked **(tie)**: neither a win nor a loss. "+
			"Scaling and start-up ran in round 1 only. ", m.Repeat, m.Repeat)
	} else {
		w("Every target ran once (single runs carry ±30%% noise on this machine: use -repeat); a ratio within 5%% of 1 is marked (tie). ")
	}
	if len(rep.Warmups) > 0 {
		ws := spreadOf(warmResults(rep.Warmups), mbps)
		w("Before the first target and between targets the page cache was warmed: %s written to a file and deleted (%d times, at %s MB/s), "+
			"and each target's data directory was deleted when the target was done, so that every target started from the same memory state "+
			"(on this VM a page-cache page touched for the first time is several times slower to write than a recycled one; see the "+
			"file-write rows of the machine limits). ", fmtBytes(m.Warm), len(rep.Warmups), fmtSpreadMB(ws))
		switch {
		case m.PageReportingHeld:
			w("This kernel reports freed memory to the host (virtio-balloon free page reporting), which takes it back about two seconds "+
				"after it is freed; the harness held that off for the run (page_reporting_order %d raised above the largest block order, "+
				"put back at the end) and touched and freed %s of memory (in %.0f s) before the first target, so that the warm-ups kept "+
				"their pages and nearly every write went to a page the machine had touched before. ",
				m.PageReportingOrder, fmtBytes(m.PrimeBytes), m.PrimeSeconds)
		case m.PageReporting:
			w("This kernel reports freed memory to the host (virtio-balloon free page reporting), which takes it back about two seconds " +
				"after it is freed, so a warm-up covers a target's first writes only; the later phases of every target see the same mix of " +
				"fresh and recycled pages (-hold-page-reporting, as root, holds it off). ")
		}
	} else {
		w("No page-cache warm-up (-warm-bytes 0): whichever target writes first pays for fresh pages. ")
	}
	w("Each produce phase lasts %s (at most %s of payload); MB/s counts record values "+
		"(records × record size, 10^6 bytes), not wire bytes. Latencies are p50 / p99 / p99.9 from HDR histograms: produce→ack at full load "+
		"(closed loop, so it includes queueing in the client), and end-to-end (handed to the client → counted by a consumer reading the same topic) "+
		"at a fixed offered rate of %s. Ratios are Easel ÷ peer: above 1 Easel is faster, "+
		"except for latency, where below 1 is better. **Bold** marks where Easel loses.\n\n",
		m.Duration, fmtBytes(m.MaxBytes), e2eRateText(m.E2ERate))

	ix := newIndex(rep.Results)
	keys := workloadKeys(rep.Results)
	tgs := targetGens(rep.Results)

	// The generators, with the linger that explains most of franz-go's
	// end-to-end latency.
	var gens []string
	for _, tg := range tgs {
		if d := genDescs[tg[1]]; d != "" && !slices.Contains(gens, tg[1]) {
			gens = append(gens, tg[1])
		}
	}
	if len(gens) > 0 {
		w("| generator | what |\n|---|---|\n")
		for _, g := range gens {
			w("| %s | %s |\n", g, genDescs[g])
		}
		w("\n")
	}

	// Headline: the baseline workload.
	baseKey := workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}.key()
	w("%sBaseline: %s\n\n", h(2), baseKey)
	w("| target | generator | produce MB/s | records/s | produce→ack p50/p99/p99.9 | consume MB/s | produce+consume MB/s | e2e p50/p99/p99.9 @ rate |\n")
	w("|---|---|---:|---:|---|---:|---:|---|\n")
	for _, tg := range tgs {
		p := ix.get(tg[0], tg[1], phaseProduce, baseKey)
		if p == nil {
			continue
		}
		pc, e := ix.get(tg[0], tg[1], phaseProdCons, baseKey), ix.get(tg[0], tg[1], phaseE2E, baseKey)
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", tg[0], tg[1],
			fmtSpreadMB(ix.agg(tg[0], tg[1], phaseProduce, baseKey).spread(mbps)), fmtCount(p.RecordsPerSec), fmtLat(p.Ack),
			fmtSpreadMB(ix.agg(tg[0], tg[1], phaseConsume, baseKey).spread(mbps)), mbOf(pc), e2eOf(e))
	}
	w("\n")

	// Machine limits.
	w("%sMachine limits\n\n", h(2))
	w("| limit | MB/s | other | latency p50/p99/p99.9 | how |\n|---|---:|---|---|---|\n")
	ix.each(func(a *agg) {
		r := &a.med
		if len(a.runs) == 0 {
			r = a.failed[0]
		}
		if r.Target != "machine" {
			return
		}
		other := ""
		if r.Unit != "" {
			other = fmtCount(r.Value) + " " + r.Unit
		}
		if len(a.runs) == 0 {
			other = "error: " + firstLine(r.Err)
		}
		w("| %s | %s | %s | %s | %s |\n", r.Metric, fmtSpreadMB(a.spread(mbps)), other, fmtLat(r.Ack), r.Note)
	})
	w("\n")

	// Ratios to peers.
	var losses []loss
	ties, compared := 0, 0
	w("%sEasel ÷ peers\n\n", h(2))
	w("| workload | metric |")
	for _, p := range pairs {
		w(" %s |", p.label())
	}
	w("\n|---|---|%s\n", strings.Repeat("---:|", len(pairs)))
	for _, k := range keys {
		for _, mt := range metrics {
			row := fmt.Sprintf("| %s | %s |", k, mt.name)
			any := false
			for _, p := range pairs {
				cell := ratioCell(mt, ix.agg(p.easel, p.easelGen, mt.phase, k), ix.agg(p.peer, p.peerGen, mt.phase, k), k, &losses)
				if cell != "–" {
					any = true
					compared++
					if strings.HasSuffix(cell, "(tie)") {
						ties++
					}
				}
				row += " " + cell + " |"
			}
			if any {
				w("%s\n", row)
			}
		}
	}
	w("\n%d comparisons, %d of them ties.\n\n", compared, ties)

	renderReplication(&b, ix, keys, h(2))

	// Ratios to the machine.
	w("%sEasel ÷ machine limits\n\n", h(2))
	w("| workload | figure | Easel | limit | ratio |\n|---|---|---:|---:|---:|\n")
	for _, k := range keys {
		for _, lr := range limitRatios(ix, k) {
			w("| %s | %s | %s | %s | %.2f |\n", k, lr.what, lr.easel, lr.limit, lr.ratio)
		}
	}
	w("\n")

	// Preallocation.
	renderPrealloc(&b, ix, keys, h(2))

	// Where Easel loses, and broker bugs the consumers noticed.
	w("%sWhere Easel loses\n\n", h(2))
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Target, "easel") && strings.Contains(r.Note, "bug") {
			w("- correctness, %s/%s %s %s (round %d): %s\n", r.Target, r.Gen, r.Workload, r.Phase, r.Round+1, r.Note)
		}
	}
	if len(losses) == 0 {
		w("Nowhere in this run: every ratio above is a tie or in Easel's favour.\n\n")
	} else {
		slices.SortStableFunc(losses, func(a, b loss) int {
			return strings.Compare(a.text, b.text)
		})
		for _, l := range losses {
			w("- %s\n", l.text)
		}
		w("\n")
	}

	// Scaling and start-up.
	if rows := filter(rep.Results, func(r result) bool { return r.Phase == phaseScale }); len(rows) > 0 {
		w("%sPartition scaling (raw generator, 1 KiB records, acks=1)\n\n", h(2))
		w("| target | partitions | create topic | produce MB/s | produce→ack p50/p99/p99.9 | broker RSS | note |\n|---|---:|---:|---:|---|---:|---|\n")
		for _, r := range rows {
			note := r.Note
			if r.Err != "" {
				note = "error: " + firstLine(r.Err)
			}
			w("| %s | %d | %.2f s | %s | %s | %s | %s |\n", r.Target, r.Partitions, r.Value, fmtMB(r.MBps), fmtLat(r.Ack), fmtBytes(r.RSSBytes), note)
		}
		w("\n")
	}
	if rows := filter(rep.Results, func(r result) bool { return r.Phase == phaseStartClean || r.Phase == phaseStartKilled }); len(rows) > 0 {
		w("%sBroker start-up with a large data set\n\n", h(2))
		w("| target | after | data on disk | time to serve every partition | RSS after | note | error |\n|---|---|---:|---:|---:|---|---|\n")
		for _, r := range rows {
			after := "clean shutdown (SIGTERM)"
			if r.Phase == phaseStartKilled {
				after = "SIGKILL"
			}
			w("| %s | %s | %s | %.2f s | %s | %s | %s |\n", r.Target, after, fmtBytes(r.DataBytes), r.Value, fmtBytes(r.RSSBytes), r.Note, r.Err)
		}
		w("\n")
	}

	// Charts.
	if len(charts) > 0 {
		w("%sCharts\n\n", h(2))
		for _, c := range charts {
			w("![%s](%s%s.svg)\n", c, chartPrefix, c)
		}
		w("\n")
	}

	// Profiles.
	if len(rep.Profiles) > 0 {
		w("%sEasel broker CPU profiles (baseline workload)\n\n", h(2))
		for _, p := range rep.Profiles {
			w("%s (`go tool pprof -top -cum %s`):\n\n```\n%s\n```\n\n", p.Label, filepath.Base(p.Path), topLines(p.Top, 28))
		}
	}

	// Every result.
	w("%sAll results\n\n", h(2))
	if m.Repeat > 1 {
		w("Medians of the runs; MB/s with min–max. results.json holds every run.\n\n")
	}
	w("| target | generator | workload | phase | MB/s | records/s | produce→ack p50/p99/p99.9 | e2e p50/p99/p99.9 | consumer MB/s | RSS | runs | note |\n")
	w("|---|---|---|---|---:|---:|---|---|---:|---:|---:|---|\n")
	ix.each(func(a *agg) {
		r := &a.med
		if len(a.runs) == 0 {
			r = a.failed[0]
		}
		if r.Target == "machine" || r.Phase == phaseScale || r.Phase == phaseStartClean || r.Phase == phaseStartKilled {
			return
		}
		note := r.Note
		runs := fmt.Sprint(len(a.runs))
		if len(a.failed) > 0 {
			runs = fmt.Sprintf("%d of %d", len(a.runs), len(a.runs)+len(a.failed))
			note = strings.TrimPrefix(note+"; error: "+firstLine(a.failed[0].Err), "; ")
		}
		if len(a.runs) == 0 {
			w("| %s | %s | %s | %s | – | – | – | – | – | – | %s | %s |\n", r.Target, r.Gen, r.Workload, r.Phase, runs, note)
			return
		}
		e2e := fmtLat(r.E2E)
		if r.E2E != nil {
			e2e += " @ " + fmtCount(r.OfferedRate) + "/s"
		}
		if r.Phase == "skipped" {
			runs = "–"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Target, r.Gen, r.Workload, r.Phase,
			fmtSpreadMB(a.spread(mbps)), fmtCount(r.RecordsPerSec), fmtLat(r.Ack), e2e, fmtMB(r.ConsumeMBps), fmtBytes(r.RSSBytes), runs, note)
	})
	w("\n")
	if len(rep.Notes) > 0 {
		w("%sNotes\n\n", h(2))
		for _, n := range rep.Notes {
			w("- %s\n", firstLine(n))
		}
		w("\n")
	}
	return b.String()
}

// genDescs says what each load generator is, with its linger.
var genDescs = map[string]string{
	"raw": "pre-built ~64 KiB record batches in hand-encoded produce requests, 8 in flight per connection on up to 4 connections; " +
		"no client-side batching delay",
	"kgo": fmt.Sprintf("franz-go with its defaults (ProducerLinger %v), acks=1 with idempotence off, which leaves 1 produce request in flight; "+
		"acks=all is idempotent with 5 in flight", kgoLingerDefault),
	"kgo-if5":     fmt.Sprintf("franz-go as kgo (linger %v) with 5 produce requests in flight per broker", kgoLingerDefault),
	"kgo-linger0": "franz-go as kgo with ProducerLinger(0): a batch goes out as soon as a request may be sent, so end-to-end latency is the broker's, not the client's batching delay",
	"api":         "the library's own API in the harness process, no network",
	"nats.go":     "nats.go PublishAsync (4,096 pending), ordered consumer per stream",
	"go-redis":    "go-redis, pipelined XADD in groups the size of a Kafka batch, XREAD",
}

// renderPrealloc writes the comparison of easel-embedded with and without
// segment preallocation, if both ran.
func renderPrealloc(b *strings.Builder, ix *index, keys []string, head string) {
	type fig struct {
		name, phase string
		lowerBetter bool
		val         func(*result) float64
		show        func(spread) string
	}
	lat := func(v float64) string { return fmtUS(v) }
	figs := []fig{
		{"produce MB/s", phaseProduce, false, mbps, fmtSpreadMB},
		{"produce→ack p99", phaseProduce, true, func(r *result) float64 {
			if r.Ack == nil {
				return 0
			}
			return r.Ack.P99
		}, func(s spread) string { return spreadText(s, lat) }},
		{"produce+consume MB/s", phaseProdCons, false, mbps, fmtSpreadMB},
		{"consume MB/s", phaseConsume, false, mbps, fmtSpreadMB},
		{"disk used after produce", phaseProduce, true, func(r *result) float64 { return float64(r.DataBytes) },
			func(s spread) string { return spreadText(s, func(v float64) string { return fmtBytes(int64(v)) }) }},
	}
	var rows []string
	for _, k := range keys {
		for _, f := range figs {
			off, on := ix.agg("easel-embedded", "api", f.phase, k).spread(f.val), ix.agg("easel-embedded-prealloc", "api", f.phase, k).spread(f.val)
			if off.N == 0 || on.N == 0 {
				continue
			}
			r, v := compare(on, off, f.lowerBetter)
			verdict := map[verdict]string{tie: "tie", win: "better with preallocate", lose: "**worse with preallocate**"}[v]
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %.2f× | %s |\n", k, f.name, f.show(off), f.show(on), r, verdict))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "%sPreallocate (easel-embedded with segment.Config.Preallocate)\n\n", head)
	b.WriteString("easel-embedded-prealloc is easel-embedded with Kafka's preallocate: every .log is fallocated (FALLOC_FL_KEEP_SIZE) to " +
		"segment.bytes (1 GiB) when it is created, and trimmed to its size when it is sealed or closed. Same workloads, interleaved in " +
		"the same rounds. Disk used is what du counts in the data directory right after the produce phase.\n\n")
	b.WriteString("| workload | figure | off | on | on ÷ off | verdict |\n|---|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		b.WriteString(r)
	}
	b.WriteString("\n")
}

// replicationRows returns the rows of the RF 3 ÷ RF 1 comparison: for every
// easel-cluster produce measurement (generator, workload), the cluster ÷
// easel-broker with acks=1 and, for acks=all, ÷ easel-broker with acks=all.
func replicationRows(ix *index, keys []string) []string {
	var rows []string
	m := metrics[0] // produce MB/s
	for _, g := range allGens {
		for _, k := range keys {
			c := ix.agg("easel-cluster", g, phaseProduce, k)
			cs := c.spread(m.val)
			if cs.N == 0 {
				continue
			}
			acks := c.med.Acks
			rf1 := strings.Replace(k, "/acks="+acks+"/", "/acks=1/", 1)
			dens := []string{rf1}
			if acks != "1" {
				dens = append(dens, k)
			}
			for _, d := range dens {
				b := ix.agg("easel-broker", g, phaseProduce, d)
				bs := b.spread(m.val)
				if bs.N == 0 {
					continue
				}
				r, v := compare(cs, bs, false)
				cell := fmt.Sprintf("%.2f×", r)
				if v == tie {
					cell += " (tie)"
				}
				rows = append(rows, fmt.Sprintf("| easel-cluster (RF %d, acks=%s) ÷ easel-broker (RF 1, acks=%s) | %s | %s | %s | %s | %s |\n",
					clusterRF, acks, b.med.Acks, g, strings.Replace(k, "/acks="+acks, "", 1), fmtSpreadMB(cs), fmtSpreadMB(bs), cell))
			}
		}
	}
	return rows
}

// renderReplication writes the easel-cluster ÷ easel-broker table, if
// both ran.
func renderReplication(b *strings.Builder, ix *index, keys []string, head string) {
	rows := replicationRows(ix, keys)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "%sReplication: easel-cluster (RF %d) ÷ easel-broker (RF 1)\n\n", head, clusterRF)
	fmt.Fprintf(b, "easel-cluster is %d cmd/easel brokers on loopback, all raft voters, with topics of replication factor %d and "+
		"min.insync.replicas 2; the raw generator sends each partition's produce and fetch requests to its leader. "+
		"It shares the machine's two cores with its followers: every record is written %d times. Produce MB/s, medians of the runs; "+
		"a ratio whose min–max ranges overlap is a tie.\n\n", clusterSize, clusterRF, clusterRF)
	b.WriteString("| comparison | generator | workload | cluster MB/s | broker MB/s | ratio |\n|---|---|---|---:|---:|---:|\n")
	for _, r := range rows {
		b.WriteString(r)
	}
	b.WriteString("\n")
}

// spreadText prints a median and, over several runs, its range with f.
func spreadText(s spread, f func(float64) string) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 || f(s.Min) == f(s.Max) {
		return f(s.Med)
	}
	return f(s.Med) + " (" + f(s.Min) + "–" + f(s.Max) + ")"
}

// warmResults views warm-ups as results for spreadOf.
func warmResults(ws []pageWarm) []*result {
	var out []*result
	for _, w := range ws {
		if w.Err == "" {
			out = append(out, &result{MBps: w.MBps})
		}
	}
	return out
}

// loadTriple keeps the three load averages of a /proc/loadavg line.
func loadTriple(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return s
	}
	return strings.Join(f[:3], ", ")
}

func mbOf(r *result) string {
	if r == nil {
		return "–"
	}
	return fmtMB(r.MBps)
}

func e2eOf(r *result) string {
	if r == nil || r.E2E == nil {
		return "–"
	}
	return fmtLat(r.E2E) + " @ " + fmtCount(r.OfferedRate) + "/s"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "\\|")
}

func topLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

func filter(rs []result, keep func(result) bool) []result {
	var out []result
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// targetGens lists the measured (target, generator) pairs in run order.
func targetGens(rs []result) [][2]string {
	var out [][2]string
	for _, r := range rs {
		if r.Phase != phaseProduce {
			continue
		}
		tg := [2]string{r.Target, r.Gen}
		if !slices.Contains(out, tg) {
			out = append(out, tg)
		}
	}
	return out
}

// limitRatio is one Easel figure against the machine limit that bounds it.
type limitRatio struct {
	what, easel, limit string
	ratio              float64
}

func limitRatios(ix *index, k string) []limitRatio {
	var out []limitRatio
	add := func(what string, e, l float64, fmtf func(float64) string) {
		if e > 0 && l > 0 {
			out = append(out, limitRatio{what: what, easel: fmtf(e), limit: fmtf(l), ratio: e / l})
		}
	}
	mb := func(v float64) string { return fmtMB(v) + " MB/s" }
	fw, fsync, tcp, mem, rtt := ix.limit("file-write"), ix.limit("file-write-fsync"), ix.limit("loopback-tcp"), ix.limit("memcpy"), ix.limit("loopback-rtt")
	val := func(r *result) float64 {
		if r == nil {
			return 0
		}
		return r.MBps
	}
	emb := ix.get("easel-embedded", "api", phaseProduce, k)
	brk := ix.get("easel-broker", "raw", phaseProduce, k)
	fileLimit := fw
	if strings.HasSuffix(k, "/fsync") {
		fileLimit = fsync
	}
	limName := "file write"
	if fileLimit == fsync {
		limName = "fsync'd file write"
	}
	if emb != nil {
		add("embedded produce ÷ "+limName, emb.MBps, val(fileLimit), mb)
	}
	if brk != nil {
		add("broker/raw produce ÷ "+limName, brk.MBps, val(fileLimit), mb)
		add("broker/raw produce ÷ loopback TCP", brk.MBps, val(tcp), mb)
		if e := ix.get("easel-broker", "raw", phaseE2E, k); e != nil && e.Ack != nil && rtt != nil && rtt.Ack != nil {
			add("broker/raw produce→ack p50 at half load ÷ loopback RTT p50", e.Ack.P50, rtt.Ack.P50, fmtUS)
		}
	}
	if c := ix.get("easel-broker", "raw", phaseConsume, k); c != nil {
		add("broker/raw consume ÷ loopback TCP", c.MBps, val(tcp), mb)
	}
	if c := ix.get("easel-embedded", "api", phaseConsume, k); c != nil {
		add("embedded consume ÷ memcpy", c.MBps, val(mem), mb)
	}
	return out
}

// e2eRateText says what offered rate the end-to-end phase used.
func e2eRateText(rate float64) string {
	if rate > 0 {
		return fmt.Sprintf("%.0f records/s for every target (or its peak, if lower)", rate)
	}
	return "half the target's own measured peak"
}
