// Command failover measures Easel's cluster control-plane failover: it
// starts three easel brokers as child processes on 127.0.0.1 (all three raft
// voters), creates a topic with replication factor 3, and repeatedly
// SIGKILLs a broker, alternating a partition leader that is not the
// controller and the controller itself. For every kill it polls Metadata
// every 10 ms against each surviving broker and times, from the SIGKILL,
// when the dead broker's partitions show a live leader with a bumped leader
// epoch, when a new controller id shows and when CreateTopics succeeds
// again; then it restarts the killed broker with the same flags and data
// directory and times its rejoin. It prints p50, p90, p99 and max per
// metric, the timings in force and the machine.
//
// Partition data is not replicated yet, so this measures metadata failover
// (leadership), not data availability.
//
//	go run ./bench/failover -kills 20 -timing fast
//	go run ./bench/failover -kills 20 -timing default
//	go run ./bench/failover -kills 0 -metadata-partitions 10000
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
	"strings"
	"syscall"
	"time"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/gossip"
)

func main() {
	var (
		kills    = flag.Int("kills", 20, "SIGKILLs to measure (half of a non-controller partition leader, half of the controller)")
		timing   = flag.String("timing", "fast", "--cluster-timing of the brokers: fast or default")
		parts    = flag.Int("partitions", 6, "partitions of the measured topic (replication factor 3)")
		bin      = flag.String("bin", "", "easel binary to run (default: go build ./cmd/easel into a temporary directory)")
		mdParts  = flag.Int("metadata-partitions", 0, "after the kills, create topics of 1000 partitions (RF 3) up to this many partitions and time Metadata, a leader and a controller kill and the restarts with them (0: skip)")
		keep     = flag.Bool("keep", false, "keep the temporary directory (data dirs and broker logs)")
		logLevel = flag.String("log-level", "info", "--log-level of the brokers")
	)
	flag.Parse()
	if *timing != "fast" && *timing != "default" {
		fmt.Fprintln(os.Stderr, "failover: -timing must be fast or default")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	if err := run(ctx, options{kills: *kills, timing: *timing, parts: *parts, bin: *bin, mdParts: *mdParts,
		keep: *keep, logLevel: *logLevel}); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		code = 1
	}
	stop()
	os.Exit(code)
}

type options struct {
	kills, parts, mdParts int
	timing, bin, logLevel string
	keep                  bool
}

func run(ctx context.Context, o options) (err error) {
	root, err := os.MkdirTemp("", "easel-failover-")
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
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/easel-io/easel/cmd/easel")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
		fmt.Printf("built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	}
	load0 := loadavg()
	began := time.Now()

	c, err := newCluster(bin, o.timing, root, []string{"--log-level", o.logLevel}, 1, 2, 3)
	if err != nil {
		return err
	}
	defer c.stop()
	for _, id := range c.ids {
		if err := c.start(ctx, id); err != nil {
			return err
		}
	}
	if _, err := c.waitStable(ctx, nil, 0, false, 60*time.Second); err != nil {
		return fmt.Errorf("forming the cluster: %w", err)
	}
	fmt.Printf("cluster up in %v\n", time.Since(began).Round(time.Millisecond))

	// Without replication a dead broker leaves every ISR for good, so each
	// kill gets a fresh topic with a full ISR and balanced leaders; the
	// first one is kept to show how ISRs shrink over the kills.
	first := "failover-0"
	var samples []*sample
	for k := 0; k < o.kills; k++ {
		topic := fmt.Sprintf("failover-%d", k)
		topics := []string{topic}
		if err := c.createTopic(ctx, topic, o.parts, 3); err != nil {
			return err
		}
		before, err := c.waitStable(ctx, topics, o.parts, true, 60*time.Second)
		if err != nil {
			return fmt.Errorf("kill %d: %w", k+1, err)
		}
		s := &sample{vals: map[string]time.Duration{}}
		if k%2 == 1 {
			s.kind, s.victim = "controller", before.controller
		} else {
			s.kind, s.victim = "leader", pickLeader(before, topic, o.parts, k/2)
			if s.victim < 0 {
				return fmt.Errorf("kill %d: no partition led by a broker other than the controller %d", k+1, before.controller)
			}
		}
		if err := c.measureKill(ctx, s, before, topics, o.parts, fmt.Sprintf("probe-%s-%d", o.timing, k)); err != nil {
			return fmt.Errorf("kill %d: %w", k+1, err)
		}
		if err := c.measureRestart(ctx, s, topics, o.parts); err != nil {
			return fmt.Errorf("kill %d: restart: %w", k+1, err)
		}
		samples = append(samples, s)
		fmt.Printf("kill %2d/%d %-10s broker %d (led %d of %d; controller %d):%s\n", k+1, o.kills, s.kind, s.victim, s.led, o.parts, before.controller, s.brief())
		if k > 0 {
			if err := c.deleteTopic(ctx, topic); err != nil {
				fmt.Printf("  deleting %s: %v\n", topic, err)
			}
		}
	}
	if len(samples) > 1 {
		if v, err := c.waitStable(ctx, []string{first}, o.parts, false, 10*time.Second); err == nil {
			fmt.Printf("%s after %d kills and restarts:", first, len(samples))
			for p := range o.parts {
				k := tp{first, int32(p)}
				fmt.Printf(" p%d leader %d isr %v;", p, v.leader[k], v.isr[k])
			}
			fmt.Println()
		} else {
			fmt.Printf("%s after %d kills and restarts: %v\n", first, len(samples), err)
		}
	}
	load1 := loadavg()
	if len(samples) > 0 {
		report(o, samples, load0, load1, time.Since(began))
	}
	if o.mdParts > 0 {
		if err := bigMetadata(ctx, c, o); err != nil {
			return err
		}
	}
	if w := c.warnings(); len(w) > 0 {
		fmt.Printf("\nWARN and ERROR lines in the broker logs (count, level, msg):\n")
		for _, l := range w {
			fmt.Println("  " + l)
		}
	}
	return ctx.Err()
}

// pickLeader returns a broker other than the controller that leads a
// partition, starting the search at partition i.
func pickLeader(v view, topic string, parts, i int) int32 {
	for j := range parts {
		l := v.leader[tp{topic, int32((i + j) % parts)}]
		if l >= 0 && l != v.controller {
			return l
		}
	}
	return -1
}

func (s *sample) brief() string {
	var b strings.Builder
	for _, m := range metrics {
		if d, ok := s.vals[m.name]; ok {
			fmt.Fprintf(&b, " %s %v", m.short, d.Round(time.Millisecond))
		}
	}
	for _, f := range s.fails {
		fmt.Fprintf(&b, "\n  FAILED: %s", f)
	}
	return b.String()
}

var metrics = []struct{ name, short string }{
	{mSuspect, "suspect"}, {mDetect, "failed"}, {mElect, "won"}, {mNewCtrl, "ctrl"}, {mUsable, "usable"},
	{mFenced, "unlisted"}, {mMoved, "moved"}, {mMovedAll, "moved-all"},
	{mStarted, "start"}, {mRejoined, "listed"},
}

func report(o options, samples []*sample, load0, load1 string, took time.Duration) {
	fmt.Printf("\n### -timing %s: %d kills, %d partitions (RF 3), 3 brokers, all voters\n\n", o.timing, len(samples), o.parts)
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s %s/%s; load average %s at the start, %s at the end; %v in all\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, load0, load1, took.Round(time.Second))
	g, r := gossip.DefaultConfig(), controller.DefaultRaftTiming()
	if o.timing == "fast" {
		g, r = gossip.FastConfig(), controller.FastRaftTiming()
	}
	fmt.Printf("gossip: probe interval %v, probe timeout %v, suspicion mult %d, gossip interval %v, push-pull %v; "+
		"raft: heartbeat timeout %v, election timeout %v, leader lease %v, commit timeout %v\n\n",
		g.ProbeInterval, g.ProbeTimeout, g.SuspicionMult, g.GossipInterval, g.PushPullInterval,
		r.HeartbeatTimeout, r.ElectionTimeout, r.LeaderLeaseTimeout, r.CommitTimeout)
	fmt.Println("| kill | metric (from the SIGKILL; restart rows from the exec) | n | p50 | p90 | p99 | max | failed |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, kind := range []string{"leader", "controller"} {
		for _, m := range metrics {
			var ds []time.Duration
			failed := 0
			for _, s := range samples {
				if s.kind != kind {
					continue
				}
				if d, ok := s.vals[m.name]; ok {
					ds = append(ds, d)
				}
				for _, f := range s.fails {
					if strings.HasPrefix(f, m.name+":") {
						failed++
					}
				}
			}
			if len(ds) == 0 && failed == 0 {
				continue
			}
			q := quantiles(ds)
			fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %d |\n", kind, m.name, len(ds), q[0], q[1], q[2], q[3], failed)
		}
	}
}

// quantiles returns p50, p90, p99 and max of ds (nearest rank), formatted.
func quantiles(ds []time.Duration) [4]string {
	var out [4]string
	if len(ds) == 0 {
		return [4]string{"–", "–", "–", "–"}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for i, q := range []float64{0.50, 0.90, 0.99, 1} {
		rank := int(q*float64(len(s))+0.999999) - 1
		out[i] = fmtDur(s[max(0, min(rank, len(s)-1))])
	}
	return out
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
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
