package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easel-io/easel/bench/internal/pagecache"
)

// allTargets lists the -targets names in the order they run.
var allTargets = []string{"machine", "easel-embedded", "easel-embedded-prealloc", "wal", "easel-broker", "easel-cluster", "kfake", "nats", "redis"}

// allGens lists the -gens names: the load generators of Kafka-protocol
// targets.
var allGens = []string{"raw", "kgo", "kgo-if5", "kgo-linger0"}

// config is one harness run.
type config struct {
	Mode      string        // "quick", "full" or "smoke"
	Root      string        // the easel module's directory
	Out       string        // output directory
	Targets   []string      // which of allTargets run
	Gens      []string      // Kafka-protocol generators: raw, kgo, kgo-if5, kgo-linger0
	Duration  time.Duration // per produce phase
	MaxBytes  int64         // payload bytes per produce phase at most
	Workloads []workload
	// If5 and Linger0 list the workloads run with kgo-if5 and kgo-linger0,
	// Prealloc those of easel-embedded-prealloc (each a subset of
	// Workloads).
	If5, Linger0, Prealloc []workload
	// Cluster lists the workloads of easel-cluster (with the raw and kgo
	// generators; kgo-if5 runs those also in If5). easel-broker runs
	// them too, so that RF 3 can be compared with RF 1.
	Cluster []workload
	// Repeat is how many rounds run (see schedule): each (target,
	// workload) is measured Repeat times, interleaved.
	Repeat int
	// WarmBytes is written to a file and deleted before each target (the
	// page-cache warm-up; 0: none).
	WarmBytes int64
	// Reporting is the free page reporting state the run found;
	// ReportingHeld says whether the harness held it off for the run
	// (see pagecache), in which case run primes memory first.
	Reporting     pagecache.Reporting
	ReportingHeld bool
	Scale         []int // partition counts for the scaling figure
	StartupBytes  int64 // data written before the start-up measurements (0: skip)
	Pprof         bool  // capture CPU profiles of the Easel broker
	BenchmarksMD  string
	RedisServer   string
	// EaselBin is a prebuilt broker binary to measure instead of building
	// cmd/easel (an A/B of two builds); it must take cmd/easel's flags.
	EaselBin string
	Keep     bool // keep the temporary data directories
	Quiet    bool // no progress bar
	Command  string
}

func presets(mode string) (config, error) {
	base := workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}
	with := func(f func(*workload)) workload { w := base; f(&w); return w }
	c := config{Mode: mode, Targets: allTargets, Gens: allGens}
	switch mode {
	case "quick":
		// Three rounds of two workloads (16 partitions and acks=all are
		// in full mode): about 5 minutes on the 2-core build machine,
		// much of it outside the phases, deleting topics (BENCHMARKS.md).
		c.Duration, c.MaxBytes, c.Repeat = 800*time.Millisecond, 512<<20, 3
		c.Workloads = []workload{base, with(func(w *workload) { w.Size = 100 })}
		c.If5, c.Linger0, c.Prealloc = []workload{base}, []workload{base}, []workload{base}
		c.Cluster = []workload{base, with(func(w *workload) { w.Acks = "all" })}
		c.Scale = []int{1, 100, 1000} // 10,000 takes the Easel broker ~35 s: full mode only
		c.StartupBytes = 512 << 20
	case "full":
		c.Duration, c.MaxBytes, c.Repeat = 2*time.Second, 2<<30, 5
		for _, size := range []int{100, 1024, 16384} {
			for _, parts := range []int{1, 16} {
				c.Workloads = append(c.Workloads, with(func(w *workload) { w.Size, w.Partitions = size, parts }))
			}
			c.Workloads = append(c.Workloads, with(func(w *workload) { w.Size, w.Acks = size, "all" }))
			c.If5 = append(c.If5, with(func(w *workload) { w.Size = size }))
		}
		c.Workloads = append(c.Workloads, with(func(w *workload) { w.Partitions, w.Acks = 16, "all" }))
		for _, codec := range []string{"lz4", "zstd"} {
			for _, size := range []int{100, 1024} {
				c.Workloads = append(c.Workloads, with(func(w *workload) { w.Size, w.Codec = size, codec }))
			}
		}
		for _, parts := range []int{1, 16} {
			c.Workloads = append(c.Workloads, with(func(w *workload) { w.Partitions, w.Sync = parts, true }))
		}
		c.Linger0 = []workload{base, with(func(w *workload) { w.Size = 16384 })}
		c.Prealloc = []workload{base, with(func(w *workload) { w.Partitions = 16 }), with(func(w *workload) { w.Size = 16384 }),
			with(func(w *workload) { w.Sync = true })}
		for _, parts := range []int{1, 16} {
			for _, acks := range []string{"1", "all"} {
				c.Cluster = append(c.Cluster, with(func(w *workload) { w.Partitions, w.Acks = parts, acks }))
			}
		}
		c.Scale = []int{1, 100, 1000, 10000}
		c.StartupBytes = 10 << 30
	case "smoke":
		c.Duration, c.MaxBytes, c.Repeat = 150*time.Millisecond, 8<<20, 1
		c.Workloads = []workload{
			with(func(w *workload) { w.Size = 100 }),
			with(func(w *workload) { w.Partitions, w.Codec = 3, "lz4" }),
		}
		c.If5, c.Linger0, c.Prealloc = c.Workloads[:1], c.Workloads[:1], c.Workloads[:1]
		c.Cluster = []workload{c.Workloads[0], with(func(w *workload) { w.Size, w.Acks = 100, "all" })}
		c.Scale = []int{1, 50}
		c.StartupBytes = 4 << 20
	default:
		return c, fmt.Errorf("peers: unknown mode %q", mode)
	}
	// A phase's byte cap and half again: what one workload holds at most
	// (its topic is deleted before the next phase), with room for the
	// broker's own memory (kfake also keeps the records on its heap).
	c.WarmBytes = c.MaxBytes * 3 / 2
	return c, nil
}

// workloadsFor returns the workloads a Kafka-protocol target runs with a
// generator.
func (c config) workloadsFor(target, gen string) []workload {
	if target == "easel-cluster" {
		switch gen {
		case "raw", "kgo":
			return c.Cluster
		case "kgo-if5":
			return slices.DeleteFunc(slices.Clone(c.Cluster), func(w workload) bool { return !slices.Contains(c.If5, w) })
		}
		return nil // kgo-linger0: the single broker's latency is the one compared
	}
	switch gen {
	case "kgo-if5":
		return c.If5
	case "kgo-linger0":
		return c.Linger0
	}
	ws := c.Workloads
	if target == "easel-broker" {
		// The RF 1 side of the easel-cluster comparison (acks=all).
		for _, w := range c.Cluster {
			if !slices.Contains(ws, w) {
				ws = append(slices.Clip(ws), w)
			}
		}
	}
	return ws
}

func main() {
	if maybeRunRole() {
		return
	}
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	quick := flag.Bool("quick", false, "quick mode (the default): 3 rounds of 0.8 s phases, 1 KiB and 100 B records, 1 partition; about 5 min")
	full := flag.Bool("full", false, "full mode: 5 rounds of 2 s phases, 100 B, 1 KiB and 16 KiB, acks, lz4/zstd, fsync, 10,000 partitions, 10 GiB start-up data; about 80 min")
	targets := flag.String("targets", strings.Join(allTargets, ","), "comma-separated targets to run")
	gens := flag.String("gens", strings.Join(allGens, ","), "load generators for Kafka-protocol targets")
	repeat := flag.Int("repeat", 0, "run every target this many times, interleaved (A B C A B C), and report medians with min and max (default: quick 3, full 5)")
	warm := flag.Int64("warm-bytes", -1, "bytes written and deleted before each target to warm the page cache (default 1.5 times the phase byte cap; 0: no warm-up)")
	out := flag.String("out", "", "output directory (default bench/out; relative paths start at the repository root)")
	dur := flag.Duration("duration", 0, "override the length of each produce phase")
	startup := flag.Int64("startup-bytes", -1, "override the data written before the start-up measurement (0 skips it)")
	pprofFlag := flag.Bool("pprof", false, "capture CPU profiles of the Easel broker (baseline produce and consume, scaling at >= 100 partitions) into <out>/profiles")
	bmd := flag.String("benchmarks-md", "", "also write the report as the \"Peers (bench/peers)\" section of this file (relative to the repository root, e.g. BENCHMARKS.md), copying the charts to bench/peers/charts/")
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary (the target is skipped if it is not found)")
	easelBin := flag.String("easel-bin", "", "measure this prebuilt broker binary (with cmd/easel's flags) instead of building cmd/easel")
	keep := flag.Bool("keep", false, "keep the temporary data directories")
	quiet := flag.Bool("quiet", false, "no progress bar")
	flag.Float64Var(&e2eRate, "e2e-rate", 0, "offer this many records/s in the end-to-end latency phase instead of half of each target's peak (capped at the peak)")
	scale := flag.String("scale", "", "override the partition counts of the scaling figure (comma-separated; \"none\" skips it)")
	hold := flag.Bool("hold-page-reporting", true, "on a virtual machine that hands freed pages back to its host (free page reporting), hold that off while the run lasts "+
		"(page_reporting_order raised, put back at the end; needs root) and touch most of the memory once first, so that the warm-ups keep their pages; false: leave the machine as it is")
	render := flag.String("render", "", "measure nothing: re-render the report, charts (and -benchmarks-md) from this results.json (relative to the repository root)")
	flag.Parse()
	if *quick && *full {
		return errors.New("-quick and -full exclude each other")
	}
	mode := "quick"
	if *full {
		mode = "full"
	}
	cfg, err := presets(mode)
	if err != nil {
		return err
	}
	wd, _ := os.Getwd()
	if cfg.Root, err = findRoot(wd); err != nil {
		return err
	}
	cfg.Out = *out
	if cfg.Out == "" {
		cfg.Out = filepath.Join(cfg.Root, "bench", "out")
	}
	cfg.Targets = nil
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !slices.Contains(allTargets, t) {
			return fmt.Errorf("unknown target %q (have %s)", t, strings.Join(allTargets, ", "))
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	cfg.Gens = nil
	for _, g := range strings.Split(*gens, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if !slices.Contains(allGens, g) {
			return fmt.Errorf("unknown generator %q (have %s)", g, strings.Join(allGens, ", "))
		}
		cfg.Gens = append(cfg.Gens, g)
	}
	if *scale != "" {
		cfg.Scale = nil
		for _, f := range strings.Split(*scale, ",") {
			if f = strings.TrimSpace(f); f == "" || f == "none" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				return fmt.Errorf("-scale: bad partition count %q", f)
			}
			cfg.Scale = append(cfg.Scale, n)
		}
	}
	if *dur > 0 {
		cfg.Duration = *dur
	}
	if *startup >= 0 {
		cfg.StartupBytes = *startup
	}
	if *repeat < 0 {
		return errors.New("-repeat must be at least 1")
	}
	if *repeat > 0 {
		cfg.Repeat = *repeat
	}
	if *warm >= 0 {
		cfg.WarmBytes = *warm
	}
	cfg.Pprof, cfg.BenchmarksMD, cfg.RedisServer, cfg.Keep, cfg.Quiet = *pprofFlag, *bmd, *redisBin, *keep, *quiet
	cfg.EaselBin = *easelBin
	cfg.Command = "go -C bench/peers run . " + strings.Join(os.Args[1:], " ")
	// go -C bench/peers runs the harness in bench/peers: relative paths are
	// taken from the repository root instead, so that they mean the same
	// whichever way it was started.
	if cfg.BenchmarksMD != "" && !filepath.IsAbs(cfg.BenchmarksMD) {
		cfg.BenchmarksMD = filepath.Join(cfg.Root, cfg.BenchmarksMD)
	}
	if !filepath.IsAbs(cfg.Out) {
		cfg.Out = filepath.Join(cfg.Root, cfg.Out)
	}

	if *render != "" {
		path := *render
		if !filepath.IsAbs(path) {
			path = filepath.Join(cfg.Root, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return err
		}
		for i, p := range rep.Profiles { // summarise again, with the current options
			if top, err := pprofTop(p.Path); err == nil {
				rep.Profiles[i].Top = top
			}
		}
		return writeOutputs(&rep, cfg)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Reporting = pagecache.ReadReporting()
	if *hold {
		was, restore, err := pagecache.HoldReporting()
		if err != nil {
			fmt.Fprintf(os.Stderr, "peers: %v; measuring with free page reporting on\n", err)
		} else {
			cfg.Reporting, cfg.ReportingHeld = was, was.Active && !was.Off
			defer func() {
				if err := restore(); err != nil {
					fmt.Fprintf(os.Stderr, "peers: free page reporting stays held off: %v\n", err)
				}
			}()
		}
	}
	start := time.Now()
	rep, err := run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\n%d results in %v; report: %s\n", len(rep.Results), time.Since(start).Round(time.Second),
		filepath.Join(cfg.Out, "report.md"))
	return nil
}
