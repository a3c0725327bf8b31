package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/record"
)

func TestMain(m *testing.M) {
	if maybeRunRole() { // the loopback limit re-executes the test binary as its sink
		return
	}
	os.Exit(m.Run())
}

// smoke runs the harness end to end in smoke mode against targets and
// checks the outputs: no errors, every phase measured, consumers reading
// exactly what producers wrote.
func smoke(t *testing.T, targets []string, wantTargets []string, repeat int) *report {
	t.Helper()
	cfg, err := presets("smoke")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Repeat = repeat
	if cfg.Root, err = findRoot("."); err != nil {
		t.Fatal(err)
	}
	cfg.Out, cfg.Targets, cfg.Quiet, cfg.Command = t.TempDir(), targets, true, "go test"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range rep.Steps {
		t.Logf("%5.2f s %s", st.Seconds, st.Name)
	}
	t.Logf("%.1f s in all", time.Since(start).Seconds())
	for _, n := range rep.Notes {
		t.Errorf("note: %s", n)
	}
	type key struct{ target, gen, wl string }
	produced := map[key]int64{}
	phases := map[string]map[string]bool{}
	for _, r := range rep.Results {
		if r.Err != "" {
			t.Errorf("%s/%s %s %s: %s", r.Target, r.Gen, r.Workload, r.Phase, r.Err)
			continue
		}
		if phases[r.Target] == nil {
			phases[r.Target] = map[string]bool{}
		}
		phases[r.Target][r.Phase] = true
		switch r.Phase {
		case phaseProduce:
			if r.MBps <= 0 || r.Records <= 0 || r.Ack == nil || r.Ack.Count == 0 {
				t.Errorf("%s/%s %s produce: empty result %+v", r.Target, r.Gen, r.Workload, r)
			}
			produced[key{r.Target, r.Gen, r.Workload}] = r.Records
		case phaseConsume:
			if want := produced[key{r.Target, r.Gen, r.Workload}]; r.Records != want {
				t.Errorf("%s/%s %s consumed %d records, produced %d", r.Target, r.Gen, r.Workload, r.Records, want)
			}
		case phaseE2E:
			if r.E2E == nil || r.E2E.Count == 0 || r.OfferedRate <= 0 {
				t.Errorf("%s/%s %s: no end-to-end latency", r.Target, r.Gen, r.Workload)
			}
		case phaseLimit:
			if r.MBps <= 0 && r.Ack == nil {
				t.Errorf("machine %s: empty", r.Metric)
			}
		}
	}
	for _, tg := range wantTargets {
		for _, ph := range []string{phaseProduce, phaseConsume, phaseProdCons, phaseE2E} {
			if !phases[tg][ph] {
				t.Errorf("%s: no %s result", tg, ph)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(cfg.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Results) != len(rep.Results) {
		t.Fatalf("results.json: %v, %d results", err, len(back.Results))
	}
	md, err := os.ReadFile(filepath.Join(cfg.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## Machine limits", "## Easel ÷ peers", "## All results", "throughput-produce.svg"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	for _, f := range []string{"throughput-produce.png", "latency-e2e.svg"} {
		if fi, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("chart %s: %v", f, err)
		}
	}
	return rep
}

// TestSmokeEmbedded runs the in-process targets twice (-repeat 2) and
// checks the interleaving, the warm-ups and the report of repeats.
func TestSmokeEmbedded(t *testing.T) {
	t.Parallel() // with TestSmokeBrokers, which mostly waits for its builds and children
	targets := []string{"machine", "easel-embedded", "easel-embedded-prealloc", "wal"}
	rep := smoke(t, targets, []string{"easel-embedded", "easel-embedded-prealloc", "wal"}, 2)
	metrics := map[string]int{}
	for _, r := range rep.Results {
		if r.Target == "machine" {
			metrics[r.Metric]++
		}
	}
	for m, want := range map[string]int{"memcpy": 2, "file-write": 2, "file-write-first-touch": 1, "file-write-prealloc": 2,
		"file-write-fsync": 2, "loopback-tcp": 2, "loopback-rtt": 2} {
		if metrics[m] != want {
			t.Errorf("machine limit %s measured %d times, want %d", m, metrics[m], want)
		}
	}
	// Interleaved: the results come in schedule order, A B C D A B C D.
	var order []slot
	for _, r := range rep.Results {
		sl := slot{Round: r.Round, Target: r.Target}
		if len(order) == 0 || order[len(order)-1] != sl {
			order = append(order, sl)
		}
	}
	if want := schedule(targets, 2); !slices.Equal(order, want) {
		t.Errorf("results in the order %v, want %v", order, want)
	}
	if len(rep.Warmups) != len(targets)*2 {
		t.Errorf("%d page-cache warm-ups, want one before each of %d target runs", len(rep.Warmups), len(targets)*2)
	}
	for i, w := range rep.Warmups {
		if want := schedule(targets, 2)[i]; w.Before != want.Target || w.Round != want.Round || w.Bytes <= 0 || w.Err != "" {
			t.Errorf("warm-up %d: %+v, want one before %v", i, w, want)
		}
	}
	for _, r := range rep.Results {
		if r.Target == "easel-embedded-prealloc" && r.Phase == phaseProduce && r.DataBytes < 1<<30 {
			t.Errorf("preallocated engine holds %d bytes of disk after produce, want its 1 GiB segment", r.DataBytes)
		}
	}
	md := renderReport(rep, nil, "", 1)
	for _, s := range []string{"ran 2 times, interleaved", "page cache was warmed", "## Preallocate", "| 2 |", "file-write-first-touch"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	held := *rep
	held.Meta.PageReporting, held.Meta.PageReportingHeld, held.Meta.PageReportingOrder = true, true, 9
	held.Meta.PrimeBytes, held.Meta.PrimeSeconds = 19<<30, 41
	if md := renderReport(&held, nil, "", 1); !strings.Contains(md, "page_reporting_order 9 raised") || !strings.Contains(md, "touched and freed 19.0 GiB of memory (in 41 s)") {
		t.Errorf("report of a run with free page reporting held off does not say so")
	}
	held.Meta.PageReportingHeld = false
	if md := renderReport(&held, nil, "", 1); !strings.Contains(md, "see the same mix of fresh and recycled pages") {
		t.Errorf("report of a run with free page reporting on does not say so")
	}
	if _, ok := readCPUTimes(); ok {
		if rep.Meta.CPU == nil || len(rep.Meta.RoundCPU) != 2 || !strings.Contains(md, "stolen by the hypervisor") || !strings.Contains(md, "steal by round: ") {
			t.Errorf("CPU time of the run %+v and of its rounds %+v not reported", rep.Meta.CPU, rep.Meta.RoundCPU)
		}
	}
}

func TestSchedule(t *testing.T) {
	got := schedule([]string{"a", "b", "c"}, 3)
	var s []string
	for _, sl := range got {
		s = append(s, fmt.Sprintf("%s%d", sl.Target, sl.Round+1))
	}
	if want := "a1 b1 c1 a2 b2 c2 a3 b3 c3"; strings.Join(s, " ") != want {
		t.Errorf("schedule: %s, want %s", strings.Join(s, " "), want)
	}
	if n := len(schedule([]string{"a"}, 0)); n != 1 {
		t.Errorf("repeat 0 gives %d slots, want 1", n)
	}
}

func TestCompare(t *testing.T) {
	sp := func(vs ...float64) spread {
		var rs []*result
		for _, v := range vs {
			rs = append(rs, &result{MBps: v})
		}
		return spreadOf(rs, mbps)
	}
	tests := []struct {
		name        string
		e, p        spread
		lowerBetter bool
		ratio       float64
		want        verdict
	}{
		{"ranges apart, higher", sp(110, 120, 130), sp(90, 100, 105), false, 1.2, win},
		{"ranges apart, lower", sp(90, 100, 105), sp(110, 120, 130), false, 100.0 / 120, lose},
		{"ranges overlap", sp(100, 150, 200), sp(90, 100, 110), false, 1.5, tie},
		{"ranges touch", sp(110, 120, 130), sp(100, 105, 110), false, 120.0 / 105, tie},
		{"latency apart, lower is better", sp(9, 10, 11), sp(20, 21, 22), true, 10.0 / 21, win},
		{"latency apart, higher is worse", sp(20, 21, 22), sp(9, 10, 11), true, 2.1, lose},
		{"median of an even count", sp(1, 2, 3, 10), sp(100), false, 2.5 / 100, lose},
		{"single runs within 5%", sp(102), sp(100), false, 1.02, tie},
		{"single runs 10% apart", sp(110), sp(100), false, 1.1, win},
		{"ranges apart, 1% slower", sp(99, 99, 99), sp(100, 100, 100), false, 0.99, lose},
	}
	for _, tc := range tests {
		r, v := compare(tc.e, tc.p, tc.lowerBetter)
		if v != tc.want || math.Abs(r-tc.ratio) > 1e-9 {
			t.Errorf("%s: %.3f %v, want %.3f %v", tc.name, r, v, tc.ratio, tc.want)
		}
	}
}

// TestReportRepeats renders rounds of made-up results: medians with ranges,
// ratios of medians, ties where the ranges overlap, losses only where they
// do not.
func TestReportRepeats(t *testing.T) {
	w := workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}
	var rs []result
	add := func(round int, target, phase string, mbps float64) {
		r := result{Round: round, Target: target, Gen: "raw", Phase: phase, MBps: mbps}
		r.Workload, r.Size, r.Partitions, r.Acks, r.Codec = w.key(), w.Size, w.Partitions, w.Acks, w.Codec
		rs = append(rs, r)
	}
	for i, v := range [][4]float64{{100, 300, 50, 80}, {120, 310, 90, 70}, {110, 290, 70, 100}} {
		add(i, "easel-broker", phaseProduce, v[0]) // 110 (100–120)
		add(i, "easel-broker", phaseConsume, v[2]) // 70 (50–90)
		add(i, "kfake", phaseProduce, v[1])        // 300 (290–310): Easel loses
		add(i, "kfake", phaseConsume, v[3])        // 80 (70–100): a tie
	}
	rs = append(rs, result{Round: 2, Target: "kfake", Gen: "raw", Phase: phaseProdCons, Workload: w.key(), Err: "boom"})
	md := renderReport(&report{Meta: meta{Repeat: 3}, Results: rs}, nil, "", 1)
	for _, s := range []string{
		"| easel-broker | raw | 110 (100–120) |",                                    // baseline: median (min–max)
		"| 1KiB/p1/acks=1/none | produce MB/s | **0.37×** |",                        // ratio of medians, a loss
		"| 1KiB/p1/acks=1/none | consume MB/s | 0.88× (tie) |",                      // overlapping ranges
		"produce MB/s: broker/raw 110 MB/s (100–120) vs 300 MB/s (290–310) (0.37×)", // listed as a loss
		"| 0 of 1 | error: boom |",                                                  // a failed run
		"2 comparisons, 1 of them ties.",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	if strings.Contains(md, "consume MB/s: broker/raw") {
		t.Errorf("a tie listed as a loss:\n%s", md)
	}
}

// TestSmokeBrokers builds cmd/easel and cmd/kfake and drives both, and a
// 3-broker Easel cluster, with the raw and franz-go generators, including
// scaling and start-up.
func TestSmokeBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts brokers")
	}
	t.Parallel()
	targets := []string{"easel-broker", "easel-cluster", "kfake"}
	rep := smoke(t, targets, targets, 1)
	var scale, startup int
	gens := map[string]bool{}
	for _, r := range rep.Results {
		switch r.Phase {
		case phaseScale:
			scale++
			if r.RSSBytes <= 0 {
				t.Errorf("%s scaling %d: no RSS", r.Target, r.Partitions)
			}
		case phaseStartClean, phaseStartKilled:
			startup++
			if r.Value <= 0 {
				t.Errorf("%s: no time", r.Phase)
			}
		case phaseProduce:
			gens[r.Target+"/"+r.Gen] = true
		}
	}
	if scale != 4 || startup != 2 {
		t.Errorf("%d scaling and %d start-up results, want 4 and 2", scale, startup)
	}
	for _, g := range []string{"easel-broker/raw", "easel-broker/kgo", "easel-broker/kgo-if5", "easel-broker/kgo-linger0",
		"kfake/raw", "kfake/kgo", "kfake/kgo-linger0", "easel-cluster/raw", "easel-cluster/kgo", "easel-cluster/kgo-if5"} {
		if !gens[g] {
			t.Errorf("no produce result for %s", g)
		}
	}
	checkCluster(t, rep)
}

// checkCluster checks that easel-cluster and easel-broker measured produce
// with acks=1 and acks=all (smoke checks that each figure is non-zero and
// that consumers read what was produced), and that the report compares
// them.
func checkCluster(t *testing.T, rep *report) {
	t.Helper()
	cfg, _ := presets("smoke")
	acked := map[string]bool{}
	for _, r := range rep.Results {
		if r.Phase == phaseProduce && r.Err == "" && r.MBps > 0 {
			acked[fmt.Sprintf("%s/%s/acks=%s", r.Target, r.Gen, r.Acks)] = true
		}
	}
	md := renderReport(rep, nil, "", 1)
	if !strings.Contains(md, "## Replication: easel-cluster (RF 3) ÷ easel-broker (RF 1)") {
		t.Error("report lacks the replication section")
	}
	for _, g := range []string{"raw", "kgo"} {
		for _, acks := range []string{"1", "all"} {
			for _, tg := range []string{"easel-cluster", "easel-broker"} {
				if !acked[fmt.Sprintf("%s/%s/acks=%s", tg, g, acks)] {
					t.Errorf("%s/%s: no produce result with acks=%s", tg, g, acks)
				}
			}
			row := fmt.Sprintf("| easel-cluster (RF 3, acks=%s) ÷ easel-broker (RF 1, acks=1) | %s | %s |", acks, g,
				strings.Replace(cfg.Cluster[0].key(), "/acks=1", "", 1))
			if !strings.Contains(md, row) {
				t.Errorf("report lacks the row %q", row)
			}
		}
	}
}

func TestWorkloadsFor(t *testing.T) {
	quick, _ := presets("quick")
	full, _ := presets("full")
	acksAll := workload{Size: 1024, Partitions: 1, Acks: "all", Codec: "none"}
	p16All := workload{Size: 1024, Partitions: 16, Acks: "all", Codec: "none"}
	tests := []struct {
		cfg         config
		target, gen string
		n           int        // workloads
		has, hasNot []workload // among them, not among them
	}{
		{quick, "easel-cluster", "raw", 2, []workload{quick.Workloads[0], acksAll}, nil},
		{quick, "easel-cluster", "kgo-if5", 1, []workload{quick.Workloads[0]}, []workload{acksAll}},
		{quick, "easel-cluster", "kgo-linger0", 0, nil, nil},
		{quick, "easel-broker", "kgo", len(quick.Workloads) + 1, []workload{acksAll}, nil},
		{quick, "kfake", "raw", len(quick.Workloads), nil, []workload{acksAll}},
		{full, "easel-cluster", "kgo", 4, []workload{acksAll, p16All}, nil},
		{full, "easel-broker", "raw", len(full.Workloads), []workload{acksAll, p16All}, nil},
	}
	for _, tc := range tests {
		ws := tc.cfg.workloadsFor(tc.target, tc.gen)
		if len(ws) != tc.n {
			t.Errorf("%s %s/%s: %d workloads, want %d", tc.cfg.Mode, tc.target, tc.gen, len(ws), tc.n)
		}
		for _, w := range tc.has {
			if !slices.Contains(ws, w) {
				t.Errorf("%s %s/%s lacks %s", tc.cfg.Mode, tc.target, tc.gen, w.key())
			}
		}
		for _, w := range tc.hasNot {
			if slices.Contains(ws, w) {
				t.Errorf("%s %s/%s runs %s", tc.cfg.Mode, tc.target, tc.gen, w.key())
			}
		}
	}
	if n := len(quick.Workloads); n != 2 {
		t.Errorf("quick mode: easel-broker's list grew into the shared one: %d workloads", n)
	}
}

func TestCountBatches(t *testing.T) {
	var log []byte
	var want int
	for i, n := range []int{1, 7, 30} {
		w := workload{Size: 50 * (i + 1), Codec: []string{"none", "lz4", "zstd"}[i]}
		b, err := buildBatch(w, i, n)
		if err != nil {
			t.Fatal(err)
		}
		record.SetBaseOffset(b, int64(want))
		log = append(log, b...)
		want += n
	}
	for cut := 0; cut <= len(log); cut++ {
		recs, next := countBatches(log[:cut])
		if recs < 0 || recs > want || (recs > 0 && next != int64(recs)) {
			t.Fatalf("cut %d: %d records, next %d", cut, recs, next)
		}
	}
	if recs, next := countBatches(log); recs != want || next != int64(want) {
		t.Fatalf("whole log: %d records, next %d; want %d", recs, next, want)
	}
}

func TestBatchesBelow(t *testing.T) {
	var log []byte
	var off int64
	for _, n := range []int{3, 4, 5} {
		b, err := buildBatch(workload{Size: 10, Codec: "none"}, 0, n)
		if err != nil {
			t.Fatal(err)
		}
		record.SetBaseOffset(b, off)
		off += int64(n)
		log = append(log, b...)
	}
	tests := []struct {
		hw       int64
		wantRecs int
	}{{0, 0}, {2, 0}, {3, 3}, {6, 3}, {7, 7}, {11, 7}, {12, 12}, {100, 12}}
	for _, tc := range tests {
		recs, next := countBatches(batchesBelow(log, tc.hw))
		if recs != tc.wantRecs || (recs > 0 && next != int64(recs)) {
			t.Errorf("hw %d: %d records (next %d), want %d", tc.hw, recs, next, tc.wantRecs)
		}
	}
	if got := countRecs(batchesBelow(log[:len(log)-1], 100)); got != 7 {
		t.Errorf("partial last batch: kept %d records, want 7", got)
	}
}

func countRecs(b []byte) int { n, _ := countBatches(b); return n }

func TestRawProduceRequest(t *testing.T) {
	for _, v := range []int16{3, 7, 9} {
		w := workload{Size: 100, Partitions: 3, Acks: "all", Codec: "none"}
		srv := &kafkaServer{produceV: v}
		p := &rawProducer{}
		batch, err := buildBatch(w, 0, 5)
		if err != nil {
			t.Fatal(err)
		}
		// Build the way newRawProducer does, without connecting.
		p2, err := encodeProduce(srv, "topic-x", w, batch)
		if err != nil {
			t.Fatal(err)
		}
		p.prefix, p.suffix = p2.prefix, p2.suffix
		for part := range w.Partitions {
			full := append(append(append([]byte(nil), p.prefix[part]...), batch...), p.suffix[part]...)
			if got := int(int32(uint32(full[0])<<24 | uint32(full[1])<<16 | uint32(full[2])<<8 | uint32(full[3]))); got != len(full)-4 {
				t.Fatalf("v%d: frame size %d, want %d", v, got, len(full)-4)
			}
			// Skip size, key, version, correlation id, client id (and tags).
			body := full[4+2+2+4:]
			body = body[2+len(rawClientID):]
			if v >= 9 {
				body = body[1:]
			}
			req := kmsg.NewPtrProduceRequest()
			req.SetVersion(v)
			if err := req.ReadFrom(body); err != nil {
				t.Fatalf("v%d: %v", v, err)
			}
			if req.Acks != -1 || len(req.Topics) != 1 || req.Topics[0].Topic != "topic-x" ||
				req.Topics[0].Partitions[0].Partition != int32(part) || string(req.Topics[0].Partitions[0].Records) != string(batch) {
				t.Fatalf("v%d partition %d: decoded %+v", v, part, req)
			}
		}
	}
}

func TestSendLog(t *testing.T) {
	l := newSendLog(2)
	l.sent(0, nowNano(), 10)
	l.sent(0, nowNano(), 10)
	l.sent(1, nowNano(), 5)
	l.seen(0, 15) // completes the first unit only
	l.seen(1, 5)
	if got := l.latency().Count; got != 2 {
		t.Fatalf("%d samples after two complete units, want 2", got)
	}
	l.seen(0, 5)
	if got := l.latency().Count; got != 3 {
		t.Fatalf("%d samples, want 3", got)
	}
}

func TestReplaceSection(t *testing.T) {
	section := "## " + sectionTitle + "\n\nnew\n"
	tests := []struct{ name, before, after string }{
		{"missing file", "", "# Benchmarks\n\n" + section},
		{"appended", "# B\n\n## Other\n\nx\n", "# B\n\n## Other\n\nx\n\n" + section},
		{"middle", "# B\n\n## " + sectionTitle + "\n\nold\n\n## Next\n\ny\n", "# B\n\n" + section + "\n## Next\n\ny\n"},
		{"last", "# B\n\n## " + sectionTitle + "\n\nold\n### sub\nold\n", "# B\n\n" + section},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := replaceSection(path, section); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.after {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.after)
			}
		})
	}
}

func TestReportLosses(t *testing.T) {
	w := workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}
	mk := func(target, gen, phase string, mbps, p99 float64) result {
		r := result{Target: target, Gen: gen, Phase: phase, MBps: mbps}
		r.Workload, r.Size, r.Partitions, r.Acks, r.Codec = w.key(), w.Size, w.Partitions, w.Acks, w.Codec
		if phase == phaseE2E {
			r.E2E = &latency{Count: 1, P50: p99 / 2, P99: p99, P999: p99}
			r.OfferedRate = 1000
		}
		return r
	}
	rep := &report{Results: []result{
		mk("easel-broker", "raw", phaseProduce, 100, 0),
		mk("kfake", "raw", phaseProduce, 200, 0), // Easel loses: 0.50×
		mk("easel-broker", "raw", phaseE2E, 10, 900),
		mk("kfake", "raw", phaseE2E, 10, 1000), // Easel wins on latency
	}}
	md := renderReport(rep, nil, "", 1)
	if !strings.Contains(md, "produce MB/s: broker/raw 100 MB/s vs 200 MB/s (0.50×)") {
		t.Errorf("loss not listed:\n%s", md)
	}
	if strings.Contains(md, "e2e p99 @50% (lower is better): broker/raw") {
		t.Errorf("a win listed as a loss:\n%s", md)
	}
	if !strings.Contains(md, "| 0.90× |") {
		t.Errorf("latency ratio missing:\n%s", md)
	}
}

func TestPayloads(t *testing.T) {
	pl := sharedPayloads()
	for _, size := range []int{1, 100, 1024, 16384, len(pl.pool) + 10} {
		for _, i := range []int{0, 1, 12345, -1} {
			if got := len(pl.get(i, size)); got != min(size, len(pl.pool)) {
				t.Fatalf("get(%d, %d): %d bytes", i, size, got)
			}
		}
	}
}

// FuzzFetchBytes feeds arbitrary record bytes, as a broker could return, to
// the header walkers of the raw consumer: they must not panic, and cutting at
// a high watermark keeps a prefix whose batches all end at or below it.
func FuzzFetchBytes(f *testing.F) {
	b, err := buildBatch(workload{Size: 20, Codec: "none"}, 0, 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, int64(3))
	f.Add(append(b, b[:40]...), int64(2))
	f.Add([]byte{}, int64(0))
	f.Add(make([]byte, 61), int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, hw int64) {
		_, _ = countBatches(data)
		cut := batchesBelow(data, hw)
		if len(cut) > len(data) || string(cut) != string(data[:len(cut)]) {
			t.Fatalf("batchesBelow is not a prefix")
		}
		if n, next := countBatches(cut); n > 0 && next > hw {
			t.Fatalf("kept batches up to %d past hw %d", next, hw)
		}
		_, _ = skipTags(data)
	})
}
