package main

// Tests with kcat (librdkafka), a client we did not write. They skip when
// kcat is not installed, unless EASEL_REQUIRE_KCAT=1 (as in .ci/run).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kcat returns the path of kcat (or its old name, kafkacat).
func kcat(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("EASEL_REQUIRE_KCAT") == "1" {
		t.Fatal("kcat is not installed (not in PATH) and EASEL_REQUIRE_KCAT=1")
	}
	t.Skip("kcat is not installed (apt-get install kcat); skipping; set EASEL_REQUIRE_KCAT=1 to fail instead")
	return ""
}

// runKcat runs kcat with args and stdin, failing the test on a non-zero exit.
func runKcat(ctx context.Context, t *testing.T, path string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	if strings.Contains(stderr.String(), "ERROR") {
		t.Fatalf("kcat %s reported errors:\n%s", strings.Join(args, " "), stderr.Bytes())
	}
	return stdout.Bytes()
}

// kcatMetadata is the part of kcat -L -J's output the tests read.
type kcatMetadata struct {
	ControllerID int32 `json:"controllerid"`
	Brokers      []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Error      string `json:"error"`
		Partitions []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
			Error     string
		} `json:"partitions"`
	} `json:"topics"`
}

func TestKcatMetadata(t *testing.T) {
	t.Parallel()
	kc := kcat(t)
	p := startEasel(t, "--data-dir", t.TempDir(), "--node-id", "3")
	ctx := testContext(t, 60*time.Second)
	if _, err := kadm.NewClient(newClient(t, p.addr)).CreateTopic(ctx, 4, 1, nil, "listed"); err != nil {
		t.Fatal(err)
	}
	out := runKcat(ctx, t, kc, nil, "-L", "-J", "-b", p.addr, "-m", "20")
	var md kcatMetadata
	if err := json.Unmarshal(out, &md); err != nil {
		t.Fatalf("kcat -L -J output: %v\n%s", err, out)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 3 || md.Brokers[0].Name != p.addr {
		t.Fatalf("brokers %+v, want node 3 at %s", md.Brokers, p.addr)
	}
	if md.ControllerID != 3 {
		t.Errorf("controller %d, want 3", md.ControllerID)
	}
	found := false
	for _, tp := range md.Topics {
		if tp.Topic != "listed" {
			continue
		}
		found = true
		if tp.Error != "" || len(tp.Partitions) != 4 {
			t.Fatalf("topic listed: error %q, %d partitions, want 4", tp.Error, len(tp.Partitions))
		}
		for _, pa := range tp.Partitions {
			if pa.Leader != 3 {
				t.Errorf("partition %d leader %d, want 3", pa.Partition, pa.Leader)
			}
		}
	}
	if !found {
		t.Fatalf("topic listed missing from kcat -L:\n%s", out)
	}
}

// kcatLines returns n "key:value" lines of varied content: separators and
// tabs inside values, multi-byte UTF-8, bytes that are not UTF-8, and long
// compressible values.
func kcatLines(n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		var v string
		switch i % 5 {
		case 0:
			v = strings.Repeat("easel snappy "+strconv.Itoa(i)+" ", 300)
		case 1:
			v = "a:b:c\twith tabs and colons " + strconv.Itoa(i*7919)
		case 2:
			v = "ünïcødé ✓ " + strconv.Itoa(i)
		case 3:
			v = "\xff\xfe\x01raw " + strconv.Itoa(i)
		case 4:
			v = strconv.Itoa(i)
		}
		lines[i] = fmt.Appendf(nil, "key-%04d:%s", i, v)
	}
	return lines
}

// TestKcatProduceConsume produces keyed, snappy-compressed records with kcat
// into auto-created topics, consumes them back with kcat, and checks they
// are byte-identical; then checks with franz-go that the batches kcat
// compressed are stored and served compressed, as produced.
func TestKcatProduceConsume(t *testing.T) {
	t.Parallel()
	kc := kcat(t)
	for _, partitions := range []int{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			t.Parallel()
			p := startEasel(t, "--data-dir", t.TempDir(), "--num-partitions", strconv.Itoa(partitions))
			ctx := testContext(t, 90*time.Second)
			const topic = "kcat-snappy"
			lines := kcatLines(250)
			in := append(bytes.Join(lines, []byte("\n")), '\n')
			runKcat(ctx, t, kc, in, "-P", "-b", p.addr, "-t", topic, "-K:", "-z", "snappy",
				"-X", "message.timeout.ms=30000")

			out := runKcat(ctx, t, kc, nil, "-C", "-b", p.addr, "-t", topic, "-o", "beginning", "-e", "-K:", "-q")
			got := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
			want := slices.Clone(lines)
			if partitions > 1 { // order is kept only within a partition
				slices.SortFunc(got, bytes.Compare)
				slices.SortFunc(want, bytes.Compare)
			}
			if len(got) != len(want) {
				t.Fatalf("consumed %d records, produced %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("record %d: consumed %q, produced %q", i, got[i], want[i])
				}
			}

			// The topic was auto-created with --num-partitions partitions and
			// holds the batches as kcat compressed them.
			cl := newClient(t, p.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			recs := consumeN(ctx, t, cl, len(lines))
			parts := make(map[int32]bool)
			for _, r := range recs {
				parts[r.Partition] = true
				// librdkafka sends a batch uncompressed when snappy does
				// not make it smaller; the long values make it smaller.
				c := r.Attrs.CompressionType()
				if c != 2 && (c != 0 || len(r.Value) > 1000) {
					t.Fatalf("record %s (%d bytes) at %d/%d: compression %d, want 2 (snappy)",
						r.Key, len(r.Value), r.Partition, r.Offset, c)
				}
			}
			td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(td[topic].Partitions); n != partitions {
				t.Fatalf("auto-created topic has %d partitions, want %d", n, partitions)
			}
			if partitions > 1 && len(parts) < 2 {
				t.Fatalf("keys went to %d partition(s) of %d", len(parts), partitions)
			}
			if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}

// consumeN polls cl until it has n records.
func consumeN(ctx context.Context, t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(recs), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		recs = append(recs, fs.Records()...)
	}
	if len(recs) > n {
		t.Fatalf("consumed %d records, want %d", len(recs), n)
	}
	return recs
}
