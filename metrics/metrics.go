package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

// namespace prefixes every metric name.
const namespace = "easel"

// Bounds of the per-request arrays: Kafka's API keys and versions stay
// below them; requests beyond are counted under the last slot's labels.
const (
	maxAPIKey     = 127
	maxAPIVersion = 31
)

// latencyBuckets are the request time histograms' bounds, in seconds: from
// a tenth of a millisecond to the 30 s of a long acks=all wait.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Metrics collects the broker's metrics in a Prometheus registry: request
// and connection metrics from netio (NetObserver), append and fsync metrics
// from the engine (EngineObserver), and, at each scrape, the state of the
// engine, broker, groups and cluster given to Watch. Go runtime and process
// collectors are registered too. All methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	net netObserver
	eng engineObserver

	mu struct {
		sync.Mutex
		src Sources
	}
}

// Sources are what the scrape-time metrics read. Nil fields are skipped.
type Sources struct {
	Engine *engine.Engine
	Broker *broker.Broker
	// Node is this broker's cluster node (a single node is a cluster of
	// one); NodeID its id.
	Node   *controller.Node
	NodeID int32
	// MinInsyncReplicas is the broker's min.insync.replicas, for topics
	// that do not set it.
	MinInsyncReplicas int
}

// New returns Metrics with every collector registered.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.net.init(m.reg)
	m.eng.init(m.reg)
	m.reg.MustRegister(&stateCollector{m: m})
	return m
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// NetObserver returns the netio.Observer to give netio.Config.
func (m *Metrics) NetObserver() netio.Observer { return &m.net }

// EngineObserver returns the engine.Observer to give engine.Options.
func (m *Metrics) EngineObserver() engine.Observer { return &m.eng }

// Watch sets what the scrape-time metrics read; it may be called again as
// the parts come up.
func (m *Metrics) Watch(src Sources) {
	m.mu.Lock()
	m.mu.src = src
	m.mu.Unlock()
}

func (m *Metrics) sources() Sources {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.src
}

// netObserver implements netio.Observer. Per request it does one array
// index and atomic loads to find the pre-resolved metrics, then atomic
// adds: no lock, no allocation (the metrics of an API key or version are
// resolved, allocating once, the first time it is seen).
type netObserver struct {
	requests *prometheus.CounterVec
	queue    *prometheus.HistogramVec
	handle   *prometheus.HistogramVec
	send     *prometheus.HistogramVec

	open              prometheus.Gauge
	accepted, refused prometheus.Counter
	apis              [maxAPIKey + 1]atomic.Pointer[apiMetrics]
	resolveMu         sync.Mutex // serialises resolving, not counting
}

// apiMetrics are one API key's pre-resolved metrics.
type apiMetrics struct {
	queue, handle, send prometheus.Observer
	versions            [maxAPIVersion + 1]atomic.Pointer[counter]
	name                string
}

// counter boxes a prometheus.Counter for atomic.Pointer.
type counter struct{ prometheus.Counter }

var _ netio.Observer = (*netObserver)(nil)

func (o *netObserver) init(reg prometheus.Registerer) {
	o.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "requests_total",
		Help: "Requests answered, by API and version (Kafka: kafka.network RequestMetrics RequestsPerSec).",
	}, []string{"api", "version"})
	hist := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: name, Help: help, Buckets: latencyBuckets,
		}, []string{"api"})
	}
	o.queue = hist("request_queue_seconds", "Time a request waited behind its connection's earlier requests before it was handled (Kafka: RequestQueueTimeMs).")
	o.handle = hist("request_handle_seconds", "Time from handling a request to its response being ready, long polls and acks=all waits included (Kafka: LocalTimeMs + RemoteTimeMs).")
	o.send = hist("request_send_seconds", "Time from a response being ready to it being on the socket (Kafka: ResponseQueueTimeMs + ResponseSendTimeMs).")
	o.open = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "connections_open",
		Help: "Client connections open (Kafka: socket-server-metrics connection-count)."})
	o.accepted = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "connections_accepted_total",
		Help: "Client connections accepted (Kafka: connection-creation-total)."})
	o.refused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "connections_refused_total",
		Help: "Client connections closed at once because max.connections were open."})
	reg.MustRegister(o.requests, o.queue, o.handle, o.send, o.open, o.accepted, o.refused)
}

// ConnAccepted implements netio.Observer.
func (o *netObserver) ConnAccepted() { o.accepted.Inc(); o.open.Inc() }

// ConnRefused implements netio.Observer.
func (o *netObserver) ConnRefused() { o.refused.Inc() }

// ConnClosed implements netio.Observer.
func (o *netObserver) ConnClosed() { o.open.Dec() }

// RequestDone implements netio.Observer.
func (o *netObserver) RequestDone(key, version int16, queue, handle, send time.Duration) {
	k := min(max(int(key), 0), maxAPIKey)
	a := o.apis[k].Load()
	if a == nil {
		a = o.resolveAPI(k)
	}
	v := min(max(int(version), 0), maxAPIVersion)
	c := a.versions[v].Load()
	if c == nil {
		c = o.resolveVersion(a, v)
	}
	c.Inc()
	a.queue.Observe(queue.Seconds())
	a.handle.Observe(handle.Seconds())
	a.send.Observe(send.Seconds())
}

// apiName is Kafka's name of an API key ("Produce"), or its number.
func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" && n != "Unknown" {
		return n
	}
	return strconv.Itoa(int(key))
}

func (o *netObserver) resolveAPI(k int) *apiMetrics {
	o.resolveMu.Lock()
	defer o.resolveMu.Unlock()
	if a := o.apis[k].Load(); a != nil {
		return a
	}
	name := apiName(int16(k))
	a := &apiMetrics{
		name:   name,
		queue:  o.queue.WithLabelValues(name),
		handle: o.handle.WithLabelValues(name),
		send:   o.send.WithLabelValues(name),
	}
	o.apis[k].Store(a)
	return a
}

func (o *netObserver) resolveVersion(a *apiMetrics, v int) *counter {
	o.resolveMu.Lock()
	defer o.resolveMu.Unlock()
	if c := a.versions[v].Load(); c != nil {
		return c
	}
	c := &counter{o.requests.WithLabelValues(a.name, strconv.Itoa(v))}
	a.versions[v].Store(c)
	return c
}

// engineObserver implements engine.Observer with pre-resolved histograms.
type engineObserver struct {
	batchBytes, batchRecords, fsync prometheus.Histogram
}

var _ engine.Observer = (*engineObserver)(nil)

func (o *engineObserver) init(reg prometheus.Registerer) {
	o.batchBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "produce_batch_bytes",
		Help:    "Sizes of the record batches appended as leader (Kafka: no direct equivalent; see BytesInPerSec).",
		Buckets: prometheus.ExponentialBuckets(64, 4, 10)})
	o.batchRecords = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "produce_batch_records",
		Help:    "Records per batch appended as leader.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	o.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "log_flush_seconds",
		Help:    "Time of each fsync of a partition log: flush.messages, flush.ms, a flush, and the background fsync of each rolled segment (Kafka: kafka.log LogFlushStats LogFlushRateAndTimeMs).",
		Buckets: latencyBuckets})
	reg.MustRegister(o.batchBytes, o.batchRecords, o.fsync)
}

// Appended implements engine.Observer.
func (o *engineObserver) Appended(bytes, records int) {
	o.batchBytes.Observe(float64(bytes))
	o.batchRecords.Observe(float64(records))
}

// Synced implements engine.Observer.
func (o *engineObserver) Synced(d time.Duration) { o.fsync.Observe(d.Seconds()) }
