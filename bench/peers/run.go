package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/bench/internal/easelproc"
	"github.com/easel-io/easel/bench/internal/pagecache"
)

// report is everything one run produced; results.json holds it.
type report struct {
	Meta     meta       `json:"meta"`
	Results  []result   `json:"results"`
	Warmups  []pageWarm `json:"page_cache_warmups,omitempty"`
	Notes    []string   `json:"notes,omitempty"`
	Profiles []profile  `json:"profiles,omitempty"`
	Steps    []step     `json:"steps"`
}

// step is how long one progress step took, for keeping the modes within
// their time budgets.
type step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// profile is a CPU profile of the Easel broker during one phase.
type profile struct {
	Label string `json:"label"`
	Path  string `json:"path"`
	Top   string `json:"top"` // go tool pprof -top, first lines
}

// runner holds the state of one run.
type runner struct {
	cfg  config
	tmp  string
	bin  string
	bar  *progressbar.ProgressBar
	rep  *report
	lim  phaseLimits
	base workload // the workload profiled with -pprof
	// cur is the running step and when it started.
	cur      string
	curStart time.Time
	// round is the running round (0-based; see schedule).
	round int
}

func run(ctx context.Context, cfg config) (*report, error) {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "easel-bench-")
	if err != nil {
		return nil, err
	}
	if !cfg.Keep {
		defer os.RemoveAll(tmp)
	}
	r := &runner{cfg: cfg, tmp: tmp, bin: filepath.Join(tmp, "bin"), rep: &report{Meta: machineMeta(cfg)},
		lim:  phaseLimits{Duration: cfg.Duration, MaxBytes: cfg.MaxBytes},
		base: workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}}
	r.bar = progressbar.NewOptions(r.steps(),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetVisibility(!cfg.Quiet),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionThrottle(100*time.Millisecond))
	start := time.Now()
	if err := os.MkdirAll(r.bin, 0o755); err != nil {
		return nil, err
	}
	r.prebuild(ctx)
	if slices.Contains(cfg.Targets, "machine") {
		// Before anything has written: the cost of pages not used before.
		r.add(firstTouchLimit(tmp, cfg.Duration, cfg.MaxBytes))
	}
	if cfg.ReportingHeld {
		r.prime()
	}
	runStart, haveCPU := readCPUTimes()
	roundStart := runStart
	endRound := func() { // and, at the end, of the whole run
		if now, ok := readCPUTimes(); ok && haveCPU {
			if sh := shareSince(roundStart, now); sh != nil {
				sh.Round = r.round + 1
				r.rep.Meta.RoundCPU = append(r.rep.Meta.RoundCPU, *sh)
			}
			roundStart = now
			r.rep.Meta.CPU = shareSince(runStart, now)
		}
	}
	for _, sl := range schedule(cfg.Targets, cfg.Repeat) {
		if ctx.Err() != nil {
			break
		}
		if sl.Round != r.round {
			endRound()
		}
		r.round = sl.Round
		r.runSlot(ctx, sl.Target)
	}
	endRound()
	r.rep.Meta.LoadEnd = readTrim("/proc/loadavg")
	r.endStep()
	_ = r.bar.Finish()
	r.rep.Meta.Seconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		r.note("interrupted: the results are incomplete")
	}
	if err := writeOutputs(r.rep, cfg); err != nil {
		return r.rep, err
	}
	return r.rep, nil
}

// runSlot runs one target once: it warms the page cache, runs the target
// on a fresh data directory, and deletes the directory when it is done, so
// that every target starts from the same memory state.
func (r *runner) runSlot(ctx context.Context, t string) {
	dir := filepath.Join(r.tmp, fmt.Sprintf("%s-%d", t, r.round+1))
	if !r.cfg.Keep { // -keep: for looking at the files afterwards
		defer os.RemoveAll(dir)
	}
	r.warmPages(t, r.cfg.WarmBytes)
	switch t {
	case "machine":
		r.step("machine limits")
		r.add(measureLimits(ctx, r.tmp, r.cfg.Duration, r.cfg.MaxBytes)...)
	case "easel-embedded", "easel-embedded-prealloc":
		prealloc := t == "easel-embedded-prealloc"
		e, err := newEaselEmbedded(dir, prealloc)
		if err != nil {
			r.fail(t, err)
			r.skipSteps(t)
			return
		}
		ws := r.cfg.Workloads
		if prealloc {
			ws = r.cfg.Prealloc
		}
		r.warmUp(ctx, e)
		r.runList(ctx, e, ws)
		if err := e.close(); err != nil {
			r.note("%s: close: %v", t, err)
		}
	case "wal":
		r.runWorkloads(ctx, &walTarget{dir: dir})
	case "easel-broker":
		r.runEaselBroker(ctx, dir)
	case "easel-cluster":
		r.runEaselCluster(ctx, dir)
	case "kfake":
		r.runKfake(ctx, dir)
	case "nats":
		r.runNATS(ctx, dir)
	case "redis":
		r.runRedis(ctx, dir)
	}
}

// warmPages writes and deletes a file of n bytes, capped at half the
// available memory, before the step next: at least as much as next holds
// in the page cache at once.
func (r *runner) warmPages(next string, n int64) {
	if r.cfg.WarmBytes <= 0 {
		return // -warm-bytes 0: no warm-up at all
	}
	if avail := pagecache.MemAvailable(); avail > 0 {
		n = min(n, avail/2)
	}
	if n <= 0 {
		return
	}
	w := pageWarm{Round: r.round, Before: next, Bytes: n}
	var err error
	if w.Seconds, w.MBps, err = warmPageCache(r.tmp, n); err != nil {
		w.Err = err.Error()
		r.note("page-cache warm-up before %s: %v", next, err)
	}
	r.rep.Warmups = append(r.rep.Warmups, w)
}

// primeReserve is the memory prime leaves untouched: room for the harness,
// the targets' processes and what the page cache already holds.
const primeReserve = 4 << 30

// prime touches and frees all available memory but primeReserve once,
// before the first target, while free page reporting is held off: from
// then on the page cache recycles pages the guest has touched, and the
// warm-ups keep what they warm (see pagecache).
func (r *runner) prime() {
	n, el, err := pagecache.Prime(primeReserve)
	if err != nil {
		r.note("%v", err)
		return
	}
	r.rep.Meta.PrimeBytes, r.rep.Meta.PrimeSeconds = n, el.Seconds()
}

// steps counts the progress bar's steps.
func (r *runner) steps() int {
	n := 0
	for _, sl := range schedule(r.cfg.Targets, r.cfg.Repeat) {
		n += r.targetSteps(sl.Target, sl.Round)
	}
	return n
}

// targetSteps counts one target's steps in round: scaling and start-up run
// in the first round only.
func (r *runner) targetSteps(t string, round int) int {
	n := 0
	switch t {
	case "machine":
		n++
	case "easel-embedded", "wal", "nats", "redis":
		n += len(r.cfg.Workloads)
	case "easel-embedded-prealloc":
		n += len(r.cfg.Prealloc)
	case "easel-broker", "kfake", "easel-cluster":
		for _, g := range r.cfg.Gens {
			n += len(r.cfg.workloadsFor(t, g))
		}
		if round == 0 && t != "easel-cluster" {
			n += len(r.cfg.Scale)
			if t == "easel-broker" && r.cfg.StartupBytes > 0 {
				n++
			}
		}
	}
	return n
}

func (r *runner) step(desc string) {
	r.endStep()
	r.cur, r.curStart = desc, time.Now()
	r.bar.Describe(desc)
	_ = r.bar.Add(1)
}

// endStep records the running step's time.
func (r *runner) endStep() {
	if r.cur != "" {
		r.rep.Steps = append(r.rep.Steps, step{Name: r.cur, Seconds: time.Since(r.curStart).Seconds()})
		r.cur = ""
	}
}

// add records results of the running round.
func (r *runner) add(rs ...result) {
	for i := range rs {
		rs[i].Round = r.round
	}
	r.rep.Results = append(r.rep.Results, rs...)
}

func (r *runner) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if r.cfg.Repeat > 1 {
		n = fmt.Sprintf("round %d: %s", r.round+1, n)
	}
	r.rep.Notes = append(r.rep.Notes, n)
}

// fail records that a target could not run at all.
func (r *runner) fail(target string, err error) {
	r.note("%s: not measured: %v", target, err)
	r.add(result{Target: target, Phase: "setup", Err: err.Error()})
}

// runWorkloads warms t up, then measures every workload on it (those it
// does not skip).
func (r *runner) runWorkloads(ctx context.Context, t target) {
	r.warmUp(ctx, t)
	r.runList(ctx, t, r.cfg.Workloads)
}

// warmUp produces (for a third of a phase) and consumes the baseline
// workload, unmeasured, so that the first measurement of a freshly started
// process does not pay for its heap growing, its first page faults and lazy
// initialisation (kfake ran its first workload several times slower without
// this).
func (r *runner) warmUp(ctx context.Context, t target) {
	lim := phaseLimits{Duration: r.lim.Duration / 3, MaxBytes: r.lim.MaxBytes / 4}
	s, err := t.open(ctx, r.base)
	if err != nil {
		r.note("%s/%s: warm-up: %v", t.name(), t.gen(), err)
		return
	}
	defer func() { _ = s.close(context.Background()) }()
	a := newAcker(r.base.Partitions)
	p, err := s.producer(a, nil)
	if err != nil {
		r.note("%s/%s: warm-up: %v", t.name(), t.gen(), err)
		return
	}
	ps, err := runProduce(ctx, p, a, nil, r.base, lim)
	_ = p.close()
	if err != nil {
		r.note("%s/%s: warm-up: %v", t.name(), t.gen(), err)
		return
	}
	c, err := s.consumer()
	if err != nil {
		return
	}
	_, _ = runConsume(ctx, c, r.base.Partitions, func() []int64 { return ps.perPart }, nil, 30*time.Second)
	_ = c.close()
}

func (r *runner) runList(ctx context.Context, t target, ws []workload) {
	for _, w := range ws {
		if ctx.Err() != nil {
			return
		}
		r.step(fmt.Sprintf("%s/%s %s", t.name(), t.gen(), w.key()))
		if why := t.skip(w); why != "" {
			r.add(result{Target: t.name(), Gen: t.gen(), Phase: "skipped", Workload: w.key(), Note: why})
			continue
		}
		rs := measureWorkload(ctx, t, w, r.lim, r.hook(t, w))
		if pid := t.pid(); pid > 0 && len(rs) > 0 {
			rs[0].RSSBytes = rssBytes(pid, false)
		}
		r.add(rs...)
	}
}

// hook returns the per-phase callback of measureWorkload: with -pprof, it
// profiles the Easel broker during the produce and consume phases of the
// baseline workload.
func (r *runner) hook(t target, w workload) func(string, time.Duration) func() {
	none := func(string, time.Duration) func() { return func() {} }
	kt, ok := t.(*kafkaTarget)
	if !r.cfg.Pprof || !ok || kt.srv.pprofAddr == "" || w != r.base || kt.generator == "kgo-if5" ||
		kt.generator == "kgo-linger0" || r.round > 0 {
		return none
	}
	return func(phase string, d time.Duration) func() {
		if phase != phaseProduce && phase != phaseConsume {
			return func() {}
		}
		label := fmt.Sprintf("%s-%s-%s-%s", kt.srv.sys, kt.generator, phase, strings.ReplaceAll(w.key(), "/", "_"))
		return r.profileAsync(kt.srv, label, d)
	}
}

// profileAsync starts a CPU profile of about d and returns a function that
// waits for it to be saved.
func (r *runner) profileAsync(srv *kafkaServer, label string, d time.Duration) func() {
	done := make(chan struct{})
	secs := max(1, int(d.Seconds()+0.5))
	var p profile
	var err error
	go func() {
		defer close(done)
		p, err = r.captureProfile(srv, label, secs)
	}()
	return func() {
		<-done
		if err != nil {
			r.note("pprof %s: %v", label, err)
		} else {
			r.rep.Profiles = append(r.rep.Profiles, p)
		}
	}
}

// captureProfile fetches a CPU profile of secs seconds from the broker's
// pprof endpoint and summarises it with go tool pprof -top.
func (r *runner) captureProfile(srv *kafkaServer, label string, secs int) (profile, error) {
	dir := filepath.Join(r.cfg.Out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return profile{}, err
	}
	resp, err := http.Get("http://" + srv.pprofAddr + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
	if err != nil {
		return profile{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return profile{}, fmt.Errorf("pprof: %s", resp.Status)
	}
	path := filepath.Join(dir, label+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return profile{}, err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return profile{}, err
	}
	if err := f.Close(); err != nil {
		return profile{}, err
	}
	p := profile{Label: label, Path: path}
	p.Top, err = pprofTop(path)
	return p, err
}

// pprofTop summarises a CPU profile with go tool pprof -top -cum (Go
// profiles carry their symbols, so the binary is not needed) and saves the
// summary beside it as .top.txt.
func pprofTop(path string) (string, error) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %v: %s", err, out)
	}
	_ = os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", out, 0o644)
	return string(out), nil
}

// prebuild builds the binaries the targets need before anything is
// measured, so that no build runs between a page-cache warm-up and the
// target it prepares for. A failure shows again when the target runs.
func (r *runner) prebuild(ctx context.Context) {
	peers := filepath.Join(r.cfg.Root, "bench", "peers")
	for _, t := range r.cfg.Targets {
		switch t {
		case "easel-broker", "easel-cluster":
			_, _ = r.build(ctx, r.cfg.Root, "./cmd/easel", "easel")
		case "kfake":
			_, _ = r.build(ctx, peers, "./cmd/kfake", "kfake")
		case "nats":
			_, _ = r.build(ctx, peers, "./cmd/natsd", "natsd")
		}
	}
}

// build builds a binary once per run.
func (r *runner) build(ctx context.Context, moduleDir, pkg, name string) (string, error) {
	if name == "easel" && r.cfg.EaselBin != "" {
		return r.cfg.EaselBin, nil
	}
	path := filepath.Join(r.bin, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return goBuild(ctx, moduleDir, pkg, r.bin, name)
}

// startEasel starts the cmd/easel binary on a fresh port and data dir.
func (r *runner) startEasel(ctx context.Context, name, dataDir string, extra ...string) (*kafkaServer, error) {
	bin, err := r.build(ctx, r.cfg.Root, "./cmd/easel", "easel")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"--listen", addr, "--data-dir", dataDir, "--log-level", "warn"}, extra...)
	var pprofAddr string
	if r.cfg.Pprof {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(pp)
		args = append(args, "--pprof", pprofAddr)
	}
	proc, err := startChild(name, bin, args, filepath.Join(r.cfg.Out, "logs"))
	if err != nil {
		return nil, err
	}
	srv, err := connectKafka(ctx, "easel-broker", addr, proc, 60*time.Second)
	if err != nil {
		_ = proc.stop(true, time.Second)
		return nil, err
	}
	srv.syncOK, srv.pprofAddr = true, pprofAddr
	return srv, nil
}

func (r *runner) runEaselBroker(ctx context.Context, dir string) {
	srv, err := r.startEasel(ctx, "easel-broker", dir)
	if err != nil {
		r.fail("easel-broker", err)
		r.skipSteps("easel-broker")
		return
	}
	r.runKafkaServer(ctx, srv)
	if err := srv.close(); err != nil {
		r.note("easel-broker: stop: %v", err)
	}
	if r.cfg.StartupBytes > 0 && ctx.Err() == nil && r.round == 0 {
		_ = os.RemoveAll(dir) // the start-up data is written on a clean slate
		r.warmPages("easel-broker start-up", max(r.cfg.WarmBytes, r.cfg.StartupBytes+64<<20))
		r.step("easel-broker start-up")
		r.add(r.measureStartup(ctx)...)
	}
}

// clusterSize and clusterRF are the easel-cluster's brokers and its topics'
// replication factor (with min.insync.replicas 2).
const clusterSize, clusterRF = 3, 3

// runEaselCluster starts clusterSize cmd/easel brokers, all raft voters,
// under dir (deleted by the caller), waits until each lists all of them,
// measures them, and SIGKILLs them.
func (r *runner) runEaselCluster(ctx context.Context, dir string) {
	const t = "easel-cluster"
	srv, err := r.startCluster(ctx, dir)
	if err != nil {
		r.fail(t, err)
		r.skipSteps(t)
		return
	}
	r.runKafkaServer(ctx, srv)
	if err := srv.close(); err != nil {
		r.note("%s: stop: %v", t, err)
	}
}

func (r *runner) startCluster(ctx context.Context, dir string) (*kafkaServer, error) {
	bin, err := r.build(ctx, r.cfg.Root, "./cmd/easel", "easel")
	if err != nil {
		return nil, err
	}
	c, err := easelproc.New(easelproc.Config{Name: fmt.Sprintf("easel-cluster-r%d", r.round+1), Bin: bin, Root: dir,
		LogDir: filepath.Join(r.cfg.Out, "logs"), N: clusterSize, Extra: []string{"--log-level", "warn"}})
	if err != nil {
		return nil, err
	}
	if err := c.StartAll(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	srv, err := connectCluster(ctx, "easel-cluster", c, clusterRF)
	if err != nil {
		c.Stop()
		return nil, err
	}
	return srv, nil
}

func (r *runner) runKfake(ctx context.Context, dir string) {
	bin, err := r.build(ctx, filepath.Join(r.cfg.Root, "bench", "peers"), "./cmd/kfake", "kfake")
	if err != nil {
		r.fail("kfake", err)
		r.skipSteps("kfake")
		return
	}
	port, err := freePort()
	if err != nil {
		r.fail("kfake", err)
		return
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	proc, err := startChild("kfake", bin, []string{"-port", strconv.Itoa(port), "-data-dir", dir},
		filepath.Join(r.cfg.Out, "logs"))
	if err != nil {
		r.fail("kfake", err)
		r.skipSteps("kfake")
		return
	}
	srv, err := connectKafka(ctx, "kfake", addr, proc, 60*time.Second)
	if err != nil {
		_ = proc.stop(true, time.Second)
		r.fail("kfake", err)
		r.skipSteps("kfake")
		return
	}
	r.runKafkaServer(ctx, srv)
	if err := srv.close(); err != nil {
		r.note("kfake: stop: %v", err)
	}
}

// skipSteps advances the progress bar past a target that could not start.
func (r *runner) skipSteps(target string) {
	_ = r.bar.Add(r.targetSteps(target, r.round))
}

// runKafkaServer measures every generator, then (in the first round) the
// partition scaling.
func (r *runner) runKafkaServer(ctx context.Context, srv *kafkaServer) {
	r.warmUp(ctx, &kafkaTarget{srv: srv, generator: "raw"})
	for _, g := range r.cfg.Gens {
		r.runList(ctx, &kafkaTarget{srv: srv, generator: g}, r.cfg.workloadsFor(srv.sys, g))
	}
	if r.round > 0 || srv.cluster != nil {
		return
	}
	for _, parts := range r.cfg.Scale {
		if ctx.Err() != nil {
			return
		}
		r.step(fmt.Sprintf("%s scaling %d partitions", srv.sys, parts))
		r.add(r.scalePoint(ctx, srv, parts))
	}
}

// scalePoint produces 1 KiB records round-robin to a topic of parts
// partitions with the raw generator and reads the broker's RSS.
func (r *runner) scalePoint(ctx context.Context, srv *kafkaServer, parts int) (res result) {
	w := workload{Size: 1024, Partitions: parts, Acks: "1", Codec: "none"}
	t := &kafkaTarget{srv: srv, generator: "raw"}
	res = result{Metric: "produce", Unit: "s to create the topic"}
	res.fill(t, phaseScale, w)
	t0 := time.Now()
	s, err := t.open(ctx, w)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Value = time.Since(t0).Seconds()
	defer func() {
		t0 := time.Now()
		if err := s.close(context.Background()); err != nil {
			res.Note = "delete topic: " + err.Error()
		} else {
			res.Note = fmt.Sprintf("topic deleted in %.2f s", time.Since(t0).Seconds())
		}
	}()
	a := newAcker(parts)
	p, err := s.producer(a, nil)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	stop := func() {}
	if r.cfg.Pprof && srv.pprofAddr != "" && parts >= 100 {
		stop = r.profileAsync(srv, fmt.Sprintf("%s-raw-produce-%d-partitions", srv.sys, parts), r.lim.Duration)
	}
	ps, err := runProduce(ctx, p, a, nil, w, r.lim)
	stop()
	_ = p.close()
	res.RSSBytes = rssBytes(srv.pid(), false)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.rates(ps.records, ps.elapsed, w.Size)
	res.Ack = ps.lat
	return res
}

func (r *runner) runNATS(ctx context.Context, dir string) {
	bin, err := r.build(ctx, filepath.Join(r.cfg.Root, "bench", "peers"), "./cmd/natsd", "natsd")
	if err == nil {
		var port int
		if port, err = freePort(); err == nil {
			var proc *child
			proc, err = startChild("natsd", bin, []string{"-port", strconv.Itoa(port), "-store-dir", dir},
				filepath.Join(r.cfg.Out, "logs"))
			if err == nil {
				var t *natsTarget
				if t, err = connectNATS(ctx, "nats://127.0.0.1:"+strconv.Itoa(port), proc); err == nil {
					r.runWorkloads(ctx, t)
					if err := t.close(); err != nil {
						r.note("nats: stop: %v", err)
					}
					return
				}
				_ = proc.stop(true, time.Second)
			}
		}
	}
	r.fail("nats", err)
	r.skipSteps("nats")
}

func (r *runner) runRedis(ctx context.Context, dir string) {
	bin, err := exec.LookPath(r.cfg.RedisServer)
	if err != nil {
		if r.round == 0 {
			r.note("redis: skipped: %s not found (apt-get install -y redis-server)", r.cfg.RedisServer)
		}
		r.add(result{Target: "redis", Phase: "skipped", Note: "redis-server not installed"})
		r.skipSteps("redis")
		return
	}
	port, err := freePort()
	if err == nil {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			var proc *child
			proc, err = startChild("redis", bin, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--dir", dir, "--appendonly", "yes", "--save", "", "--daemonize", "no", "--logfile", ""},
				filepath.Join(r.cfg.Out, "logs"))
			if err == nil {
				var t *redisTarget
				if t, err = connectRedis(ctx, "127.0.0.1:"+strconv.Itoa(port), proc); err == nil {
					r.runWorkloads(ctx, t)
					if err := t.close(); err != nil {
						r.note("redis: stop: %v", err)
					}
					return
				}
				_ = proc.stop(true, time.Second)
			}
		}
	}
	r.fail("redis", err)
	r.skipSteps("redis")
}

// measureStartup fills a fresh Easel broker with StartupBytes of 1 KiB
// records over 16 partitions (128 MiB segments), then times a restart after
// SIGTERM and after SIGKILL: from exec until it answers Metadata and
// ListOffsets for every partition.
func (r *runner) measureStartup(ctx context.Context) []result {
	dir := filepath.Join(r.tmp, "easel-startup")
	if !r.cfg.Keep {
		defer os.RemoveAll(dir)
	}
	segArgs := []string{"--segment-bytes", strconv.Itoa(128 << 20)}
	w := workload{Size: 1024, Partitions: 16, Acks: "1", Codec: "none"}
	mk := func(phase string) result {
		res := result{Target: "easel-broker", Gen: "raw", Phase: phase, Unit: "s to serve"}
		res.Workload, res.Size, res.Partitions, res.Acks, res.Codec = w.key(), w.Size, w.Partitions, w.Acks, w.Codec
		return res
	}
	clean, killed := mk(phaseStartClean), mk(phaseStartKilled)
	failAll := func(err error) []result {
		clean.Err, killed.Err = err.Error(), err.Error()
		return []result{clean, killed}
	}
	srv, err := r.startEasel(ctx, "easel-startup", dir, segArgs...)
	if err != nil {
		return failAll(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.close()
		}
	}()
	t := &kafkaTarget{srv: srv, generator: "raw"}
	s, err := t.open(ctx, w)
	if err != nil {
		return failAll(err)
	}
	topic := s.(*kafkaStream).topic
	fill := func(bytes int64) (produceStats, error) {
		a := newAcker(w.Partitions)
		p, err := s.producer(a, nil)
		if err != nil {
			return produceStats{}, err
		}
		defer p.close()
		return runProduce(ctx, p, a, nil, w, phaseLimits{Duration: 15 * time.Minute, MaxBytes: bytes})
	}
	ps, err := fill(r.cfg.StartupBytes)
	if err != nil {
		return failAll(err)
	}
	written := ps.records
	clean.Note = fmt.Sprintf("filled at %.0f MB/s", float64(ps.records)*float64(w.Size)/ps.elapsed.Seconds()/1e6)

	t0 := time.Now()
	if err := srv.close(); err != nil {
		r.note("easel-startup: clean stop: %v", err)
	}
	stopped = true
	clean.Note += fmt.Sprintf("; clean shutdown took %.2fs", time.Since(t0).Seconds())
	clean.DataBytes = dirSize(dir)
	clean.Note += fmt.Sprintf("; %s of disk (du)", fmtBytes(diskUsage(dir)))

	restart := func(res *result) (*kafkaServer, int64) {
		t0 := time.Now()
		srv2, err := r.startEasel(ctx, "easel-startup", dir, segArgs...)
		if err != nil {
			res.Err = err.Error()
			return nil, 0
		}
		end, err := waitTopicServed(ctx, srv2.addr, topic, w.Partitions)
		res.Value = time.Since(t0).Seconds()
		res.Seconds = res.Value
		res.RSSBytes = rssBytes(srv2.proc.pid(), false)
		if err != nil {
			res.Err = err.Error()
		}
		return srv2, end
	}
	srv2, end := restart(&clean)
	if srv2 == nil {
		killed.Err = "not measured: the clean restart failed"
		return []result{clean, killed}
	}
	if end != written {
		clean.Note += fmt.Sprintf("; %d records after restart, %d written", end, written)
	}
	// Append a little more so that the active segments have an unflushed
	// tail, then kill the broker.
	t2 := &kafkaTarget{srv: srv2, generator: "raw"}
	leaders, err := srv2.leaders(ctx, topic, w.Partitions)
	if err != nil {
		killed.Err = err.Error()
		_ = srv2.close()
		return []result{clean, killed}
	}
	s = &kafkaStream{t: t2, topic: topic, w: w, leaders: leaders}
	ps, err = fill(64 << 20)
	if err != nil {
		killed.Err = err.Error()
		_ = srv2.close()
		return []result{clean, killed}
	}
	written = end + ps.records
	_ = srv2.proc.stop(true, 10*time.Second)
	srv2.cl.Close()
	killed.DataBytes = dirSize(dir)
	killedDU := diskUsage(dir)
	srv3, end := restart(&killed)
	if srv3 != nil {
		killed.Note = fmt.Sprintf("%d of %d acknowledged records present after SIGKILL; %s of disk (du) after the kill, %s after the restart",
			end, written, fmtBytes(killedDU), fmtBytes(diskUsage(dir)))
		_ = srv3.close()
	}
	return []result{clean, killed}
}

// waitTopicServed polls until the broker at addr lists topic with leaders for
// all partitions and answers ListOffsets for them; it returns the summed end
// offsets.
func waitTopicServed(ctx context.Context, addr, topic string, partitions int) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(5 * time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		offs, err := adm.ListEndOffsets(rctx, topic)
		cancel()
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			var sum int64
			n := 0
			offs.Each(func(o kadm.ListedOffset) { sum += o.Offset; n++ })
			if n == partitions {
				return sum, nil
			}
			err = fmt.Errorf("%d of %d partitions listed", n, partitions)
		}
		last = err
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("topic not served: %v", last)
}

// machineMeta describes the machine and the run.
func machineMeta(cfg config) meta {
	m := meta{
		Date:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Mode:    cfg.Mode,
		Command: cfg.Command,
		CPUs:    nproc(),
		Kernel:  readTrim("/proc/sys/kernel/osrelease"),
		Go:      goVersion(),
		E2ERate: e2eRate,
		Repeat:  max(1, cfg.Repeat),
		Warm:    cfg.WarmBytes,
		Load:    readTrim("/proc/loadavg"),
	}
	m.PageReporting = cfg.Reporting.Active && !cfg.Reporting.Off
	if cfg.ReportingHeld {
		m.PageReportingHeld, m.PageReportingOrder = true, cfg.Reporting.Order
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemoryGiB = float64(kb) / (1 << 20)
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	m.Duration, m.MaxBytes = cfg.Duration.String(), cfg.MaxBytes
	m.Targets = slices.Clone(cfg.Targets)
	return m
}

// meta describes a run.
type meta struct {
	Date      string   `json:"date"`
	Mode      string   `json:"mode"`
	Command   string   `json:"command"`
	CPUs      int      `json:"cpus"`
	CPUModel  string   `json:"cpu_model,omitempty"`
	MemoryGiB float64  `json:"memory_gib"`
	Kernel    string   `json:"kernel"`
	Go        string   `json:"go"`
	Duration  string   `json:"phase_duration"`
	MaxBytes  int64    `json:"phase_max_bytes"`
	E2ERate   float64  `json:"e2e_rate,omitempty"` // fixed e2e offered rate (records/s); 0: half each target's peak
	Targets   []string `json:"targets"`
	Seconds   float64  `json:"seconds"`
	Repeat    int      `json:"repeat"`        // rounds (see schedule)
	Warm      int64    `json:"warm_bytes"`    // page-cache warm-up before each target
	Load      string   `json:"loadavg_start"` // /proc/loadavg when the run started
	LoadEnd   string   `json:"loadavg_end"`   // and when it ended
	// CPU is how the machine's CPU time went over the run (steal, iowait,
	// idle), RoundCPU over each round; empty without /proc/stat.
	CPU      *cpuShare  `json:"cpu,omitempty"`
	RoundCPU []cpuShare `json:"round_cpu,omitempty"`
	// PageReporting: the kernel hands freed pages back to a hypervisor
	// (virtio-balloon free page reporting), so they are fresh again soon.
	PageReporting bool `json:"page_reporting,omitempty"`
	// PageReportingHeld: the harness held the reporting off for the run,
	// raising page_reporting_order from PageReportingOrder and putting it
	// back at the end, and touched PrimeBytes of memory (in PrimeSeconds)
	// before the first target.
	PageReportingHeld  bool    `json:"page_reporting_held,omitempty"`
	PageReportingOrder int     `json:"page_reporting_order,omitempty"`
	PrimeBytes         int64   `json:"prime_bytes,omitempty"`
	PrimeSeconds       float64 `json:"prime_seconds,omitempty"`
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func nproc() int {
	out, err := exec.Command("nproc").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			return n
		}
	}
	return 0
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
