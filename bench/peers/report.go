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

// index finds results by target, generator, phase and workload.
type index map[string]*result

func idxKey(target, gen, phase, wl string) string { return target + "|" + gen + "|" + phase + "|" + wl }

func newIndex(rs []result) index {
	ix := index{}
	for i := range rs {
		r := &rs[i]
		switch {
		case r.Err != "":
		case r.Phase == phaseLimit:
			ix[idxKey(r.Target, r.Gen, r.Phase, "limit:"+r.Metric)] = r
		default:
			ix[idxKey(r.Target, r.Gen, r.Phase, r.Workload)] = r
		}
	}
	return ix
}

func (ix index) get(target, gen, phase, wl string) *result { return ix[idxKey(target, gen, phase, wl)] }

// limit returns a machine limit's result.
func (ix index) limit(metric string) *result {
	return ix.get("machine", "", phaseLimit, "limit:"+metric)
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
	case "easel-embedded":
		return "embedded"
	case "kfake":
		return "kfake/" + gen
	}
	return target
}

var pairs = []pair{
	{"easel-broker", "raw", "kfake", "raw"},
	{"easel-broker", "kgo", "kfake", "kgo"},
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

// ratioCell formats easel ÷ peer and notes a loss.
func ratioCell(m metric, e, p *result, what string, losses *[]loss) string {
	if e == nil || p == nil {
		return "–"
	}
	ev, pv := m.val(e), m.val(p)
	if ev <= 0 || pv <= 0 {
		return "–"
	}
	r := ev / pv
	lose := r < 0.95
	if m.lowerBetter {
		lose = r > 1.05
	}
	cell := fmt.Sprintf("%.2f×", r)
	if lose {
		cell = "**" + cell + "**"
		*losses = append(*losses, loss{ratio: r, text: fmt.Sprintf("%s, %s: %s %s vs %s (%.2f×)",
			what, m.name, shortName(e.Target, e.Gen), fmtMetric(m, ev), fmtMetric(m, pv), r)})
	}
	return cell
}

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
	w("Measured %s on %d cores (%s), %.0f GiB memory, Linux %s, %s, %s mode in %.0f s:\n\n",
		m.Date, m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.Go, m.Mode, m.Seconds)
	w("```\n%s\n```\n\n", m.Command)
	w("Every target runs in this one process run, one at a time, with the load generator in the harness process and the broker in its own process; "+
		"on a 2-core machine they compete for the CPU. Each produce phase lasts %s (at most %s of payload); MB/s counts record values "+
		"(records × record size, 10^6 bytes), not wire bytes. Latencies are p50 / p99 / p99.9 from HDR histograms: produce→ack at full load "+
		"(closed loop, so it includes queueing in the client), and end-to-end (handed to the client → counted by a consumer reading the same topic) "+
		"at a fixed offered rate of %s. Ratios are Easel ÷ peer: above 1 Easel is faster, "+
		"except for latency, where below 1 is better. **Bold** marks where Easel loses. See bench/peers/doc.go for the generators.\n\n",
		m.Duration, fmtBytes(m.MaxBytes), e2eRateText(m.E2ERate))

	ix := newIndex(rep.Results)
	keys := workloadKeys(rep.Results)

	// Headline: the baseline workload.
	baseKey := workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}.key()
	w("%sBaseline: %s\n\n", h(2), baseKey)
	w("| target | generator | produce MB/s | records/s | produce→ack p50/p99/p99.9 | consume MB/s | produce+consume MB/s | e2e p50/p99/p99.9 @ rate |\n")
	w("|---|---|---:|---:|---|---:|---:|---|\n")
	for _, tg := range targetGens(rep.Results) {
		p := ix.get(tg[0], tg[1], phaseProduce, baseKey)
		if p == nil {
			continue
		}
		c, pc, e := ix.get(tg[0], tg[1], phaseConsume, baseKey), ix.get(tg[0], tg[1], phaseProdCons, baseKey), ix.get(tg[0], tg[1], phaseE2E, baseKey)
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", tg[0], tg[1], fmtMB(p.MBps), fmtCount(p.RecordsPerSec), fmtLat(p.Ack),
			mbOf(c), mbOf(pc), e2eOf(e))
	}
	w("\n")

	// Machine limits.
	w("%sMachine limits\n\n", h(2))
	w("| limit | MB/s | other | latency p50/p99/p99.9 | how |\n|---|---:|---|---|---|\n")
	for _, r := range rep.Results {
		if r.Target != "machine" {
			continue
		}
		other := ""
		if r.Unit != "" {
			other = fmtCount(r.Value) + " " + r.Unit
		}
		if r.Err != "" {
			other = "error: " + r.Err
		}
		w("| %s | %s | %s | %s | %s |\n", r.Metric, fmtMB(r.MBps), other, fmtLat(r.Ack), r.Note)
	}
	w("\n")

	// Ratios to peers.
	var losses []loss
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
				cell := ratioCell(mt, ix.get(p.easel, p.easelGen, mt.phase, k), ix.get(p.peer, p.peerGen, mt.phase, k), k, &losses)
				if cell != "–" {
					any = true
				}
				row += " " + cell + " |"
			}
			if any {
				w("%s\n", row)
			}
		}
	}
	w("\n")

	// Ratios to the machine.
	w("%sEasel ÷ machine limits\n\n", h(2))
	w("| workload | figure | Easel | limit | ratio |\n|---|---|---:|---:|---:|\n")
	for _, k := range keys {
		for _, lr := range limitRatios(ix, k) {
			w("| %s | %s | %s | %s | %.2f |\n", k, lr.what, lr.easel, lr.limit, lr.ratio)
		}
	}
	w("\n")

	// Where Easel loses, and broker bugs the consumers noticed.
	w("%sWhere Easel loses\n\n", h(2))
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Target, "easel") && strings.Contains(r.Note, "bug") {
			w("- correctness, %s/%s %s %s: %s\n", r.Target, r.Gen, r.Workload, r.Phase, r.Note)
		}
	}
	if len(losses) == 0 {
		w("Nowhere in this run: every ratio above is within 5%% or in Easel's favour.\n\n")
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
	w("| target | generator | workload | phase | MB/s | records/s | produce→ack p50/p99/p99.9 | e2e p50/p99/p99.9 | consumer MB/s | RSS | note |\n")
	w("|---|---|---|---|---:|---:|---|---|---:|---:|---|\n")
	for _, r := range rep.Results {
		if r.Target == "machine" || r.Phase == phaseScale || r.Phase == phaseStartClean || r.Phase == phaseStartKilled {
			continue
		}
		note := r.Note
		if r.Err != "" {
			note = "error: " + firstLine(r.Err)
		}
		e2e := fmtLat(r.E2E)
		if r.E2E != nil {
			e2e += " @ " + fmtCount(r.OfferedRate) + "/s"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Target, r.Gen, r.Workload, r.Phase,
			fmtMB(r.MBps), fmtCount(r.RecordsPerSec), fmtLat(r.Ack), e2e, fmtMB(r.ConsumeMBps), fmtBytes(r.RSSBytes), note)
	}
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

func limitRatios(ix index, k string) []limitRatio {
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
