// Command replication measures what replication costs Easel on one machine:
// produce throughput with replication factor 1 and 3 (acks=1 and acks=all,
// min.insync.replicas=2), produce→ack latency at a fixed rate, and how long
// a producer waits after the SIGKILL of its partition's leader.
//
// It starts easel brokers as child processes on 127.0.0.1: one broker
// without cluster flags (a cluster of one) and a cluster of three brokers
// (all raft voters, --cluster-timing default), started afresh for every
// throughput and latency run and SIGKILLed with its data deleted after it,
// then a three-broker cluster with --cluster-timing fast for the kills.
// Throughput and latency runs are interleaved over -repeat rounds (every
// workload once per round, A B C A B C), each after a load check and a
// page-cache warm-up; the report
// gives medians with min–max, and a comparison whose ranges overlap is a
// tie.
//
//	go run ./bench/replication [-bin path] [-duration 10s] [-repeat 3] [-kills 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easel-io/easel/bench/internal/pagecache"
)

type options struct {
	bin                      string
	dur, ramp, loadWait      time.Duration
	repeat, producers, kills int
	latRate, failoverParts   int
	maxLoad                  float64
	warmBytes                int64
	keep, noTput, noLat      bool
	holdReporting            bool
	only                     string
	pprofDir                 string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "easel binary to run (default: go build ./cmd/easel into the temporary directory)")
	flag.DurationVar(&o.dur, "duration", 10*time.Second, "measured length of each throughput and latency run")
	flag.DurationVar(&o.ramp, "ramp", 2*time.Second, "unmeasured producing before each run's window")
	flag.IntVar(&o.repeat, "repeat", 3, "rounds; each round runs every throughput and latency workload once")
	flag.IntVar(&o.producers, "producers", 4, "franz-go clients of a throughput run")
	flag.IntVar(&o.latRate, "lat-rate", 1000, "records a second of a latency run")
	flag.IntVar(&o.kills, "kills", 20, "leader SIGKILLs (0: skip the failover part)")
	flag.IntVar(&o.failoverParts, "failover-partitions", 3, "partitions of the failover topic (RF 3)")
	flag.Float64Var(&o.maxLoad, "max-load", 2, "wait before a run while the 1-minute load average is above this and the machine is busy")
	flag.DurationVar(&o.loadWait, "load-wait", 60*time.Second, "longest wait for the load to drop before a run")
	flag.Int64Var(&o.warmBytes, "warm-bytes", 1<<30, "bytes written to a file and deleted before each run (page-cache warm-up; 0: none)")
	flag.BoolVar(&o.holdReporting, "hold-page-reporting", true, "on a virtual machine that hands freed pages back to its host (free page reporting), hold that off while the bench runs "+
		"(page_reporting_order raised, put back at the end; needs root) and touch most of the memory once first, so that the warm-ups keep their pages; false: leave the machine as it is")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data and broker logs)")
	flag.BoolVar(&o.noTput, "no-throughput", false, "skip the throughput runs")
	flag.BoolVar(&o.noLat, "no-latency", false, "skip the latency runs")
	flag.StringVar(&o.only, "only", "", "run only the throughput and latency workloads whose name contains this (e.g. \"RF 3, acks=all, 1 \")")
	flag.StringVar(&o.pprofDir, "pprof", "", "directory for CPU profiles of every broker over each throughput run's window (brokers run with --pprof; default: none)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "replication:", err)
		code = 1
	}
	stop()
	os.Exit(code)
}

// config is a target and topic setting of a throughput or latency run.
type config struct {
	name    string
	cluster bool // the three-broker cluster, else the single broker
	rf      int
	acks    string
}

var (
	single1    = config{"single broker, RF 1, acks=1", false, 1, "1"}
	cluster1   = config{"3 brokers, RF 1, acks=1", true, 1, "1"}
	rf3acks1   = config{"3 brokers, RF 3, acks=1", true, 3, "1"}
	rf3acksAll = config{"3 brokers, RF 3, acks=all", true, 3, "all"}
)

// workload is one run's kind: throughput over parts partitions, or latency
// (parts 0) on one partition.
type workload struct {
	cfg   config
	parts int
}

func (w workload) latency() bool { return w.parts == 0 }

func (w workload) String() string {
	if w.latency() {
		return "latency " + w.cfg.name
	}
	return fmt.Sprintf("throughput %s, %d partition(s)", w.cfg.name, w.parts)
}

// run is one run's outcome.
type runResult struct {
	round int
	load  string
	t     tput
	l     lat
	err   error
}

func run(ctx context.Context, o options) (err error) {
	root, err := os.MkdirTemp("", "easel-replication-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Printf("\nbroker logs and data kept in %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(root, "easel")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/easel-io/easel/cmd/easel")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	memory := holdPages(o)
	defer memory.release()
	began := time.Now()
	fmt.Printf("machine: %d CPUs, %s %s/%s; load average %s; easel %s\n", numCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, loadavg(), bin)
	fmt.Printf("memory: %s\n", memory)
	fmt.Printf("settings: %d B records, %d producer clients (linger %v, acks=1 and acks=all both without idempotence, %d requests in flight per broker, no compression), "+
		"ramp %v + window %v per run, %d rounds, latency %d records/s from 1 client with linger 0, warm-up %d MiB before each run\n\n",
		recordSize, o.producers, throughputLinger, inflight, o.ramp, o.dur, o.repeat, o.latRate, o.warmBytes>>20)

	var works []workload
	if !o.noTput {
		for _, p := range []int{1, 16} {
			for _, c := range []config{single1, cluster1, rf3acks1, rf3acksAll} {
				works = append(works, workload{c, p})
			}
		}
	}
	if !o.noLat {
		for _, c := range []config{single1, rf3acks1, rf3acksAll} {
			works = append(works, workload{c, 0})
		}
	}
	if o.only != "" {
		works = slices.DeleteFunc(works, func(w workload) bool { return !strings.Contains(w.String(), o.only) })
	}
	results := map[workload][]runResult{}
	for r := range o.repeat {
		for i, w := range works {
			res := runOne(ctx, o, root, bin, w, fmt.Sprintf("w%d-r%d", i, r))
			res.round = r
			if ctx.Err() != nil {
				return ctx.Err()
			}
			results[w] = append(results[w], res)
			fmt.Printf("round %d %-55s %s\n", r+1, w, res.brief(w))
		}
	}

	var kills []killSample
	var foLoad string
	if o.kills > 0 {
		fast, err := newBrokers("fast", bin, root, 3, "fast", nil)
		if err != nil {
			return err
		}
		defer fast.Stop()
		if err := fast.StartAll(ctx); err != nil {
			return err
		}
		foLoad = waitForQuiet(ctx, o)
		n := 0
		kills, err = failovers(ctx, fast, "failover", o.failoverParts, o.kills, func(s killSample) {
			n++
			fmt.Printf("kill %2d: broker %d (partition %d%s): first ack %v, new leader in Metadata %v, restart to full ISR %v, errors %d %s\n",
				n, s.victim, s.part, map[bool]string{true: ", controller", false: ""}[s.controller],
				s.firstAck.Round(time.Millisecond), s.newLeader.Round(time.Millisecond), s.isrBack.Round(time.Millisecond), s.errs, s.failed)
		})
		fast.Stop()
		if err != nil {
			return err
		}
	}

	fmt.Printf("\nfinished in %v; load average at the end %s\n", time.Since(began).Round(time.Second), loadavg())
	report(o, works, results, kills, foLoad)
	return nil
}

// runOne waits for a quiet machine, starts w's brokers afresh, warms the
// page cache, creates a topic, runs w, and SIGKILLs the brokers and
// deletes their data (a deleted file's dirty pages are dropped, not
// written back; Easel's topic deletion would fsync them first).
func runOne(ctx context.Context, o options, root, bin string, w workload, name string) (res runResult) {
	res.load = waitForQuiet(ctx, o)
	n := 1
	if w.cfg.cluster {
		n = 3
	}
	bs, err := newBrokers(name, bin, root, n, "default", nil)
	if err != nil {
		res.err = err
		return res
	}
	if o.pprofDir != "" {
		if res.err = bs.enablePprof(filepath.Join(o.pprofDir, name)); res.err != nil {
			return res
		}
	}
	defer func() {
		bs.Stop()
		for _, b := range bs.List {
			os.RemoveAll(b.Dir)
			if res.err == nil && !o.keep {
				os.Remove(b.Log)
			}
		}
	}()
	if res.err = bs.StartAll(ctx); res.err != nil {
		return res
	}
	parts := max(w.parts, 1)
	if res.err = bs.CreateTopic(ctx, "bench", parts, w.cfg.rf, nil); res.err != nil {
		return res
	}
	if _, res.err = pagecache.Warm(filepath.Join(root, "warm"), o.warmBytes); res.err != nil {
		return res
	}
	if w.latency() {
		res.l, res.err = latency(ctx, bs, "bench", w.cfg.acks, o.latRate, o.ramp, o.dur)
	} else {
		res.t, res.err = throughput(ctx, bs, "bench", parts, o.producers, w.cfg.acks, o.ramp, o.dur)
	}
	return res
}

func (r runResult) brief(w workload) string {
	if r.err != nil {
		return "FAILED: " + r.err.Error()
	}
	if w.latency() {
		return fmt.Sprintf("p50 %v p99 %v p99.9 %v max %v (n %d, errors %d, brokers %.2f cores) [%s]",
			ms(r.l.P50), ms(r.l.P99), ms(r.l.P999), ms(r.l.Max), r.l.N, r.l.Errors, r.l.BrokerCores, r.load)
	}
	e := ""
	if r.t.Errors > 0 {
		e = fmt.Sprintf(" errors %d (%s)", r.t.Errors, r.t.FirstErr)
	}
	return fmt.Sprintf("%6.1f MB/s %7.0f rec/s, brokers %.2f cores, bench %.2f cores%s [%s]",
		r.t.MBps, r.t.RecPerSec, r.t.BrokerCores, r.t.BenchCores, e, r.load)
}

// waitForQuiet waits, up to o.loadWait, while the 1-minute load average is
// above o.maxLoad and the machine is busy now (more than half a core over
// one second, with this bench idle): a high load average alone may be this
// bench's own last run decaying. It returns what it saw.
func waitForQuiet(ctx context.Context, o options) string {
	start := time.Now()
	for {
		l, busy := loadavg(), machineBusy(time.Second)
		l1, _ := strconv.ParseFloat(strings.Fields(l + " 0")[0], 64)
		waited := time.Since(start).Round(time.Second)
		quiet := l1 <= o.maxLoad || busy < 0.5
		if quiet || waited >= o.loadWait || ctx.Err() != nil {
			s := fmt.Sprintf("load %s, busy %.2f", l, busy)
			if waited > 2*time.Second {
				s += fmt.Sprintf(", waited %v", waited)
			}
			if !quiet {
				s += ", NOT QUIET"
			}
			return s
		}
		sleepCtx(ctx, 4*time.Second)
	}
}

// heldPages is what holdPages did: the free page reporting it found, and
// whether it held it off and primed memory.
type heldPages struct {
	was     pagecache.Reporting
	held    bool
	restore func() error
	primed  int64
	took    time.Duration
	err     error
}

// holdPages holds free page reporting off and primes memory (see
// pagecache), leaving 4 GiB for the brokers and the bench, if -hold-page-reporting
// asks for it and the machine reports freed pages.
func holdPages(o options) *heldPages {
	h := &heldPages{was: pagecache.ReadReporting(), restore: func() error { return nil }}
	if !o.holdReporting || !h.was.Active || h.was.Off {
		return h
	}
	if h.was, h.restore, h.err = pagecache.HoldReporting(); h.err != nil {
		return h
	}
	h.held = true
	h.primed, h.took, h.err = pagecache.Prime(4 << 30)
	return h
}

func (h *heldPages) release() {
	if err := h.restore(); err != nil {
		fmt.Fprintf(os.Stderr, "replication: free page reporting stays held off: %v\n", err)
	}
}

func (h *heldPages) String() string {
	switch {
	case h.held && h.err == nil:
		return fmt.Sprintf("free page reporting held off for the run (page_reporting_order %d raised, put back at the end); %d MiB touched and freed in %v first, so that writes recycle pages",
			h.was.Order, h.primed>>20, h.took.Round(100*time.Millisecond))
	case h.held:
		return fmt.Sprintf("free page reporting held off for the run (page_reporting_order %d raised, put back at the end); priming failed: %v", h.was.Order, h.err)
	case h.err != nil:
		return fmt.Sprintf("free page reporting on: %v", h.err)
	case h.was.Active && !h.was.Off:
		return "free page reporting on: pages freed more than about 2 s before a write are fresh again (slow to write)"
	}
	return "no free page reporting"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func numCPU() int { return runtime.NumCPU() }

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms"
}
