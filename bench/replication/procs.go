package main

// Easel brokers as child processes on 127.0.0.1: a single broker (no
// cluster flags, a cluster of one) or three brokers that are all raft
// voters, as bench/failover starts them. Each broker keeps its ports and
// data directory across restarts; its stderr goes to a log file in the
// run's temporary directory.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readyTimeout bounds how long brokers may take to start and see each other.
const readyTimeout = 60 * time.Second

// broker is one easel process's fixed identity.
type broker struct {
	id                  int32
	kafka, raft, gossip string // raft and gossip empty for a single broker
	dir, log            string
	args                []string
	pprof               string        // its --pprof address, "" if none
	cmd                 *exec.Cmd     // nil while down
	exited              chan struct{} // closed once cmd has exited
	started             time.Time
}

// brokers is a set of easel processes started with the same binary.
type brokers struct {
	name string
	bin  string
	list []*broker
	// profPrefix starts the paths of the CPU profiles profile writes ("":
	// none; see enablePprof).
	profPrefix string
	adm        *kadm.Client // seeded with every broker
	cl         *kgo.Client  // adm's client
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	// Gossip also needs UDP on the same port.
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		return "", err
	}
	pc.Close()
	return ln.Addr().String(), nil
}

// newBrokers lays out n brokers under root: n == 1 is a single broker
// without cluster flags; otherwise every broker is a raft voter with the
// given --cluster-timing. extra flags go to every broker.
func newBrokers(name, bin, root string, n int, timing string, extra []string) (*brokers, error) {
	bs := &brokers{name: name, bin: bin}
	var voters, seeds []string
	for i := range n {
		id := int32(i + 1)
		if n == 1 {
			id = 0 // easel's default --node-id
		}
		b := &broker{id: id,
			dir: filepath.Join(root, fmt.Sprintf("%s-data-%d", name, i+1)),
			log: filepath.Join(root, fmt.Sprintf("%s-broker-%d.log", name, i+1))}
		var err error
		addrs := []*string{&b.kafka}
		if n > 1 {
			addrs = append(addrs, &b.raft, &b.gossip)
		}
		for _, p := range addrs {
			if *p, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		bs.list = append(bs.list, b)
		seeds = append(seeds, b.kafka)
		voters = append(voters, fmt.Sprintf("%d@%s", b.id, b.raft))
	}
	for _, b := range bs.list {
		b.args = []string{"--listen", b.kafka, "--data-dir", b.dir, "--auto-create-topics=false"}
		if n > 1 {
			var join []string
			for _, o := range bs.list {
				if o != b {
					join = append(join, o.gossip)
				}
			}
			b.args = append(b.args, "--node-id", fmt.Sprint(b.id), "--controller-voters", strings.Join(voters, ","),
				"--raft-listen", b.raft, "--gossip-listen", b.gossip, "--join", strings.Join(join, ","),
				"--cluster-timing", timing)
		}
		b.args = append(b.args, extra...)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(time.Second),
		kgo.RetryTimeout(10*time.Second), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	bs.cl, bs.adm = cl, kadm.NewClient(cl)
	return bs, nil
}

// seeds returns the Kafka addresses of every broker.
func (bs *brokers) seeds() []string {
	var out []string
	for _, b := range bs.list {
		out = append(out, b.kafka)
	}
	return out
}

// start executes b. It does not wait for it to serve: see waitReady.
func (bs *brokers) start(b *broker) error {
	if b.cmd != nil {
		return fmt.Errorf("%s broker %d is already running", bs.name, b.id)
	}
	logf, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bs.bin, b.args...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stdout, cmd.Stderr = logf, logf
	fmt.Fprintf(logf, "=== bench: starting at %s: %s %s\n", time.Now().Format(time.RFC3339Nano), bs.bin, strings.Join(b.args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	b.cmd, b.started, b.exited = cmd, time.Now(), make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		fmt.Fprintf(logf, "=== bench: exited at %s: %v\n", time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		logf.Close()
		close(exited)
	}(b.exited)
	return nil
}

// startAll starts every broker and waits until each lists all of them.
func (bs *brokers) startAll(ctx context.Context) error {
	for _, b := range bs.list {
		if err := bs.start(b); err != nil {
			return err
		}
	}
	return bs.waitReady(ctx, readyTimeout)
}

// waitReady waits until every running broker answers Metadata listing
// every running broker and a controller.
func (bs *brokers) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = bs.agree(ctx); last == nil {
			return nil
		}
		for _, b := range bs.list {
			if b.cmd != nil && isClosed(b.exited) {
				return fmt.Errorf("%s broker %d exited (%v); see %s", bs.name, b.id, b.cmd.ProcessState, b.log)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %v: %w", bs.name, timeout, last)
}

func (bs *brokers) agree(ctx context.Context) error {
	live := bs.live()
	for _, b := range live {
		m, err := metadataFrom(ctx, b.kafka)
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.id, err)
		}
		var ids []int32
		for _, d := range m.Brokers {
			ids = append(ids, d.NodeID)
		}
		slices.Sort(ids)
		var want []int32
		for _, o := range live {
			want = append(want, o.id)
		}
		if len(bs.list) > 1 && !slices.Equal(ids, want) {
			return fmt.Errorf("broker %d lists %v, running %v", b.id, ids, want)
		}
		if m.Controller < 0 {
			return fmt.Errorf("broker %d knows no controller", b.id)
		}
	}
	return nil
}

// metadataFrom asks the broker at addr, and only it, for the cluster's
// brokers and controller.
func metadataFrom(ctx context.Context, addr string, topics ...string) (kadm.Metadata, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second), kgo.RequestRetries(0))
	if err != nil {
		return kadm.Metadata{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return kadm.NewClient(cl).Metadata(ctx, topics...)
}

// live returns the running brokers.
func (bs *brokers) live() []*broker {
	var out []*broker
	for _, b := range bs.list {
		if b.cmd != nil {
			out = append(out, b)
		}
	}
	return out
}

// byID returns broker id, or nil.
func (bs *brokers) byID(id int32) *broker {
	for _, b := range bs.list {
		if b.id == id {
			return b
		}
	}
	return nil
}

// kill SIGKILLs b, returning when it was signalled, and waits for it to exit.
func (bs *brokers) kill(b *broker) (time.Time, error) {
	if b.cmd == nil {
		return time.Time{}, fmt.Errorf("%s broker %d is not running", bs.name, b.id)
	}
	at := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return at, err
	}
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		return at, fmt.Errorf("%s broker %d did not exit within 30s of SIGKILL", bs.name, b.id)
	}
	b.cmd = nil
	return at, nil
}

// stop kills every running broker, waits for them, and closes the admin
// client.
func (bs *brokers) stop() {
	for _, b := range bs.list {
		if b.cmd != nil {
			b.cmd.Process.Kill()
			<-b.exited
			b.cmd = nil
		}
	}
	bs.cl.Close()
}

// pids returns the process ids of the running brokers.
func (bs *brokers) pids() []int {
	var out []int
	for _, b := range bs.live() {
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
