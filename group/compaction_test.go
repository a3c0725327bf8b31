package group_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
)

// Log compaction through the broker, with franz-go: a compacted topic
// reads back as the latest record of each key, holes and empty batches
// included; __consumer_offsets is compacted and groups load from it.

// consumeAll reads topic partition 0 from offset from up to the high
// watermark hw with franz-go.
func consumeAll(t *testing.T, addr, topic string, from, hw int64) []*kgo.Record {
	t.Helper()
	cl := client(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %s from %d: %d records, never reached %d: %v", topic, from, len(out), hw, err)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("consume %s: %v", topic, e.Err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			done = done || r.Offset >= hw-1
		})
		if done {
			return out
		}
	}
}

func TestCompactedTopicWithFranzGo(t *testing.T) {
	s := startServer(t, t.TempDir())
	adm := kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	ctx := context.Background()
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr("1024"),
		// Not 0: the broker's CreateTopics refuses every "=0" setting.
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"), "delete.retention.ms": kadm.StringPtr("1"),
	}, "compacted")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t, s.addr, kgo.DefaultProduceTopic("compacted"))
	defer cl.Close()
	latest := map[string]string{}
	n := 0
	for v := range 8 {
		for k := range 10 {
			key := "k" + strconv.Itoa(k)
			r := &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf("%s-v%d", key, v))}
			if v == 7 && k%3 == 0 {
				r.Value = nil // the latest of k0, k3, k6 and k9 is a tombstone
			}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			latest[key] = string(r.Value)
			n++
		}
	}
	// Fill the active segment so the records above are all sealed.
	pad := make([]byte, 1100)
	rand.NewChaCha8([32]byte{1}).Read(pad) // incompressible
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("pad"), Value: pad}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n++
	// Two passes: the first gives tombstones their delete horizon (now +
	// 1 ms), the second removes them.
	for range 2 {
		if _, err := s.eng.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := consumeAll(t, s.addr, "compacted", 0, int64(n))
	seen := map[string]string{}
	prev := int64(-1)
	for _, r := range got {
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		if _, dup := seen[string(r.Key)]; dup {
			t.Fatalf("key %s read twice (offset %d)", r.Key, r.Offset)
		}
		seen[string(r.Key)] = string(r.Value)
		if r.Value == nil {
			t.Fatalf("tombstone of %s at %d still there after its delete horizon", r.Key, r.Offset)
		}
	}
	for k, v := range latest {
		if v == "" {
			if _, ok := seen[k]; ok {
				t.Fatalf("deleted key %s read back", k)
			}
			continue
		}
		if seen[k] != v {
			t.Fatalf("%s = %q, want %q", k, seen[k], v)
		}
	}
	if len(got) != 7 {
		t.Fatalf("read %d records, want the 6 live keys and the pad", len(got))
	}
	// A consumer placed where records were compacted away reads on from
	// the next one.
	mid := consumeAll(t, s.addr, "compacted", 5, int64(n))
	if len(mid) == 0 || mid[0].Offset < 5 || mid[len(mid)-1].Offset != int64(n-1) {
		t.Fatalf("from offset 5: %d records, first at %d", len(mid), mid[0].Offset)
	}
}

func TestOffsetsTopicCompacted(t *testing.T) {
	dir := t.TempDir()
	tweak := func(o *engine.Options, g *group.Config) {
		o.Defaults.DeleteRetentionMs = 1 // tombstones go at the second pass
		g.OffsetsTopicNumPartitions = 1
		g.OffsetsTopicSegmentBytes = 1024
	}
	s := startServerWith(t, dir, tweak)
	info, err := s.eng.Topic(engine.ConsumerOffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.CleanupPolicy != engine.CleanupCompact || info.Config.SegmentBytes != 1024 {
		t.Fatalf("__consumer_offsets config %+v", info.Config)
	}
	adm := kadm.NewClient(client(t, s.addr))
	ctx := context.Background()
	createTopic(t, adm, "t", 1)
	commit := func(g string, off int64) {
		t.Helper()
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: "t", Partition: 0, At: off, LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctx, g, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		commit("kept", int64(i))
		commit("gone", int64(i))
	}
	if _, err := adm.DeleteGroups(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	p, _ := s.eng.Partition(engine.ConsumerOffsetsTopic, 0)
	count := func() int {
		it := p.Records(p.StartOffset())
		defer it.Close()
		n := 0
		for it.Next() {
			n++
		}
		return n
	}
	before := count()
	time.Sleep(5 * time.Millisecond) // past the tombstones' 1 ms delete horizon after the first pass
	for range 2 {
		if _, err := s.eng.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := count()
	if after >= before/4 {
		t.Fatalf("__consumer_offsets: %d records before compaction, %d after", before, after)
	}
	adm.Close()
	s.stop()

	// The groups load from the compacted log: the latest commit of "kept",
	// nothing of the deleted "gone" (its tombstones and the format marker
	// compacted away too).
	s = startServerWith(t, dir, tweak)
	adm = kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	fetched, err := adm.FetchOffsets(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("t", 0); !ok || o.At != 199 {
		t.Fatalf("kept: %+v %v, want offset 199", o, ok)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["gone"]; ok {
		t.Fatalf("deleted group came back: %v", listed.Groups())
	}
	gone, err := adm.FetchOffsets(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := gone.Lookup("t", 0); ok && o.At >= 0 {
		t.Fatalf("deleted group's offset came back: %+v", o)
	}
	t.Logf("__consumer_offsets: %d records before compaction, %d after", before, after)
}

// A librdkafka client (kcat) writes several values per key to a compacted
// topic and, after cleaning, reads back only the latest. Skipped without
// kcat unless EASEL_REQUIRE_KCAT=1.
func TestCompactedTopicWithKcat(t *testing.T) {
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("EASEL_REQUIRE_KCAT") == "1" {
			t.Fatal("kcat is not installed and EASEL_REQUIRE_KCAT=1")
		}
		t.Skip("kcat is not installed")
	}
	s := startServer(t, t.TempDir())
	adm := kadm.NewClient(client(t, s.addr))
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr("2048"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	}, "kc")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	latest := map[string]string{}
	for v := range 6 {
		for k := range 12 {
			key, val := "key"+strconv.Itoa(k), fmt.Sprintf("value-%d-%d", k, v)
			fmt.Fprintf(&in, "%s:%s\n", key, val)
			latest[key] = val
		}
	}
	pad := make([]byte, 2100)
	for i := range pad {
		pad[i] = 'a' + byte(i*7%26)
	}
	run := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, path, append([]string{"-b", s.addr}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || strings.Contains(errb.String(), "ERROR") {
			t.Fatalf("kcat %v: %v\n%s", args, err, errb.Bytes())
		}
		return out.Bytes()
	}
	// One message per request (linger 0, batch of 1), lz4-compressed.
	run(in.Bytes(), "-P", "-t", "kc", "-K:", "-z", "lz4", "-X", "linger.ms=0", "-X", "batch.num.messages=1")
	run([]byte("pad:"+string(pad)+"\n"), "-P", "-t", "kc", "-K:", "-X", "compression.codec=none") // seals the rest
	if _, err := s.eng.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	out := run(nil, "-C", "-t", "kc", "-o", "beginning", "-e", "-K:", "-f", "%o %k=%s\n")
	got := map[string]string{}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		off, kv, _ := strings.Cut(l, " ")
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Fatalf("key %s read twice (offset %s): %q", k, off, out)
		}
		got[k] = v
	}
	for k, v := range latest {
		if got[k] != v {
			t.Fatalf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(lines) != len(latest)+1 {
		t.Fatalf("kcat read %d records, want %d", len(lines), len(latest)+1)
	}
}
