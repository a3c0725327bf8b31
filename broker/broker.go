package broker

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/internal/kclient"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/replica"
)

// Config configures a Broker. The zero value is a valid single-node broker
// with node id 0 that advertises the address each client connected to.
type Config struct {
	// NodeID is Kafka's node.id (broker.id): the id of this broker in
	// Metadata, the leader and only replica of every partition, and the
	// controller. Default 0.
	NodeID int32

	// Host and Port are the advertised address returned in Metadata
	// (advertised.listeners). An empty Host or a zero Port is replaced by the
	// local address of the connection the request came on, which is right
	// for clients on the same network but not behind NAT or a proxy.
	Host string
	Port int32

	// AutoCreateTopics is auto.create.topics.enable: Metadata requests for an
	// unknown topic create it (Metadata v4+ only when the client allows it
	// too). Default false.
	AutoCreateTopics bool

	// NumPartitions is num.partitions: the partition count of auto-created
	// topics and of CreateTopics requests that ask for -1. Values < 1 mean 1.
	NumPartitions int32

	// DataDir is where the broker keeps its own small state: the cluster id
	// and the high-water mark of handed-out producer ids (files
	// broker.cluster-id and broker.producer-id; see the package doc). It may
	// be the engine's data directory. Empty keeps nothing: the cluster id is
	// then the constant "easel" and producer ids are seeded from the clock
	// (unique across restarts unless the clock goes back or more than a
	// million ids a second are handed out).
	DataDir string

	// Logger receives a line for each rejected request or input. Default
	// slog.Default().
	Logger *slog.Logger

	// Group configures the consumer-group coordinator (timeouts, retention
	// of committed offsets, limits). Its NodeID, Host, Port and Logger are
	// taken from the fields above, and in a cluster its Locate too.
	Group group.Config

	// Cluster, when set, makes the broker a member of a cluster (see
	// cluster.go): it answers from the node's copy of the metadata log, the
	// controller decides topics, and the broker hosts the partitions the
	// metadata assigns to it, replicating them (package replica follows the
	// leaders; isr.go is the leader side). The engine must be opened with
	// engine.Options.ExternalMetadata and ManagedHighWatermarks, NodeID must
	// be the node's id, and
	// producer ids come from the controller (DataDir's files are not used).
	// The caller starts the node before New and shuts it down after Close.
	Cluster *controller.Node

	// ReplicaLagTimeMax is replica.lag.time.max.ms: a follower not caught
	// up for this long leaves the ISR (cluster only). Default 30 s.
	ReplicaLagTimeMax time.Duration
	// MinInsyncReplicas is the broker's min.insync.replicas, for topics
	// that do not set it: an acks=all produce needs that many replicas in
	// the ISR (cluster only). Default 1.
	MinInsyncReplicas int
	// ReplicaFetch tunes the follower fetchers (cluster only): MaxWait,
	// MinBytes, MaxBytes, PartitionMaxBytes, Backoff and RequestTimeout
	// (replica.fetch.* and replica.socket.timeout.ms); zero values take
	// package replica's defaults. The broker sets the other fields.
	ReplicaFetch replica.Config

	// Dial, if set, opens the broker's connections to other brokers (the
	// follower fetches; cluster only). Default net.Dialer. Tests wrap it to
	// cut links.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Broker serves the Kafka API over an engine. It implements netio.Handler.
// All methods are safe for concurrent use.
type Broker struct {
	eng       *engine.Engine
	cfg       Config
	log       *slog.Logger
	clusterID string
	pids      pidAllocator
	groups    *group.Coordinator

	node *controller.Node // nil on a single node (Config.Cluster)
	// passed is closed, and replaced, after each pass of the hosting loop
	// (cluster only; see waitHosted).
	passed struct {
		sync.Mutex
		ch chan struct{}
	}
	// hostedAll is closed after the first hosting pass that hosted every
	// partition the metadata assigns here (cluster only; see Hosted).
	hostedAll chan struct{}
	// hostingDone is closed when runHosting has returned, lagDone when
	// the ISR lag check has (cluster only).
	hostingDone, lagDone chan struct{}
	// isr is the leader side of replication (cluster only; isr.go), and
	// fetchers the follower side (package replica).
	isr      *isrTracker
	fetchers *replica.Fetchers
	kc       *kclient.Client // the fetchers' client when Config.Dial is set
	// creatingOffsets is set while a request to create __consumer_offsets
	// is on its way to the controller (cluster only; see locateCoordinator).
	creatingOffsets atomic.Bool

	closed    chan struct{} // closed by Close: long polls return at once
	closeOnce sync.Once
	parked    parkedSet // deferred requests waiting in the purgatory (purgatory.go)
	counters  stats     // for metrics (stats.go)
}

var _ netio.Handler = (*Broker)(nil)

// New returns a Broker serving eng. It never fails: problems with
// cfg.DataDir are logged and surface as errors of the requests that need it
// (InitProducerId).
func New(eng *engine.Engine, cfg Config) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NumPartitions < 1 {
		cfg.NumPartitions = 1
	}
	b := &Broker{
		eng:    eng,
		cfg:    cfg,
		log:    cfg.Logger,
		closed: make(chan struct{}),
	}
	gc := cfg.Group
	gc.NodeID, gc.Host, gc.Port, gc.Logger = cfg.NodeID, "", 0, cfg.Logger // the address comes per connection (advertised)
	if cfg.Cluster != nil {
		b.node = cfg.Cluster
		b.hostingDone = make(chan struct{})
		b.passed.ch = make(chan struct{})
		b.hostedAll = make(chan struct{})
		if gc.OffsetsTopicNumPartitions <= 0 {
			gc.OffsetsTopicNumPartitions = group.DefaultOffsetsTopicNumPartitions
		}
		b.isr = newISRTracker(b, cfg.ReplicaLagTimeMax, cfg.MinInsyncReplicas)
		rc := cfg.ReplicaFetch
		rc.NodeID, rc.Engine, rc.Logger, rc.Request = cfg.NodeID, eng, cfg.Logger, nil
		if cfg.Dial != nil {
			b.kc = kclient.New(kclient.Config{ClientID: "easel-replica", Dial: cfg.Dial, Logger: cfg.Logger})
			rc.Request = b.kc.Request
		}
		b.fetchers = replica.New(rc)
		b.lagDone = make(chan struct{})
		go b.isr.runLagCheck(b.lagDone)
		gc.Locate = b.locateCoordinator
		gc.HasPartition = func(topic string, partition int32) bool {
			_, known := b.leaderIn(topic, partition)
			return known
		}
		b.groups = group.New(eng, gc)
		go b.runHosting()
		return b
	}
	b.clusterID = loadClusterID(cfg.DataDir, b.log)
	b.pids.init(cfg.DataDir)
	b.groups = group.New(eng, gc)
	return b
}

// Close answers every parked request at once and returns when they have
// been answered, so that a server shutdown need not wait for them: waiting
// fetches with what there is, waiting acks=all produces with
// NOT_LEADER_OR_FOLLOWER (retriable) for the partitions not yet committed;
// later fetches do not wait. It closes the group coordinator too: waiting
// JoinGroup and SyncGroup requests, and later group requests, get
// NOT_COORDINATOR. The broker keeps serving other requests; it does not
// close the engine.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.closed)
		if b.hostingDone != nil {
			<-b.hostingDone
			<-b.lagDone
			b.fetchers.Close()
			if b.kc != nil {
				b.kc.Close()
			}
		}
		b.groups.Close()
		b.parked.close()
	})
}

// Hosted is closed once the broker, in a cluster, is caught up on the
// metadata and hosts every partition the metadata assigns to it, as leader
// or follower in its epoch: a broker that starts serving after it answers
// its first requests as it will from then on. Without Config.Cluster it is
// closed at once.
func (b *Broker) Hosted() <-chan struct{} {
	if b.hostedAll == nil {
		return closedChan
	}
	return b.hostedAll
}

// closedChan is a closed channel.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
