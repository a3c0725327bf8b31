package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
func smoke(t *testing.T, targets []string, wantTargets []string) *report {
	t.Helper()
	cfg, err := presets("smoke")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Root, err = findRoot("."); err != nil {
		t.Fatal(err)
	}
	cfg.Out, cfg.Targets, cfg.Quiet, cfg.Command = t.TempDir(), targets, true, "go test"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
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

func TestSmokeEmbedded(t *testing.T) {
	rep := smoke(t, []string{"machine", "easel-embedded", "wal"}, []string{"easel-embedded", "wal"})
	metrics := map[string]bool{}
	for _, r := range rep.Results {
		if r.Target == "machine" {
			metrics[r.Metric] = true
		}
	}
	for _, m := range []string{"memcpy", "file-write", "file-write-fsync", "loopback-tcp", "loopback-rtt"} {
		if !metrics[m] {
			t.Errorf("no machine limit %s", m)
		}
	}
}

// TestSmokeBrokers builds cmd/easel and cmd/kfake and drives both with the
// raw and franz-go generators, including scaling and start-up.
func TestSmokeBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts brokers")
	}
	rep := smoke(t, []string{"easel-broker", "kfake"}, []string{"easel-broker", "kfake"})
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
	for _, g := range []string{"easel-broker/raw", "easel-broker/kgo", "easel-broker/kgo-if5", "kfake/raw", "kfake/kgo"} {
		if !gens[g] {
			t.Errorf("no produce result for %s", g)
		}
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
