package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/internal/jepsen"
)

// Jepsen-style test (package internal/jepsen): two idempotent acks=all
// producers and two group consumers run against four brokers (three of
// them raft voters) while one fault at a time is injected and healed, on a
// topic with RF 3 and min.insync.replicas=2; then a final read of every
// partition and the checkers: no lost acknowledged write, no inconsistent
// offset, no duplicate, no unseen, non-monotonic or skipped poll, no
// aborted read.
//
// Faults (each healed before the next, then every ISR full again):
//
//   - kill: SIGKILL of a random broker, down for 1.5-3 s, restarted with
//     the same flags and data directory;
//
//   - pause: SIGSTOP of a random broker for 0.5-3 s, then SIGCONT (gossip
//     and raft see it dead when the pause outlasts the fast failure
//     detection; it then resumes as a zombie leader of stale epochs).
//
//   - partition: when run as root with iptables, one random broker cut off
//     from the others (both ways, every inter-broker port) for 1.5-4 s,
//     the test's clients still reaching all of them.
//
//   - move (membership change): a random broker is drained, every
//     partition it holds reassigned (AlterPartitionReassignments) to the
//     broker that holds no replica of it, while the workload runs; one
//     time in four the reassignments still in progress after 1-2.5 s are
//     cancelled instead (back to the old replicas). Over the rounds
//     replicas travel between all four brokers.
//
// EASEL_JEPSEN_ROUNDS sets the number of fault rounds (default 4; the long
// form is 50 or more, with go test -timeout 60m), EASEL_JEPSEN_SEED the
// seed of the choice of faults, victims and partitions (default: the
// time; it is logged), EASEL_JEPSEN_NEMESES the faults (default
// kill,pause,partition,move), EASEL_JEPSEN_SETTLE_SECONDS how long a healed
// fault may take to settle (default 45).
func TestJepsen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers and injects faults")
	}
	rounds := envInt(t, "EASEL_JEPSEN_ROUNDS", 4)
	settleTimeout := time.Duration(envInt(t, "EASEL_JEPSEN_SETTLE_SECONDS", 45)) * time.Second
	seed := uint64(envInt(t, "EASEL_JEPSEN_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("jepsen: %d rounds, EASEL_JEPSEN_SEED=%d", rounds, seed)
	const topic, partitions = "jepsen", 4

	c := newJepsenCluster(t, 3, 1, 2, 3, 4)
	ctx := testContext(t, 90*time.Second+time.Duration(rounds)*40*time.Second)
	adm := kadm.NewClient(c.client())
	brokers := len(c.ids)
	waitUntil(ctx, t, "every broker in Metadata", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		return err == nil && len(m.Brokers) == brokers
	})
	two := "2"
	if res, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": &two}, topic); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	// Healthy: every broker up, every partition led, with three replicas
	// (no reassignment in progress) all in sync.
	healthy := func() bool {
		m, err := adm.Metadata(ctx, topic)
		if err != nil || len(m.Brokers) != brokers {
			return false
		}
		td := m.Topics[topic]
		if len(td.Partitions) != partitions {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 || len(p.Replicas) != 3 || len(p.ISR) != 3 {
				return false
			}
		}
		return true
	}
	waitUntil(ctx, t, "every partition fully in sync", healthy)
	describe := func() string {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err.Error()
		}
		var b strings.Builder
		fmt.Fprintf(&b, "brokers %v, controller %d;", m.Brokers.NodeIDs(), m.Controller)
		for _, p := range m.Topics[topic].Partitions.Sorted() {
			fmt.Fprintf(&b, " partition %d leader %d epoch %d replicas %v isr %v;", p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR)
		}
		return b.String()
	}

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
	var unsettled []string
	round := 0
	sched := jepsen.Schedule{
		Nemeses: c.nemeses(t, adm, topic),
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
		// Every fault is healed within settleTimeout: all replicas back in
		// every ISR and writes acknowledged again; a round that does not
		// settle fails the test (a liveness failure) at the end; the rounds
		// go on and the workload is still finished and checked.
		Settle: func(ctx context.Context) error {
			defer func() { round++ }()
			sctx, cancel := context.WithTimeout(ctx, settleTimeout)
			defer cancel()
			if err := waitFor(sctx, healthy); err != nil {
				unsettled = append(unsettled, fmt.Sprintf("round %d: not every replica back in sync within %v: %v", round, settleTimeout, describe()))
				return nil // go on: the later rounds still test safety
			}
			before := w.Acked()
			if err := waitFor(sctx, func() bool { return w.Acked() >= before+20 }); err != nil {
				unsettled = append(unsettled, fmt.Sprintf("round %d: no writes acknowledged within %v once healed", round, settleTimeout))
			}
			return nil
		},
		Logf: func(format string, args ...any) { t.Logf(format, args...) },
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
	for _, u := range unsettled {
		t.Errorf("liveness: %s", u)
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

// waitFor is waitUntil returning the context's error instead of failing.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// jepsenCluster is three easel child processes on 127.0.0.1 like
// procCluster, with pauses and, when the test runs as root with iptables,
// network partitions: each broker then runs as its own uid, so that an
// owner match on loopback tells its packets from the other brokers' and
// from the test's clients (all bind 127.0.0.1 and dial from ephemeral
// ports: addresses and ports alone cannot).
type jepsenCluster struct {
	*procCluster // addresses, directories, processes; its start is replaced
	// bin is a copy of the easel binary others than root may run; uid
	// maps a broker to the uid it runs as (none: the test's).
	bin string
	uid map[int32]uint32
	// chain is the iptables chain of this test's partition rules, jumped
	// to from OUTPUT ("": no partitions).
	chain string

	mu     sync.Mutex
	paused map[int32]bool
}

// newJepsenCluster starts brokers ids, the first voters of them raft
// voters.
func newJepsenCluster(t *testing.T, voters int, ids ...int32) *jepsenCluster {
	c := &jepsenCluster{procCluster: newProcAddrs(t, ids...), uid: map[int32]uint32{}, paused: map[int32]bool{}, bin: binary(t)}
	c.voters = strings.Join(strings.Split(c.voters, ",")[:voters], ",")
	if why := c.setupPartitions(); why != "" {
		t.Logf("jepsen: no network partitions: %s", why)
	}
	for _, id := range ids {
		c.start(id)
	}
	t.Cleanup(c.resumeAll) // runs before the procs' cleanups kill them
	return c
}

// setupPartitions prepares network partitions, or says why it cannot.
func (c *jepsenCluster) setupPartitions() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "iptables not installed"
	}
	chain := fmt.Sprintf("EASEL-JEPSEN-%d", os.Getpid())
	if out, err := exec.Command("iptables", "-w", "-N", chain).CombinedOutput(); err != nil {
		return fmt.Sprintf("iptables -N %s: %v %s", chain, err, out)
	}
	if out, err := exec.Command("iptables", "-w", "-I", "OUTPUT", "-o", "lo", "-j", chain).CombinedOutput(); err != nil {
		exec.Command("iptables", "-w", "-X", chain).Run()
		return fmt.Sprintf("iptables -I OUTPUT: %v %s", err, out)
	}
	c.t.Cleanup(func() {
		for _, args := range [][]string{{"-D", "OUTPUT", "-o", "lo", "-j", chain}, {"-F", chain}, {"-X", chain}} {
			if out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput(); err != nil {
				c.t.Errorf("removing the partition rules: iptables %v: %v %s", args, err, out)
			}
		}
	})
	// A binary and data directories the brokers' uids can use.
	dir, err := os.MkdirTemp("", "easel-jepsen-bin-")
	if err != nil {
		return err.Error()
	}
	c.t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := os.ReadFile(c.bin)
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "easel"), bin, 0o755)
	}
	for _, id := range c.ids {
		uid := 61000 + uint32(id)
		if err == nil {
			err = os.Chmod(filepath.Dir(c.dirs[id]), 0o755)
		}
		if err == nil {
			err = os.Chown(c.dirs[id], int(uid), int(uid))
		}
		c.uid[id] = uid
	}
	if err != nil {
		c.uid = map[int32]uint32{}
		return err.Error()
	}
	c.bin, c.chain = filepath.Join(dir, "easel"), chain
	return ""
}

// launchAs is launchIn with c's binary, run as uid when one is set.
func (c *jepsenCluster) launchAs(id int32, args ...string) *proc {
	t := c.t
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = childEnv()
	if uid, ok := c.uid[id]; ok {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, logs: &logLines{changed: make(chan struct{})}, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.logs.add(sc.Text(), false)
		}
		p.logs.add("", true)
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-p.exited
		}
		logs := p.logs.String()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("data race in easel %d:\n%s", id, logs)
		} else if t.Failed() {
			t.Logf("easel %d (%s) log:\n%s", id, strings.Join(args, " "), logs)
		}
	})
	return p
}

func (c *jepsenCluster) start(id int32) {
	c.t.Helper()
	var join []string
	for _, o := range c.ids {
		if o != id {
			join = append(join, c.gossip[o])
		}
	}
	p := c.launchAs(id, "--listen", c.kafka[id], "--data-dir", c.dirs[id], "--node-id", fmt.Sprint(id),
		"--controller-voters", c.voters, "--raft-listen", c.raft[id], "--gossip-listen", c.gossip[id], "--join", strings.Join(join, ","),
		"--cluster-timing", "fast", "--default-replication-factor", "3")
	p.waitLog(startedRE, 60*time.Second)
	p.addr = c.kafka[id]
	c.procs[id] = p
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

// nemeses: SIGKILL, SIGSTOP, reassignments of topic through adm and, when
// setupPartitions could, network partitions.
// EASEL_JEPSEN_NEMESES (a comma-separated list of kill, pause, partition,
// move) limits them.
func (c *jepsenCluster) nemeses(t *testing.T, adm *kadm.Client, topic string) []jepsen.Nemesis {
	ns := []jepsen.Nemesis{killNemesis{c}, pauseNemesis{c}, moveNemesis{c, adm, topic}}
	if c.chain != "" {
		ns = append(ns, partitionNemesis{c})
	}
	if only := os.Getenv("EASEL_JEPSEN_NEMESES"); only != "" {
		ns = slices.DeleteFunc(ns, func(n jepsen.Nemesis) bool { return !slices.Contains(strings.Split(only, ","), n.Name()) })
		if len(ns) == 0 {
			t.Fatalf("EASEL_JEPSEN_NEMESES=%q: no nemesis left", only)
		}
	}
	return ns
}

type killNemesis struct{ c *jepsenCluster }

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

type pauseNemesis struct{ c *jepsenCluster }

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

// partitionNemesis cuts one random broker off from the other two, both
// ways, on every inter-broker path (Kafka: replica fetch and controller
// requests; raft; gossip UDP and TCP). The test's clients still reach
// every broker, so the isolated one may go on taking writes as a zombie
// leader.
type partitionNemesis struct{ c *jepsenCluster }

func (n partitionNemesis) Name() string { return "partition" }

func (n partitionNemesis) Inject(ctx context.Context, rng *rand.Rand) (jepsen.Fault, error) {
	c := n.c
	id := c.ids[rng.IntN(len(c.ids))]
	dur := 1500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
	ports := func(b int32) string {
		var ps []string
		for _, a := range []string{c.kafka[b], c.raft[b], c.gossip[b]} {
			ps = append(ps, a[strings.LastIndexByte(a, ':')+1:])
		}
		return strings.Join(ps, ",")
	}
	heal := func(context.Context) error {
		if out, err := exec.Command("iptables", "-w", "-F", c.chain).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -F %s: %v %s", c.chain, err, out)
		}
		return nil
	}
	for _, o := range c.ids {
		if o == id {
			continue
		}
		for _, dir := range [][2]int32{{id, o}, {o, id}} {
			for _, proto := range []string{"tcp", "udp"} {
				args := []string{"-w", "-A", c.chain, "-p", proto, "-m", "owner", "--uid-owner", fmt.Sprint(c.uid[dir[0]]),
					"-m", "multiport", "--dports", ports(dir[1]), "-j", "DROP"}
				if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
					heal(ctx)
					return jepsen.Fault{}, fmt.Errorf("iptables %v: %v %s", args, err, out)
				}
			}
		}
	}
	return jepsen.Fault{Desc: fmt.Sprintf("broker %d cut off from the others for %v", id, dur.Round(time.Millisecond)), For: dur, Heal: heal}, nil
}

// moveNemesis drains a random broker: every partition of the topic it
// holds is reassigned to the broker that holds none of it (so the cluster
// needs one broker more than the replication factor), the replica order
// kept (the new broker takes the drained one's place, as preferred leader
// too). One time in four the heal cancels what is still moving.
type moveNemesis struct {
	c     *jepsenCluster
	adm   *kadm.Client
	topic string
}

func (n moveNemesis) Name() string { return "move" }

func (n moveNemesis) Inject(ctx context.Context, rng *rand.Rand) (jepsen.Fault, error) {
	m, err := n.adm.Metadata(ctx, n.topic)
	if err != nil {
		return jepsen.Fault{}, err
	}
	// A broker that holds something.
	var holders []int32
	for _, id := range n.c.ids {
		for _, p := range m.Topics[n.topic].Partitions {
			if slices.Contains(p.Replicas, id) {
				holders = append(holders, id)
				break
			}
		}
	}
	if len(holders) == 0 {
		return jepsen.Fault{}, fmt.Errorf("no broker holds a replica of %s", n.topic)
	}
	drained := holders[rng.IntN(len(holders))]
	req := kadm.AlterPartitionAssignmentsReq{}
	var moves []string
	for _, p := range m.Topics[n.topic].Partitions.Sorted() {
		at := slices.Index(p.Replicas, drained)
		if at < 0 {
			continue
		}
		spare := slices.DeleteFunc(slices.Clone(n.c.ids), func(id int32) bool { return slices.Contains(p.Replicas, id) })
		if len(spare) == 0 {
			return jepsen.Fault{}, fmt.Errorf("partition %d is on every broker (%v)", p.Partition, p.Replicas)
		}
		target := slices.Clone(p.Replicas)
		target[at] = spare[rng.IntN(len(spare))]
		req.Assign(n.topic, p.Partition, target)
		moves = append(moves, fmt.Sprintf("%d: %v→%v", p.Partition, p.Replicas, target))
	}
	resp, err := n.adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		return jepsen.Fault{}, err
	}
	for _, ps := range resp {
		for _, r := range ps {
			if r.Err != nil {
				return jepsen.Fault{}, fmt.Errorf("reassigning %s/%d: %w (%s)", r.Topic, r.Partition, r.Err, r.ErrMessage)
			}
		}
	}
	// Small logs move in well under a second: a cancel comes early enough
	// to find the reassignments in progress.
	cancel := rng.IntN(4) == 0
	dur := time.Second + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
	if cancel {
		dur = time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
	}
	desc := fmt.Sprintf("drain broker %d (partitions %s)", drained, strings.Join(moves, ", "))
	heal := func(context.Context) error { return nil } // Settle waits for the moves to complete
	if cancel {
		desc += fmt.Sprintf(", cancelled after %v", dur.Round(time.Millisecond))
		heal = func(ctx context.Context) error {
			all := kadm.TopicsSet{}
			for _, p := range m.Topics[n.topic].Partitions {
				all.Add(n.topic, p.Partition)
			}
			moving, err := n.adm.ListPartitionReassignments(ctx, all)
			if err != nil {
				return err
			}
			creq := kadm.AlterPartitionAssignmentsReq{}
			for _, ps := range moving {
				for p := range ps {
					creq.CancelAssign(n.topic, p)
				}
			}
			n.c.t.Logf("jepsen: cancelling %d reassignments still in progress", len(creq[n.topic]))
			if len(creq) == 0 {
				return nil
			}
			resp, err := n.adm.AlterPartitionAssignments(ctx, creq)
			if err != nil {
				return err
			}
			for _, ps := range resp {
				for _, r := range ps {
					// It may have completed since the list.
					if r.Err != nil && !errors.Is(r.Err, kerr.NoReassignmentInProgress) {
						return fmt.Errorf("cancelling %s/%d: %w (%s)", r.Topic, r.Partition, r.Err, r.ErrMessage)
					}
				}
			}
			return nil
		}
	}
	return jepsen.Fault{Desc: desc, For: dur, Heal: heal}, nil
}

func countKinds(rounds []jepsen.Round) string {
	n := map[string]int{}
	for _, r := range rounds {
		n[r.Nemesis]++
	}
	return fmt.Sprintf("kill %d, pause %d, partition %d, move %d", n["kill"], n["pause"], n["partition"], n["move"])
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
