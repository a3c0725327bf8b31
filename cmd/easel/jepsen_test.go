package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/easel-io/easel/internal/jepsen"
)

// Jepsen-style test (package internal/jepsen): two idempotent acks=all
// producers and two group consumers run against three brokers while one
// fault at a time is injected and healed, on a topic with RF 3 and
// min.insync.replicas=2; then a final read of every partition and the
// checkers: no lost acknowledged write, no inconsistent offset, no
// duplicate, no unseen, non-monotonic or skipped poll, no aborted read.
//
// Faults (each healed before the next, then every ISR full again):
//   - kill: SIGKILL of a random broker, down for 1.5-3 s, restarted with
//     the same flags and data directory;
//   - pause: SIGSTOP of a random broker for 0.5-3 s, then SIGCONT (gossip
//     and raft see it dead when the pause outlasts the fast failure
//     detection; it then resumes as a zombie leader of stale epochs).
//
// Network partitions are not injected here (see jepsenNemeses).
//
// EASEL_JEPSEN_ROUNDS sets the number of fault rounds (default 4; the long
// form is 50 or more, with go test -timeout 60m), EASEL_JEPSEN_SEED the
// seed of the choice of faults, victims and partitions (default: the
// time; it is logged).
func TestJepsen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers and injects faults")
	}
	rounds := envInt(t, "EASEL_JEPSEN_ROUNDS", 4)
	seed := uint64(envInt(t, "EASEL_JEPSEN_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("jepsen: %d rounds, EASEL_JEPSEN_SEED=%d", rounds, seed)
	const topic, partitions = "jepsen", 4

	c := newProcCluster(t, 1, 2, 3)
	jc := &jepsenCluster{procCluster: c, paused: map[int32]bool{}}
	t.Cleanup(jc.resumeAll) // runs before the procs' cleanups kill them
	ctx := testContext(t, 90*time.Second+time.Duration(rounds)*40*time.Second)
	adm := kadm.NewClient(c.client())
	waitUntil(ctx, t, "three brokers in Metadata", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})
	two := "2"
	if res, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": &two}, topic); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	healthy := func() bool {
		m, err := adm.Metadata(ctx, topic)
		if err != nil || len(m.Brokers) != 3 {
			return false
		}
		td := m.Topics[topic]
		if len(td.Partitions) != partitions {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 || len(p.ISR) != 3 {
				return false
			}
		}
		return true
	}
	waitUntil(ctx, t, "every partition fully in sync", healthy)

	clientLog := &boundedLog{max: 50}
	w, err := jepsen.Start(ctx, jepsen.Config{
		Seeds: c.seeds(), Topic: topic, Partitions: partitions,
		Producers: 2, Consumers: 2, InFlight: 4,
		Seed: seed, Logf: clientLog.logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	finished := false
	t.Cleanup(func() {
		if !finished { // a t.Fatal on the way: stop the clients
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			w.Finish(fctx)
		}
	})
	waitUntil(ctx, t, "writes acknowledged before the first fault", func() bool { return w.Acked() >= 100 })

	var stalled []int
	round := 0
	sched := jepsen.Schedule{
		Nemeses: jc.nemeses(t),
		Rounds:  rounds,
		Seed:    seed,
		// With one broker faulty, two in-sync replicas remain: writes go on
		// once leadership has moved (or the paused broker is back).
		During: func(ctx context.Context) error {
			before := w.Acked()
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for w.Acked() < before+20 {
				select {
				case <-wctx.Done():
					stalled = append(stalled, round)
					return nil
				case <-time.After(20 * time.Millisecond):
				}
			}
			return nil
		},
		Settle: func(ctx context.Context) error {
			waitUntil(ctx, t, fmt.Sprintf("every partition fully in sync after round %d", round), healthy)
			before := w.Acked()
			waitUntil(ctx, t, fmt.Sprintf("writes acknowledged after round %d", round), func() bool { return w.Acked() >= before+20 })
			round++
			return nil
		},
		Logf: t.Logf,
	}
	start := time.Now()
	done, err := sched.Run(ctx)
	if err != nil {
		t.Errorf("after %d rounds: %v", len(done), err)
	}
	faulted := time.Since(start)
	ferr := w.Finish(ctx)
	finished = true
	r := jepsen.Check(w.History())
	t.Logf("jepsen: %d fault rounds in %v (%s), seed %d; writes stalled in rounds %v", len(done), faulted.Round(time.Second), countKinds(done), seed, stalled)
	t.Logf("jepsen: %s", r.Summary())
	if lines := clientLog.String(); lines != "" {
		t.Logf("jepsen: client log (first %d of %d lines):\n%s", clientLog.max, clientLog.n, lines)
	}
	if ferr != nil {
		t.Errorf("finishing the workload: %v", ferr)
	}
	if !r.Valid() {
		t.Errorf("anomalies (reproduce with EASEL_JEPSEN_SEED=%d EASEL_JEPSEN_ROUNDS=%d):\n%v", seed, rounds, r)
	}
	if r.Acked == 0 {
		t.Error("no write acknowledged")
	}
}

// jepsenCluster adds pausing to a procCluster.
type jepsenCluster struct {
	*procCluster
	mu     sync.Mutex
	paused map[int32]bool
}

// resumeAll SIGCONTs every paused broker, so that they can be killed and
// their logs read.
func (c *jepsenCluster) resumeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.paused {
		if p := c.procs[id]; p != nil {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
		delete(c.paused, id)
	}
}

// jepsenNemeses: SIGKILL and SIGSTOP. A network partition needs either
// root and iptables rules on loopback that tell brokers apart (they all
// bind 127.0.0.1 and dial from ephemeral ports, so only an owner match on
// a per-broker uid or cgroup could), or a fault-injecting proxy on every
// inter-broker path (memberlist UDP and TCP, raft, replica fetch); partitions
// are injected by the in-process tests of package broker instead, with the
// same checker.
func (c *jepsenCluster) nemeses(t *testing.T) []jepsen.Nemesis {
	return []jepsen.Nemesis{killNemesis{c, t}, pauseNemesis{c, t}}
}

type killNemesis struct {
	c *jepsenCluster
	t *testing.T
}

func (n killNemesis) Name() string { return "kill" }

func (n killNemesis) Inject(ctx context.Context, rng *rand.Rand) (jepsen.Fault, error) {
	id := n.c.ids[rng.IntN(len(n.c.ids))]
	down := 1500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
	n.c.kill(id)
	return jepsen.Fault{
		Desc: fmt.Sprintf("SIGKILL broker %d for %v", id, down.Round(time.Millisecond)),
		For:  down,
		Heal: func(context.Context) error { n.c.start(id); return nil },
	}, nil
}

type pauseNemesis struct {
	c *jepsenCluster
	t *testing.T
}

func (n pauseNemesis) Name() string { return "pause" }

func (n pauseNemesis) Inject(ctx context.Context, rng *rand.Rand) (jepsen.Fault, error) {
	id := n.c.ids[rng.IntN(len(n.c.ids))]
	pause := 500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
	p := n.c.procs[id]
	n.c.mu.Lock()
	n.c.paused[id] = true
	n.c.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return jepsen.Fault{}, err
	}
	return jepsen.Fault{
		Desc: fmt.Sprintf("SIGSTOP broker %d for %v", id, pause.Round(time.Millisecond)),
		For:  pause,
		Heal: func(context.Context) error {
			n.c.mu.Lock()
			defer n.c.mu.Unlock()
			delete(n.c.paused, id)
			return p.cmd.Process.Signal(syscall.SIGCONT)
		},
	}, nil
}

func countKinds(rounds []jepsen.Round) string {
	n := map[string]int{}
	for _, r := range rounds {
		n[r.Nemesis]++
	}
	return fmt.Sprintf("kill %d, pause %d", n["kill"], n["pause"])
}

// envInt is the integer in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return v
}

// boundedLog keeps the first max lines logged and counts the rest.
type boundedLog struct {
	mu    sync.Mutex
	max   int
	n     int
	lines []string
}

func (l *boundedLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.lines) < l.max {
		l.lines = append(l.lines, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

func (l *boundedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
