package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/gossip"
	"github.com/easel-io/easel/metrics"
	"github.com/easel-io/easel/netio"
)

// lateHandler forwards to a Broker that is created after the listener is
// bound, because the broker must know the port it advertises and --listen
// may ask for any free port. It is set before Serve starts and never after.
type lateHandler struct{ b *broker.Broker }

func (h *lateHandler) Handle(ctx context.Context, req *netio.Request) netio.Response {
	return h.b.Handle(ctx, req)
}

// run serves Kafka clients with cfg until ctx is cancelled, then shuts down
// gracefully: it stops accepting connections and reading requests, ends long
// polls, lets in-flight requests finish (up to cfg.ShutdownTimeout) and
// closes the engine, which flushes and marks the shutdown clean.
func run(ctx context.Context, cfg config, log *slog.Logger) (err error) {
	// With --metrics, /metrics, /healthz and /readyz are served from the
	// start: /readyz says what the broker is waiting for until it serves.
	ready := newReadiness()
	var met *metrics.Metrics
	netCfg := cfg.Net
	netCfg.Addr, netCfg.MaxConns, netCfg.Logger = cfg.Listen, cfg.MaxConnections, log
	engOpts := cfg.engineOptions(log)
	engOpts.ExternalMetadata, engOpts.ManagedHighWatermarks = true, true
	if cfg.Metrics != "" {
		met = metrics.New()
		metricsSrv, err := startMetrics(cfg.Metrics, met, ready, log)
		if err != nil {
			return err
		}
		defer metricsSrv.Close()
		netCfg.Observer = met.NetObserver()
		engOpts.Observer = met.EngineObserver()
	}
	// Bind first: a busy port fails fast, before a possibly long recovery.
	// Connections wait in the listen backlog until Serve starts.
	h := &lateHandler{}
	srv, err := netio.Listen(netCfg, h)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	host, port, err := advertisedAddr(cfg, srv.Addr(), os.Hostname)
	if err != nil {
		srv.Close()
		return err
	}
	// Without --controller-voters the broker is a cluster of one (see
	// single.go); a data directory of an older single node is imported.
	clustered := len(cfg.Cluster.Voters) > 0
	var legacy *legacyData
	if !clustered {
		if legacy, err = readLegacy(cfg, log); err != nil {
			srv.Close()
			return err
		}
	}
	ready.set(errors.New("opening the data directory"))
	eng, err := engine.Open(cfg.DataDir, engOpts)
	if err != nil {
		srv.Close()
		return fmt.Errorf("open data dir %s: %w", cfg.DataDir, err)
	}
	defer func() {
		if eng == nil { // closed by the graceful shutdown below
			return
		}
		if cerr := eng.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close engine: %w", cerr))
		}
	}()
	ready.set(errors.New("starting the cluster node"))
	node, err := startNode(cfg, host, port, log, legacy)
	if err != nil {
		srv.Close()
		return err
	}
	defer node.Close()
	offsetsPartitions := cfg.OffsetsTopicPartitions
	if !clustered {
		// A cluster of one is ready once its raft node has elected itself
		// and registered and unfenced its broker (well under a second):
		// serve only then, so that the first requests find their leaders.
		if err := waitSingleNode(ctx, cfg, node, legacy); err != nil {
			srv.Close()
			return err
		}
		// An existing __consumer_offsets keeps its partition count.
		node.View(func(s *cluster.State) {
			if t := s.Topic(engine.ConsumerOffsetsTopic); t != nil {
				offsetsPartitions = t.Partitions
			}
		})
	}
	groupCfg := cfg.Group
	groupCfg.OffsetsTopicNumPartitions = offsetsPartitions
	h.b = broker.New(eng, broker.Config{
		NodeID:            cfg.NodeID,
		Host:              host,
		Port:              port,
		AutoCreateTopics:  cfg.AutoCreateTopics,
		NumPartitions:     cfg.Topic.Partitions,
		Logger:            log,
		Group:             groupCfg,
		Cluster:           node,
		MinInsyncReplicas: cfg.Cluster.MinInsyncReplicas,
		ReplicaLagTimeMax: cfg.Cluster.ReplicaLagTimeMax,
		ReplicaFetch:      cfg.Cluster.ReplicaFetch,
	})
	if met != nil {
		met.Watch(metrics.Sources{Engine: eng, Broker: h.b, Node: node, NodeID: cfg.NodeID, MinInsyncReplicas: cfg.Cluster.MinInsyncReplicas})
	}
	ready.set(errors.New("hosting the partitions"))
	if !clustered {
		// Serve once the partitions are open as leaders, so that the first
		// requests find them (a cluster's brokers serve at once: Metadata
		// sends clients to the brokers that are ready).
		select {
		case <-h.b.Hosted():
		case <-time.After(singleNodeStartTimeout):
			log.Warn("not every partition is open yet; serving anyway", "after", singleNodeStartTimeout)
		case <-ctx.Done():
		}
	}
	if err := h.b.Groups().Err(); err != nil {
		// A __consumer_offsets that cannot be used (or migrated) would
		// leave every consumer group without a coordinator: refuse to
		// start, with the coordinator's explanation of what to do.
		srv.Close()
		h.b.Close()
		return fmt.Errorf("consumer groups: %w", err)
	}

	var pprofSrv *http.Server
	if cfg.Pprof != "" {
		if pprofSrv, err = startPprof(cfg.Pprof, log); err != nil {
			srv.Close()
			h.b.Close()
			return err
		}
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	ready.serving(node, h.b)
	dir, _ := filepath.Abs(cfg.DataDir)
	log.Info("easel started",
		"listen", srv.Addr().String(),
		"advertise", net.JoinHostPort(host, strconv.Itoa(int(port))),
		"data_dir", dir,
		"node_id", cfg.NodeID,
		"auto_create_topics", cfg.AutoCreateTopics,
		"num_partitions", cfg.Topic.Partitions)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		// Serve returns early only if accepting failed.
		runErr = fmt.Errorf("serve: %w", err)
		serveErr = nil
	}
	start := time.Now()
	ready.set(errors.New("shutting down"))
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if clustered {
		// Controlled shutdown first, while still serving: the controller
		// moves this broker's leaderships away, so clients and followers
		// move on before it stops. (A cluster of one has nobody to hand
		// them to.)
		if err := node.Shutdown(sctx); err != nil {
			log.Warn("controlled shutdown did not complete", "err", err)
		}
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	h.b.Close() // ends long polls so that Shutdown need not wait them out
	if err := <-shut; err != nil {
		log.Warn("in-flight requests did not finish in time; connections closed", "err", err)
	}
	if serveErr != nil {
		if err := <-serveErr; err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("serve: %w", err))
		}
	}
	if pprofSrv != nil {
		if err := pprofSrv.Shutdown(sctx); err != nil {
			pprofSrv.Close()
		}
	}
	node.Close()
	if cerr := eng.Close(); cerr != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close engine: %w", cerr))
	} else {
		log.Info("shutdown complete", "clean", true, "took", time.Since(start))
	}
	eng = nil
	return runErr
}

// startPprof serves net/http/pprof's handlers at /debug/pprof/ on addr.
func startPprof(addr string, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "err", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return hs, nil
}

// metadataDir is where a cluster member keeps its raft state, inside the
// data directory (a name the engine never takes for a partition log).
const metadataDir = "__cluster_metadata"

// startNode starts this broker's part in the cluster: raft on the metadata
// log and, in a real cluster, gossip. A cluster of one runs its single
// voter on an in-process transport, without gossip, and imports legacy's
// topics.
func startNode(cfg config, host string, port int32, log *slog.Logger, legacy *legacyData) (*controller.Node, error) {
	c := cfg.Cluster
	ncfg := controller.Config{
		Broker: cluster.BrokerInfo{
			ID:       cfg.NodeID,
			Host:     host,
			Port:     port,
			RaftAddr: c.RaftListen,
			Rack:     c.Rack,
		},
		Dir:       filepath.Join(cfg.DataDir, metadataDir),
		Voters:    c.Voters,
		ClusterID: c.ClusterID,
		Policy: cluster.Policy{
			DefaultPartitions:        cfg.Topic.Partitions,
			DefaultReplicationFactor: c.DefaultReplicationFactor,
		},
		Raft:   controller.DefaultRaftTiming(),
		Logger: log,
	}
	if len(c.Voters) == 0 {
		ncfg.Voters = []controller.Voter{{ID: cfg.NodeID, Addr: singleNodeRaftAddr}}
		ncfg.Broker.RaftAddr = singleNodeRaftAddr
		_, ncfg.RaftTransport = raft.NewInmemTransport(singleNodeRaftAddr)
		// No network: a lone voter elects itself after one heartbeat
		// timeout, and nothing can flap.
		ncfg.Raft = controller.FastRaftTiming()
		if legacy != nil {
			ncfg.ClusterID, ncfg.NextProducerID = legacy.clusterID, legacy.nextPID
			ncfg.Import = legacy.importRecords(cfg.NodeID)
		}
	} else {
		g := gossip.DefaultConfig()
		if c.Timing == "fast" {
			g = gossip.FastConfig()
			ncfg.Raft = controller.FastRaftTiming()
		}
		g.BindAddr = c.GossipListen
		g.Seeds = c.Join
		g.Logger = log
		ncfg.Gossip = g
	}
	node, err := controller.Start(ncfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if len(c.Voters) > 0 {
		log.Info("cluster member started", "voters", controller.FormatVoters(c.Voters), "raft", c.RaftListen, "gossip", c.GossipListen, "join", c.Join)
	}
	return node, nil
}

// singleNodeStartTimeout bounds how long a cluster of one may take to elect
// itself and unfence its broker.
const singleNodeStartTimeout = time.Minute

// waitSingleNode waits until a cluster of one is ready and, for a legacy
// data directory, its topics are in the metadata log.
func waitSingleNode(ctx context.Context, cfg config, node *controller.Node, legacy *legacyData) error {
	ctx, cancel := context.WithTimeout(ctx, singleNodeStartTimeout)
	defer cancel()
	select {
	case <-node.Ready():
	case <-ctx.Done():
		if err := node.Err(); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		return fmt.Errorf("cluster: the single node did not become ready: %w", ctx.Err())
	}
	if legacy == nil {
		return nil
	}
	has := func(name string) (ok bool) {
		node.View(func(s *cluster.State) { ok = s.Topic(name) != nil })
		return ok
	}
	return finishLegacy(ctx, cfg, legacy, has, node.Changed)
}
