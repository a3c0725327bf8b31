package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// Counting a request, a connection, an append and an fsync allocates
// nothing once the API key and version were seen.
func TestObserversDoNotAllocate(t *testing.T) {
	m := New()
	net, eng := m.NetObserver(), m.EngineObserver()
	net.RequestDone(0, 9, time.Millisecond, time.Millisecond, time.Millisecond) // resolves Produce v9
	allocs := testing.AllocsPerRun(1000, func() {
		net.RequestDone(0, 9, time.Microsecond, 2*time.Microsecond, 3*time.Microsecond)
		net.ConnAccepted()
		net.ConnClosed()
		eng.Appended(1024, 10)
		eng.Synced(time.Millisecond)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request counted, want 0", allocs)
	}
}

// Requests are counted by API name and version, and out-of-range keys and
// versions fall in the last slot instead of crashing.
func TestRequestLabels(t *testing.T) {
	m := New()
	o := m.NetObserver()
	o.RequestDone(1, 12, 0, time.Second, 0)
	o.RequestDone(1, 12, 0, time.Second, 0)
	o.RequestDone(-5, 999, 0, 0, 0)
	o.RequestDone(3000, 0, 0, 0, 0)
	text := expose(t, m)
	for _, want := range []string{
		`easel_requests_total{api="Fetch",version="12"} 2`,
		`easel_request_handle_seconds_count{api="Fetch"} 2`,
		`easel_requests_total{api="Produce",version="31"} 1`,
		`easel_requests_total{api="127",version="0"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// expose returns m's text exposition after checking that it parses.
func expose(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler(func() error { return nil }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(string(b))); err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, b)
	}
	return string(b)
}

// /readyz follows the ready function; /healthz is always ok.
func TestHealthEndpoints(t *testing.T) {
	m := New()
	var why error = errors.New("opening the data directory")
	srv := httptest.NewServer(m.Handler(func() error { return why }))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != "not ready: opening the data directory\n" {
		t.Fatalf("/readyz before ready: %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	why = nil
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}
}

// The scrape-time metrics of an engine: per-topic counters and log stats.
func TestEngineState(t *testing.T) {
	m := New()
	e, err := engine.Open(t.TempDir(), engine.Options{Observer: m.EngineObserver()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateTopic("t", engine.DefaultTopicConfig()); err != nil {
		t.Fatal(err)
	}
	m.Watch(Sources{Engine: e})
	if _, err := e.Produce("t", 0, recordsOf("a", "bb", "ccc")...); err != nil {
		t.Fatal(err)
	}
	text := expose(t, m)
	for _, want := range []string{
		`easel_topic_records_in_total{topic="t"} 3`,
		`easel_log_partitions{topic="t"} 1`,
		`easel_log_segments{topic="t"} 1`,
		`easel_produce_batch_records_count 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(text, "easel_consumer_groups") {
		t.Error("group metrics without a broker")
	}
}

func recordsOf(values ...string) []record.Record {
	out := make([]record.Record, len(values))
	for i, v := range values {
		out[i] = record.Record{Value: []byte(v)}
	}
	return out
}
