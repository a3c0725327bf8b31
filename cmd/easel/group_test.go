package main

// Consumer-group tests against the binary: a librdkafka group consumer
// (kcat -G) resuming from its commits, and commits surviving SIGKILL.

import (
	"bytes"
	"fmt"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceValues produces "<prefix>-<i>" for i in [from, to) and waits for
// every ack.
func produceValues(t *testing.T, cl *kgo.Client, topic, prefix string, from, to int) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var rs []*kgo.Record
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestKcatGroupResumes consumes a topic with kcat -G, produces more, and
// checks that a second run of the same group reads exactly the new records:
// librdkafka's group protocol and offset commits work against the broker.
func TestKcatGroupResumes(t *testing.T) {
	t.Parallel()
	kc := kcat(t)
	p := startEasel(t, "--data-dir", t.TempDir(), "--num-partitions", "3")
	const topic, group = "grouped", "kcat-group"
	cl := newClient(t, p.addr, kgo.AllowAutoTopicCreation())
	produceValues(t, cl, topic, "first", 0, 60)

	consume := func(want int) [][]byte {
		ctx := testContext(t, 90*time.Second)
		out := runKcat(ctx, t, kc, nil, "-b", p.addr, "-G", group, "-e", "-q", "-f", "%s\n",
			"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", topic)
		lines := bytes.Fields(out)
		if len(lines) != want {
			t.Fatalf("kcat -G read %d records, want %d:\n%s", len(lines), want, out)
		}
		return lines
	}
	first := consume(60)
	for _, l := range first {
		if !bytes.HasPrefix(l, []byte("first-")) {
			t.Fatalf("first run read %q", l)
		}
	}
	produceValues(t, cl, topic, "second", 0, 25)
	for _, l := range consume(25) {
		if !bytes.HasPrefix(l, []byte("second-")) {
			t.Fatalf("second run read %q: the group did not resume at its commits", l)
		}
	}
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// TestCommittedOffsetsSurviveKill commits offsets, kills the broker with
// SIGKILL, restarts it on the same data directory and fetches them back.
func TestCommittedOffsetsSurviveKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startEasel(t, "--data-dir", dir)
	ctx := testContext(t, time.Minute)
	adm := kadm.NewClient(newClient(t, p.addr))
	const topic, group = "committed", "kill-group"
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	want := kadm.Offsets{}
	for part := range int32(4) {
		want.Add(kadm.Offset{Topic: topic, Partition: part, At: int64(100 + part), LeaderEpoch: -1, Metadata: fmt.Sprint("m", part)})
	}
	resp, err := adm.CommitOffsets(ctx, group, want)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if code := p.signal(syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGKILL", code)
	}

	p = startEasel(t, "--data-dir", dir)
	p.waitLog(regexp.MustCompile(`msg="engine opened".* clean=false`), 30*time.Second)
	adm = kadm.NewClient(newClient(t, p.addr))
	got, err := adm.FetchOffsets(ctx, group)
	if err != nil || got.Error() != nil {
		t.Fatalf("fetch: %v %v", err, got.Error())
	}
	for part := range int32(4) {
		o, ok := got.Lookup(topic, part)
		if !ok || o.At != int64(100+part) || o.Metadata != fmt.Sprint("m", part) {
			t.Fatalf("partition %d after SIGKILL: %+v (found %v), want offset %d", part, o, ok, 100+part)
		}
	}
}
