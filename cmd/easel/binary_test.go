package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newClient returns a franz-go client for the broker at addr, closed when
// the test ends.
func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestBadConfigExits2(t *testing.T) {
	t.Parallel()
	badFile := writeConfig(t, "# bad\nnum.partitions=many\n")
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--num-partitions", "0"}, nil, "-num-partitions"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--listen", "nowhere"}, nil, "--listen"},
		{nil, []string{"EASEL_NODE_ID=abc"}, "EASEL_NODE_ID"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{[]string{"--config", badFile}, nil, "num.partitions (" + badFile + ":2): invalid value \"many\""},
	}
	for _, tt := range tests {
		cmd := easelCmd(t, tt.args, tt.env)
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("easel %v %v: exit code %d (%v), want 2; output:\n%s", tt.env, tt.args, code, err, out)
			continue
		}
		if !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "-help") {
			t.Errorf("easel %v %v: output %q lacks %q and a pointer to -help", tt.env, tt.args, out, tt.want)
		}
	}
}

func TestHelpExits0(t *testing.T) {
	t.Parallel()
	cmd := easelCmd(t, []string{"-help"}, nil)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("easel -help: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "EASEL_DATA_DIR") {
		t.Fatalf("easel -help output lacks the environment variables:\n%s", out)
	}
}

// --print-config prints the effective configuration and exits 0 without
// starting.
func TestPrintConfigExits0(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "num.io.threads=8\nlog.retention.hours=2\n")
	cmd := easelCmd(t, []string{"--config", path, "--print-config", "--node-id", "5"}, []string{"EASEL_LOG_FORMAT=json"})
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("easel --print-config: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"\nnode.id=5\n", "\nlog.retention.ms=7200000\n", "\neasel.log.format=json\n", "from the environment EASEL_LOG_FORMAT"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// With --log-format json every log line is a JSON object, and the warning
// about a Kafka key Easel does not implement is among them.
func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "num.io.threads=8\n")
	p := launch(t, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json", "--config", path)
	p.waitLog(regexp.MustCompile(`^\{"time":.*"msg":"easel started"`), 60*time.Second)
	p.waitLog(regexp.MustCompile(`^\{"time":.*"level":"WARN","msg":"config: num.io.threads \(.*\): a Kafka setting Easel does not implement; ignored"`), time.Second)
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestDefaultDataDir checks that without --data-dir the data goes to
// ./easel-data. (The default listen address is checked in
// TestParseConfigDefaults rather than by binding port 9092.)
func TestDefaultDataDir(t *testing.T) {
	t.Parallel()
	wd := t.TempDir()
	p := startEaselIn(t, wd)
	want := filepath.Join(wd, "easel-data")
	if !p.hasLog(regexp.MustCompile(`msg="easel started".* data_dir=` + regexp.QuoteMeta(want) + `( |$)`)) {
		t.Fatalf("startup line does not name data dir %s:\n%s", want, p.logs)
	}
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(want, ".clean-shutdown")); err != nil {
		t.Fatalf("no clean-shutdown marker in the default data dir: %v", err)
	}
}

func TestListenBusyExits1(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := launch(t, "--listen", ln.Addr().String(), "--data-dir", t.TempDir())
	if code := p.wait(60 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if !p.hasLog(regexp.MustCompile(`level=ERROR .*listen on ` + regexp.QuoteMeta(ln.Addr().String()))) {
		t.Fatalf("no error naming the busy address in the log:\n%s", p.logs)
	}
}

// TestMetadataAdvertise checks that --node-id and --advertise reach clients.
func TestMetadataAdvertise(t *testing.T) {
	t.Parallel()
	p := startEasel(t, "--data-dir", t.TempDir(), "--node-id", "5", "--advertise", "easel.invalid:19092")
	if !strings.Contains(p.addr, "easel.invalid:19092") {
		t.Fatalf("startup line advertises %q", p.addr)
	}
	bound := regexp.MustCompile(`msg="easel started" listen=(\S+)`).FindStringSubmatch(p.waitLog(startedRE, time.Second))[1]
	cl := newClient(t, bound)
	ctx := testContext(t, 30*time.Second)
	req := kmsg.NewPtrMetadataRequest()
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	md := resp.(*kmsg.MetadataResponse)
	if len(md.Brokers) != 1 || md.Brokers[0].NodeID != 5 || md.Brokers[0].Host != "easel.invalid" || md.Brokers[0].Port != 19092 {
		t.Fatalf("brokers %+v, want node 5 at easel.invalid:19092", md.Brokers)
	}
	if md.ControllerID != 5 {
		t.Fatalf("controller %d, want 5", md.ControllerID)
	}
}

// TestShutdownEndsLongPoll checks that SIGTERM does not wait out a fetch
// long poll and exits 0.
func TestShutdownEndsLongPoll(t *testing.T) {
	t.Parallel()
	p := startEasel(t, "--data-dir", t.TempDir(), "--shutdown-timeout", "60s")
	cl := newClient(t, p.addr)
	ctx := testContext(t, 60*time.Second)
	const topic = "idle"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	fetch.ReplicaID = -1
	fetch.MaxWaitMillis = 50_000
	fetch.MinBytes = 1
	fetch.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	fp.LogStartOffset = -1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	done := make(chan error, 1)
	go func() {
		_, err := cl.SeedBrokers()[0].Request(ctx, fetch)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("fetch on an empty partition with min bytes 1 returned at once: %v", err)
	case <-time.After(time.Second): // the fetch is parked in the broker
	}
	start := time.Now()
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %v with a long poll parked", took)
	}
	select {
	case err := <-done:
		t.Logf("long poll ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not end when the broker exited")
	}
	if !p.hasLog(regexp.MustCompile(`msg="shutdown complete"`)) {
		t.Fatal("no shutdown complete line")
	}
	if p.hasLog(regexp.MustCompile(`did not finish in time`)) {
		t.Fatal("shutdown waited out its timeout instead of ending the long poll")
	}
}

func TestPprof(t *testing.T) {
	t.Parallel()
	p := startEasel(t, "--data-dir", t.TempDir(), "--pprof", "127.0.0.1:0")
	addr := regexp.MustCompile(`msg="pprof listening" addr=(\S+)`).FindStringSubmatch(
		p.waitLog(regexp.MustCompile(`msg="pprof listening"`), time.Second))[1]
	ctx := testContext(t, 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("GET goroutine profile: %v %s %.200q", err, resp.Status, body)
	}
	if code := p.signal(syscall.SIGINT, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", code)
	}
}

// easelCmd returns a command running the binary with args and extra
// environment.
func easelCmd(t *testing.T, args, env []string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = childEnv(env...)
	return cmd
}

// Settings reach the parts they configure: socket.request.max.bytes from
// a --config file bounds netio's frames (a bigger frame closes the
// connection with a log line naming the bound).
func TestConfigFileReachesNetio(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "socket.request.max.bytes=2000\n")
	p := startEasel(t, "--data-dir", t.TempDir(), "--config", path)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0, 0, 0x13, 0x88}); err != nil { // a 5000-byte frame follows
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes; want the connection closed", n)
	}
	p.waitLog(regexp.MustCompile(`frame size exceeds MaxRequestSize.* max=2000`), 10*time.Second)
}
