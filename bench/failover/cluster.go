package main

// A cluster of easel child processes on 127.0.0.1: each broker has its own
// Kafka, raft and gossip port and data directory, kept across restarts, and
// every broker is a raft voter.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/internal/freeport"
)

// startTimeout bounds how long a broker may take to log its start line.
const startTimeout = 60 * time.Second

var (
	startedRE = regexp.MustCompile(`msg="easel started"`)
	levelRE   = regexp.MustCompile(`level=(WARN|ERROR)`)
	msgRE     = regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)
)

// node is one broker's fixed identity: ports and data directory.
type node struct {
	id                  int32
	kafka, raft, gossip string
	dir                 string
	proc                *proc       // nil while down
	client              *kgo.Client // seeded with this broker only
}

// proc is a running easel process.
type proc struct {
	cmd     *exec.Cmd
	started time.Time     // when it was executed
	up      chan struct{} // closed on its "easel started" line
	exited  chan struct{} // closed once it has exited and its log is read
}

// logEvent is a log line of interest, stamped when the bench read it.
type logEvent struct {
	at   time.Time
	node int32
	line string
}

// cluster is the set of brokers. Its methods are called from the main
// goroutine only; mu guards what the log readers write.
type cluster struct {
	bin    string
	timing string
	root   string // temporary directory holding data dirs and logs
	extra  []string
	ids    []int32
	nodes  map[int32]*node
	voters string

	mu struct {
		sync.Mutex
		events   []logEvent     // lines matching watchRE
		warnings map[string]int // "node level msg" → count
	}
	watchRE *regexp.Regexp
	wg      sync.WaitGroup // log readers
}

func newCluster(bin, timing, root string, extra []string, ids ...int32) (*cluster, error) {
	c := &cluster{bin: bin, timing: timing, root: root, extra: extra, ids: ids, nodes: map[int32]*node{},
		watchRE: regexp.MustCompile(`Marking \S+ as failed|controller: won leadership|controller: took over|Suspect`)}
	c.mu.warnings = map[string]int{}
	var vs []string
	for _, id := range ids {
		n := &node{id: id, dir: filepath.Join(root, fmt.Sprintf("data-%d", id))}
		var err error
		for _, p := range []*string{&n.kafka, &n.raft, &n.gossip} {
			if *p, err = freeport.Addr(); err != nil {
				return nil, err
			}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.DialTimeout(time.Second),
			kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
		if err != nil {
			return nil, err
		}
		n.client = cl
		c.nodes[id] = n
		vs = append(vs, fmt.Sprintf("%d@%s", id, n.raft))
	}
	c.voters = strings.Join(vs, ",")
	return c, nil
}

// start executes broker id and waits for its start line.
func (c *cluster) start(ctx context.Context, id int32) error {
	n := c.nodes[id]
	if n.proc != nil {
		return fmt.Errorf("broker %d is already running", id)
	}
	var join []string
	for _, o := range c.ids {
		if o != id {
			join = append(join, c.nodes[o].gossip)
		}
	}
	args := append([]string{"--listen", n.kafka, "--data-dir", n.dir, "--node-id", fmt.Sprint(id),
		"--controller-voters", c.voters, "--raft-listen", n.raft, "--gossip-listen", n.gossip,
		"--join", strings.Join(join, ","), "--cluster-timing", c.timing,
		"--default-replication-factor", "3", "--auto-create-topics=false"}, c.extra...)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(c.root, fmt.Sprintf("broker-%d.log", id)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p := &proc{cmd: cmd, up: make(chan struct{}), exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	fmt.Fprintf(logf, "=== bench: started at %s: %s %s\n", p.started.Format(time.RFC3339Nano), c.bin, strings.Join(args, " "))
	n.proc = p
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		up := false
		for sc.Scan() {
			line, now := sc.Text(), time.Now()
			fmt.Fprintf(logf, "%s\n", line)
			if !up && startedRE.MatchString(line) {
				up = true
				close(p.up)
			}
			c.note(id, now, line)
		}
		cmd.Wait()
		fmt.Fprintf(logf, "=== bench: exited at %s: %v\n", time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		close(p.exited)
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case <-p.up:
		return nil
	case <-p.exited:
		n.proc = nil
		return fmt.Errorf("broker %d exited before starting (%v); see %s", id, cmd.ProcessState, logf.Name())
	case <-t.C:
		return fmt.Errorf("broker %d did not start within %v", id, startTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// note records a log line of interest.
func (c *cluster) note(id int32, at time.Time, line string) {
	watch, warn := c.watchRE.MatchString(line), levelRE.FindStringSubmatch(line)
	if !watch && warn == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if watch {
		c.mu.events = append(c.mu.events, logEvent{at, id, line})
	}
	if warn != nil {
		msg := "?"
		if m := msgRE.FindStringSubmatch(line); m != nil {
			msg = m[1]
		}
		c.mu.warnings[fmt.Sprintf("%s %s", warn[1], msg)]++
	}
}

// firstEvent returns the time of the first watched line matching re logged
// after since by a broker other than not, if any.
func (c *cluster) firstEvent(re *regexp.Regexp, since time.Time, not int32) (time.Time, int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.mu.events {
		if e.at.After(since) && e.node != not && re.MatchString(e.line) {
			return e.at, e.node, true
		}
	}
	return time.Time{}, 0, false
}

// warnings returns the WARN and ERROR messages logged, with counts.
func (c *cluster) warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, v := range c.mu.warnings {
		out = append(out, fmt.Sprintf("%5d× %s", v, k))
	}
	sort.Strings(out)
	return out
}

// kill SIGKILLs broker id and waits for it to exit.
func (c *cluster) kill(id int32) (time.Time, error) {
	n := c.nodes[id]
	if n.proc == nil {
		return time.Time{}, fmt.Errorf("broker %d is not running", id)
	}
	at := time.Now()
	if err := n.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return at, err
	}
	select {
	case <-n.proc.exited:
	case <-time.After(30 * time.Second):
		return at, fmt.Errorf("broker %d did not exit within 30s of SIGKILL", id)
	}
	n.proc = nil
	return at, nil
}

// live returns the ids of the running brokers.
func (c *cluster) live() []int32 {
	var out []int32
	for _, id := range c.ids {
		if c.nodes[id].proc != nil {
			out = append(out, id)
		}
	}
	return out
}

// stop kills every broker and waits for the log readers.
func (c *cluster) stop() {
	for _, id := range c.ids {
		if n := c.nodes[id]; n.proc != nil {
			n.proc.cmd.Process.Kill()
			<-n.proc.exited
			n.proc = nil
		}
		c.nodes[id].client.Close()
	}
	c.wg.Wait()
}

// childEnv is the environment without EASEL_* variables, so that a
// developer's settings cannot change what the bench starts.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EASEL_") {
			env = append(env, kv)
		}
	}
	return env
}
