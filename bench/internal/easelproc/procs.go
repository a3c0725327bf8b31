// Package easelproc starts Easel brokers (cmd/easel) as child processes on
// 127.0.0.1 for the benchmarks: a single broker (no cluster flags, a
// cluster of one) or n brokers that are all raft voters. Each broker keeps
// its ports and data directory across restarts; its output goes to a log
// file. bench/replication and bench/peers share it.
package easelproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/internal/freeport"
)

// ReadyTimeout bounds how long brokers may take to start and see each other.
const ReadyTimeout = 60 * time.Second

// Broker is one easel process's fixed identity.
type Broker struct {
	ID                  int32
	Kafka, Raft, Gossip string // Raft and Gossip are empty for a single broker
	Dir, Log            string // data directory and log file
	// Args are the command-line flags; a caller may append to them
	// before Start (e.g. --pprof).
	Args    []string
	Started time.Time // when it was last executed

	cmd    *exec.Cmd     // nil while down
	exited chan struct{} // closed once cmd has exited
}

// Running reports whether b was started and not killed since.
func (b *Broker) Running() bool { return b.cmd != nil }

// Config lays out a set of brokers.
type Config struct {
	Name string // prefixes data directories and log files
	Bin  string // the cmd/easel binary
	Root string // data directories go under Root
	// LogDir holds the log files (default Root).
	LogDir string
	// N is the number of brokers: 1 is a single broker without cluster
	// flags; more are all raft voters.
	N int
	// Timing is cmd/easel's --cluster-timing for N > 1 (default "default").
	Timing string
	Extra  []string // flags for every broker
}

// Cluster is a set of easel processes started with the same binary. Its
// methods are called from one goroutine.
type Cluster struct {
	Name string
	Bin  string
	List []*Broker
	Adm  *kadm.Client // seeded with every broker
	Cl   *kgo.Client  // Adm's client
}

// New lays out c.N brokers on free ports. It starts nothing: see StartAll.
func New(c Config) (*Cluster, error) {
	if c.N < 1 {
		return nil, fmt.Errorf("easelproc: %d brokers", c.N)
	}
	if c.LogDir == "" {
		c.LogDir = c.Root
	}
	if c.Timing == "" {
		c.Timing = "default"
	}
	bs := &Cluster{Name: c.Name, Bin: c.Bin}
	var voters, seeds []string
	for i := range c.N {
		id := int32(i + 1)
		if c.N == 1 {
			id = 0 // easel's default --node-id
		}
		b := &Broker{ID: id,
			Dir: filepath.Join(c.Root, fmt.Sprintf("%s-data-%d", c.Name, i+1)),
			Log: filepath.Join(c.LogDir, fmt.Sprintf("%s-broker-%d.log", c.Name, i+1))}
		var err error
		addrs := []*string{&b.Kafka}
		if c.N > 1 {
			addrs = append(addrs, &b.Raft, &b.Gossip)
		}
		for _, p := range addrs {
			if *p, err = freeport.Addr(); err != nil {
				return nil, err
			}
		}
		bs.List = append(bs.List, b)
		seeds = append(seeds, b.Kafka)
		voters = append(voters, fmt.Sprintf("%d@%s", b.ID, b.Raft))
	}
	for _, b := range bs.List {
		b.Args = []string{"--listen", b.Kafka, "--data-dir", b.Dir, "--auto-create-topics=false"}
		if c.N > 1 {
			var join []string
			for _, o := range bs.List {
				if o != b {
					join = append(join, o.Gossip)
				}
			}
			b.Args = append(b.Args, "--node-id", fmt.Sprint(b.ID), "--controller-voters", strings.Join(voters, ","),
				"--raft-listen", b.Raft, "--gossip-listen", b.Gossip, "--join", strings.Join(join, ","),
				"--cluster-timing", c.Timing)
		}
		b.Args = append(b.Args, c.Extra...)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(time.Second),
		kgo.RetryTimeout(10*time.Second), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	bs.Cl, bs.Adm = cl, kadm.NewClient(cl)
	return bs, nil
}

// Seeds returns the Kafka addresses of every broker.
func (bs *Cluster) Seeds() []string {
	var out []string
	for _, b := range bs.List {
		out = append(out, b.Kafka)
	}
	return out
}

// Start executes b. It does not wait for it to serve: see WaitReady.
func (bs *Cluster) Start(b *Broker) error {
	if b.cmd != nil {
		return fmt.Errorf("%s broker %d is already running", bs.Name, b.ID)
	}
	if err := os.MkdirAll(filepath.Dir(b.Log), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(b.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bs.Bin, b.Args...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stdout, cmd.Stderr = logf, logf
	fmt.Fprintf(logf, "=== bench: starting at %s: %s %s\n", time.Now().Format(time.RFC3339Nano), bs.Bin, strings.Join(b.Args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	b.cmd, b.Started, b.exited = cmd, time.Now(), make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		fmt.Fprintf(logf, "=== bench: exited at %s: %v\n", time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		logf.Close()
		close(exited)
	}(b.exited)
	return nil
}

// StartAll starts every broker and waits until each lists all of them.
func (bs *Cluster) StartAll(ctx context.Context) error {
	for _, b := range bs.List {
		if err := bs.Start(b); err != nil {
			return err
		}
	}
	return bs.WaitReady(ctx, ReadyTimeout)
}

// WaitReady waits until every running broker answers Metadata listing
// every running broker and a controller.
func (bs *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = bs.agree(ctx); last == nil {
			return nil
		}
		for _, b := range bs.List {
			if b.cmd != nil && isClosed(b.exited) {
				return fmt.Errorf("%s broker %d exited (%v); see %s", bs.Name, b.ID, b.cmd.ProcessState, b.Log)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %v: %w", bs.Name, timeout, last)
}

func (bs *Cluster) agree(ctx context.Context) error {
	live := bs.Live()
	for _, b := range live {
		m, err := MetadataFrom(ctx, b.Kafka)
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.ID, err)
		}
		var ids []int32
		for _, d := range m.Brokers {
			ids = append(ids, d.NodeID)
		}
		slices.Sort(ids)
		var want []int32
		for _, o := range live {
			want = append(want, o.ID)
		}
		if len(bs.List) > 1 && !slices.Equal(ids, want) {
			return fmt.Errorf("broker %d lists %v, running %v", b.ID, ids, want)
		}
		if m.Controller < 0 {
			return fmt.Errorf("broker %d knows no controller", b.ID)
		}
	}
	return nil
}

// MetadataFrom asks the broker at addr, and only it, for the cluster's
// brokers and controller, and for topics.
func MetadataFrom(ctx context.Context, addr string, topics ...string) (kadm.Metadata, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second), kgo.RequestRetries(0))
	if err != nil {
		return kadm.Metadata{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return kadm.NewClient(cl).Metadata(ctx, topics...)
}

// Live returns the running brokers.
func (bs *Cluster) Live() []*Broker {
	var out []*Broker
	for _, b := range bs.List {
		if b.cmd != nil {
			out = append(out, b)
		}
	}
	return out
}

// ByID returns broker id, or nil.
func (bs *Cluster) ByID(id int32) *Broker {
	for _, b := range bs.List {
		if b.ID == id {
			return b
		}
	}
	return nil
}

// Kill SIGKILLs b, returning when it was signalled, and waits for it to exit.
func (bs *Cluster) Kill(b *Broker) (time.Time, error) {
	if b.cmd == nil {
		return time.Time{}, fmt.Errorf("%s broker %d is not running", bs.Name, b.ID)
	}
	at := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return at, err
	}
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		return at, fmt.Errorf("%s broker %d did not exit within 30s of SIGKILL", bs.Name, b.ID)
	}
	b.cmd = nil
	return at, nil
}

// Stop SIGKILLs every running broker, waits for them, and closes the admin
// client. Killing drops the brokers' dirty page-cache pages with their
// data directories instead of writing them back.
func (bs *Cluster) Stop() {
	for _, b := range bs.List {
		if b.cmd != nil {
			b.cmd.Process.Kill()
			<-b.exited
			b.cmd = nil
		}
	}
	bs.Cl.Close()
}

// Pids returns the process ids of the running brokers.
func (bs *Cluster) Pids() []int {
	var out []int
	for _, b := range bs.Live() {
		out = append(out, b.cmd.Process.Pid)
	}
	return out
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
