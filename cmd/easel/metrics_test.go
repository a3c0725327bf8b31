package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/record"
)

// producedBytes sums the record batch bytes franz-go reports as produced.
type producedBytes struct{ bytes, records atomic.Int64 }

func (p *producedBytes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	// CompressedBytes excludes the batch header; the broker stores and
	// counts whole batches.
	p.bytes.Add(int64(m.CompressedBytes + record.HeaderSize))
	p.records.Add(int64(m.NumRecords))
}

// scrape is one parsed /metrics exposition.
type scrape map[string]*dto.MetricFamily

// getScrape fetches and parses /metrics, failing on anything expfmt
// rejects.
func getScrape(t *testing.T, base string) scrape {
	t.Helper()
	s, err := tryScrape(base)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryScrape fetches and parses /metrics; every family must have HELP.
func tryScrape(base string) (scrape, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics does not parse: %w", err)
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			return nil, fmt.Errorf("%s has no HELP", name)
		}
	}
	return fams, nil
}

// sum adds the values of the family's series whose labels include want.
func (s scrape) sum(name string, want map[string]string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	total, found := 0.0, false
outer:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue outer
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total, found
}

func (s scrape) must(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := s.sum(name, want)
	if !ok {
		t.Fatalf("no series %s%v", name, want)
	}
	return v
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var metricsRE = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// The metrics of a broker that franz-go produces to and consumes from in a
// group move as they should: bytes and records in equal what the producer
// wrote, bytes out cover them, the group's lag is what it has not committed
// and drops to zero once it commits everything; requests, latencies and
// connections are counted; the exposition parses; /healthz and /readyz
// answer.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	p := startEasel(t, "--data-dir", t.TempDir(), "--metrics", "127.0.0.1:0", "--auto-create-topics=false")
	base := "http://" + metricsRE.FindStringSubmatch(p.waitLog(metricsRE, 10*time.Second))[1]
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	ctx := testContext(t, 90*time.Second)
	adm := kadm.NewClient(newClient(t, p.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "m"); err != nil {
		t.Fatal(err)
	}
	// Ready once serving, and the topic's partitions hosted.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := httpGet(t, base+"/readyz")
		if code == 200 && body == "ready\n" {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	const n = 300
	hook := &producedBytes{}
	prod := newClient(t, p.addr, kgo.WithHooks(hook), kgo.DefaultProduceTopic("m"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(0))
	for i := range n {
		r := &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(strings.Repeat("v", 10+i%50))}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s := getScrape(t, base)
	if got := s.must(t, "easel_topic_bytes_in_total", map[string]string{"topic": "m"}); got != float64(hook.bytes.Load()) {
		t.Errorf("bytes in %v, producer wrote %d", got, hook.bytes.Load())
	}
	if got := s.must(t, "easel_topic_records_in_total", map[string]string{"topic": "m"}); got != n || hook.records.Load() != n {
		t.Errorf("records in %v, producer wrote %d, want %d", got, hook.records.Load(), n)
	}
	if got := s.must(t, "easel_log_size_bytes", map[string]string{"topic": "m"}); got != float64(hook.bytes.Load()) {
		t.Errorf("log size %v, producer wrote %d", got, hook.bytes.Load())
	}
	if got := s.must(t, "easel_log_partitions", map[string]string{"topic": "m"}); got != 2 {
		t.Errorf("log partitions %v, want 2", got)
	}
	if got := s.must(t, "easel_requests_total", map[string]string{"api": "Produce"}); got < n {
		t.Errorf("produce requests %v, want at least %d", got, n)
	}
	if got := s.must(t, "easel_request_handle_seconds", map[string]string{"api": "Produce"}); got < n {
		t.Errorf("produce handle-time samples %v, want at least %d", got, n)
	}
	if got := s.must(t, "easel_produce_batch_bytes", nil); got < n {
		t.Errorf("batch size samples %v, want at least %d", got, n)
	}
	if got := s.must(t, "easel_connections_open", nil); got < 2 {
		t.Errorf("connections open %v, want the admin's and the producer's", got)
	}
	if got := s.must(t, "easel_cluster_active_controller", nil); got != 1 {
		t.Errorf("a single node is its controller; got %v", got)
	}
	if got := s.must(t, "easel_cluster_under_replicated_partitions", nil); got != 0 {
		t.Errorf("under-replicated partitions %v", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "easel_cluster_metadata_applied_index", "easel_cluster_offline_partitions"} {
		if _, ok := s.sum(name, nil); !ok {
			t.Errorf("no %s", name)
		}
	}

	// A group member consumes everything but commits only the first 100
	// records it got: the lag is the rest.
	cons := newClient(t, p.addr, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("m"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", len(got), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		got = append(got, fs.Records()...)
	}
	if err := cons.CommitRecords(ctx, got[:100]...); err != nil {
		t.Fatal(err)
	}
	lag := func() float64 {
		v, _ := getScrape(t, base).sum("easel_consumer_group_lag", map[string]string{"group": "g"})
		return v
	}
	// Per partition: the records it holds (its high watermark) less the
	// offset committed, for the partitions a commit covers.
	hw, committed := map[int32]int64{}, map[int32]int64{}
	for i, r := range got {
		hw[r.Partition] = max(hw[r.Partition], r.Offset+1)
		if i < 100 {
			committed[r.Partition] = max(committed[r.Partition], r.Offset+1)
		}
	}
	wantLag := int64(0)
	for p, c := range committed {
		wantLag += hw[p] - c
	}
	if l := lag(); l != float64(wantLag) || wantLag == 0 {
		t.Errorf("lag %v after committing 100 of %d records, want %d (and not 0)", l, n, wantLag)
	}
	s = getScrape(t, base)
	if got := s.must(t, "easel_consumer_groups", map[string]string{"state": "Stable"}); got != 1 {
		t.Errorf("stable groups %v, want 1", got)
	}
	if got := s.must(t, "easel_consumer_group_members", map[string]string{"group": "g"}); got != 1 {
		t.Errorf("members of g %v, want 1", got)
	}
	if out := s.must(t, "easel_topic_bytes_out_total", map[string]string{"topic": "m"}); out < float64(hook.bytes.Load()) {
		t.Errorf("bytes out %v, less than the %d the consumer read", out, hook.bytes.Load())
	}
	if out := s.must(t, "easel_topic_records_out_total", map[string]string{"topic": "m"}); out < n {
		t.Errorf("records out %v, less than the %v the consumer read", out, n)
	}
	if got := s.must(t, "easel_requests_total", map[string]string{"api": "Fetch"}); got < 1 {
		t.Errorf("fetch requests %v", got)
	}
	// Caught up: lag drops to zero.
	if err := cons.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if l := lag(); l != 0 {
		t.Errorf("lag %v after committing everything, want 0", l)
	}
	cons.Close()

	// A client's own mistake is counted by API and error code.
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "m")
	if err == nil {
		t.Fatalf("creating m again: %v", err)
	}
	if got := getScrape(t, base).must(t, "easel_request_errors_total", map[string]string{"api": "CreateTopics", "error": "TOPIC_ALREADY_EXISTS"}); got != 1 {
		t.Errorf("CreateTopics TOPIC_ALREADY_EXISTS errors %v, want 1", got)
	}

	// Shutting down: no longer ready.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("metrics still served after exit")
	}
}

// The cluster metrics of three brokers follow a SIGKILL and a restart: all
// in sync at first with one controller; once a broker dies its partners'
// partitions are under-replicated (ISR shrinks counted) and it is fenced;
// back again, it catches up (ISR expands counted) and nothing is
// under-replicated. No partition goes offline.
func TestClusterMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers")
	}
	c := newProcAddrs(t, 1, 2, 3)
	met := map[int32]string{}
	for _, id := range c.ids {
		met[id] = "http://" + freeAddr(t)
		c.extra[id] = []string{"--metrics", strings.TrimPrefix(met[id], "http://")}
	}
	for _, id := range c.ids {
		c.start(id)
	}
	ctx := testContext(t, 120*time.Second)
	adm := kadm.NewClient(c.client())
	createClusterTopic(ctx, t, adm, "h", 6, nil)
	prod := c.client(kgo.DefaultProduceTopic("h"))
	for i := range 30 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// total sums a metric over the live brokers; ok is false if one could
	// not be scraped.
	total := func(name string, labels map[string]string) (float64, bool) {
		sum := 0.0
		for id := range c.procs {
			s, err := tryScrape(met[id])
			if err != nil {
				return 0, false
			}
			v, _ := s.sum(name, labels)
			sum += v
		}
		return sum, true
	}
	is := func(name string, labels map[string]string, cond func(float64) bool) func() bool {
		return func() bool {
			v, ok := total(name, labels)
			return ok && cond(v)
		}
	}
	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	waitUntil(ctx, t, "every partition led and in sync", func() bool {
		return is("easel_cluster_leader_partitions", nil, func(v float64) bool { return v >= 6 })() &&
			is("easel_cluster_under_replicated_partitions", nil, eq(0))() &&
			is("easel_cluster_active_controller", nil, eq(1))()
	})
	for id := range c.procs {
		if code, body := httpGet(t, met[id]+"/readyz"); code != 200 {
			t.Fatalf("broker %d /readyz: %d %q", id, code, body)
		}
	}
	if v, _ := total("easel_topic_replication_bytes_in_total", map[string]string{"topic": "h"}); v == 0 {
		t.Error("no replication bytes in")
	}
	// A group that consumed and committed everything: its coordinator
	// reports the committed offsets and no lag.
	cons := c.client(kgo.ConsumerGroup("cg"), kgo.ConsumeTopics("h"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < 30 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 30: %v", len(got), err)
		}
		got = append(got, fs.Records()...)
	}
	if err := cons.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	waitUntil(ctx, t, "the group's 30 records committed, with no lag", func() bool {
		// The committed offset of a partition is the count of its records.
		return is("easel_consumer_group_committed_offset", map[string]string{"group": "cg"}, eq(30))() &&
			is("easel_consumer_group_lag", map[string]string{"group": "cg"}, eq(0))() &&
			is("easel_consumer_groups", map[string]string{"state": "Stable"}, eq(1))()
	})
	// Every committed partition has its lag reported (each broker hosts a
	// replica of every partition), not just a missing series read as 0.
	lags, commits := 0, 0
	for id := range c.procs {
		s := getScrape(t, met[id])
		lags += len(s["easel_consumer_group_lag"].GetMetric())
		commits += len(s["easel_consumer_group_committed_offset"].GetMetric())
	}
	if commits == 0 || lags != commits {
		t.Errorf("%d lag series for %d committed partitions", lags, commits)
	}
	cons.Close()

	c.kill(3)
	waitUntil(ctx, t, "the dead broker fenced, its partners' partitions under-replicated", func() bool {
		return is("easel_cluster_brokers", map[string]string{"fenced": "true"}, eq(2))() && // as both survivors see it
			is("easel_cluster_under_replicated_partitions", nil, func(v float64) bool { return v > 0 })() &&
			is("easel_isr_shrinks_total", nil, func(v float64) bool { return v > 0 })()
	})
	if v, _ := total("easel_cluster_offline_partitions", nil); v != 0 {
		t.Errorf("offline partitions %v with two of three replicas alive", v)
	}
	c.start(3)
	waitUntil(ctx, t, "the broker back in every ISR", func() bool {
		return is("easel_cluster_under_replicated_partitions", nil, eq(0))() &&
			is("easel_isr_expands_total", nil, func(v float64) bool { return v > 0 })() &&
			is("easel_cluster_brokers", map[string]string{"fenced": "true"}, eq(0))()
	})
}
