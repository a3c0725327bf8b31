package main

// Process-level test harness: the easel binary is built once per test run
// with go build (with -race when the tests run with -race) and each test
// starts it as a child process on 127.0.0.1:0, learning the bound port from
// its startup log line.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// build holds the binary built for this test run.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binary returns the path of the easel binary, building it on first use.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "easel-test-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "easel")
		args := []string{"build", "-o", build.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("building easel: %v", build.err)
	}
	return build.path
}

// childEnv is the test process's environment without EASEL_* variables, so
// that a developer's settings cannot change what a test starts.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// logLines collects a child's stderr line by line.
type logLines struct {
	mu      sync.Mutex
	lines   []string
	eof     bool
	changed chan struct{} // closed and replaced whenever lines or eof change
}

func (l *logLines) add(line string, eof bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if eof {
		l.eof = true
	} else {
		l.lines = append(l.lines, line)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// find returns the first line matching re after skipping the first from
// lines, whether the stream has ended, and a channel closed on the next
// change.
func (l *logLines) find(re *regexp.Regexp, from int) (string, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines[min(from, len(l.lines)):] {
		if re.MatchString(line) {
			return line, true, nil
		}
	}
	return "", l.eof, l.changed
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// proc is a running easel child process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *logLines
	exited chan struct{} // closed once the process has exited and logs are read
	state  *os.ProcessState
	// addr is the advertised (and, on loopback, bound) address.
	addr string
}

var startedRE = regexp.MustCompile(`msg="easel started".* advertise=(\S+)`)

// startEasel starts the binary with --listen 127.0.0.1:0 followed by args
// and waits for its startup line.
func startEasel(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEaselIn(t, "", args...)
}

// startEaselIn is startEasel with the working directory wd (empty: the
// test's).
func startEaselIn(t *testing.T, wd string, args ...string) *proc {
	t.Helper()
	p := launchIn(t, wd, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	line := p.waitLog(startedRE, 60*time.Second)
	p.addr = startedRE.FindStringSubmatch(line)[1]
	return p
}

// launch starts the binary with args, without waiting for anything.
func launch(t *testing.T, args ...string) *proc {
	t.Helper()
	return launchIn(t, "", args...)
}

// launchIn is launch with the working directory wd (empty: the test's).
func launchIn(t *testing.T, wd string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = wd
	cmd.Env = childEnv()
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
		cmd.Wait() // the exit status is in cmd.ProcessState
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		logs := p.logs.String()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("data race in easel:\n%s", logs)
		} else if t.Failed() {
			t.Logf("easel %s log:\n%s", strings.Join(args, " "), logs)
		}
	})
	return p
}

// waitLog waits for a log line matching re and returns it.
func (p *proc) waitLog(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	line, err := p.findLog(re, 0, timeout)
	if err != nil {
		p.t.Fatal(err)
	}
	return line
}

// findLog waits for a log line matching re among the lines after the first
// from.
func (p *proc) findLog(re *regexp.Regexp, from int, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		line, done, changed := p.logs.find(re, from)
		switch {
		case changed == nil:
			return line, nil
		case done:
			return "", fmt.Errorf("easel exited (%v) without logging a line matching %q", p.state, re)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", fmt.Errorf("no log line matching %q within %v", re, timeout)
		}
	}
}

// hasLog reports whether a line matching re has been logged.
func (p *proc) hasLog(re *regexp.Regexp) bool {
	_, _, changed := p.logs.find(re, 0)
	return changed == nil
}

// signal sends sig and waits for the process to exit, returning its exit
// code (-1 if a signal killed it).
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatal(err)
	}
	return p.wait(timeout)
}

// wait waits for the process to exit and returns its exit code (-1 if a
// signal killed it).
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("easel did not exit within %v", timeout)
	}
	return p.state.ExitCode()
}

// testContext returns a context that ends at the test's deadline, less a
// margin for reporting, or after limit, whichever is sooner.
func testContext(t *testing.T, limit time.Duration) context.Context {
	deadline := time.Now().Add(limit)
	if d, ok := t.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
		deadline = d.Add(-5 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}
