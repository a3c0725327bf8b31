package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
)

// envPrefix starts the name of the environment variable that can set each
// flag: --data-dir is EASEL_DATA_DIR. A flag given on the command line wins.
const envPrefix = "EASEL_"

// Defaults of the flags that are not per-topic engine settings.
const (
	defaultListen          = "127.0.0.1:9092"
	defaultDataDir         = "easel-data"
	defaultMaxConnections  = 10000
	defaultShutdownTimeout = 10 * time.Second
)

// errUsage marks a configuration error: the process exits with status 2.
var errUsage = errors.New("easel: bad configuration")

// config is the broker's whole configuration, as parsed from flags and
// environment.
type config struct {
	// Listen is the TCP address the broker binds (host:port; port 0 picks a
	// free port).
	Listen string
	// Advertise is the host:port given to clients in Metadata; empty means
	// derived from the bound address (see advertisedAddr).
	Advertise string
	// DataDir is the engine's data directory.
	DataDir string
	// NodeID is this broker's Kafka node id (node.id). Invariant: >= 0.
	NodeID int32
	// AutoCreateTopics creates unknown topics on first use
	// (auto.create.topics.enable).
	AutoCreateTopics bool
	// Topic holds the defaults of every created topic; Topic.Partitions is
	// num.partitions. Invariant: Topic.Validate() == nil.
	Topic engine.TopicConfig
	// MaxConnections bounds open client connections; negative means no limit.
	// Invariant: != 0.
	MaxConnections int
	// ShutdownTimeout bounds how long a graceful shutdown waits for in-flight
	// requests before closing connections.
	ShutdownTimeout time.Duration
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// Pprof is the address of the net/http/pprof endpoint; empty disables it.
	Pprof string
	// OffsetsTopicPartitions is offsets.topic.num.partitions: the partition
	// count of __consumer_offsets when it is created. Invariant: >= 1.
	OffsetsTopicPartitions int32

	// Cluster holds the cluster settings; Cluster.Voters empty means a
	// single node.
	Cluster clusterConfig
}

// clusterConfig is what makes the broker a member of a cluster.
type clusterConfig struct {
	// Voters are the raft voters (controller.quorum.voters): the
	// controller-eligible brokers and their raft addresses.
	Voters []controller.Voter
	// RaftListen is the raft address this broker binds; default its voter
	// address, required for a broker that is not a voter.
	RaftListen string
	// GossipListen is the gossip (memberlist) address; Join the gossip
	// addresses of other brokers to join.
	GossipListen string
	Join         []string
	// Rack is broker.rack.
	Rack string
	// ClusterID is the cluster's id; empty derives one from the voters.
	ClusterID string
	// DefaultReplicationFactor is default.replication.factor.
	DefaultReplicationFactor int16
	// MinInsyncReplicas is min.insync.replicas for topics that do not set
	// it; ReplicaLagTimeMax is replica.lag.time.max.ms.
	MinInsyncReplicas int
	ReplicaLagTimeMax time.Duration
	// Timing is "default" (production failure detection and elections) or
	// "fast" (loopback tests).
	Timing string
}

// levelFlag is a flag.Value for a slog.Level ("debug", "info", "warn",
// "error", case-insensitive).
type levelFlag struct{ l *slog.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.ToLower(f.l.String())
}

func (f levelFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return f.l.UnmarshalText([]byte(s))
	}
	return errors.New("want debug, info, warn or error")
}

// envName returns the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseConfig parses the command-line arguments args, falling back to the
// environment (read with lookupEnv) for every flag not given. On -h or -help
// it writes the usage to usage and returns flag.ErrHelp; every other failure
// wraps errUsage.
func parseConfig(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (config, error) {
	def := engine.DefaultTopicConfig()
	cfg := config{LogLevel: slog.LevelInfo, Topic: def}
	fs := flag.NewFlagSet("easel", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseConfig's caller reports errors

	fs.StringVar(&cfg.Listen, "listen", defaultListen, "`host:port` to listen on for Kafka clients; port 0 picks a free port")
	fs.StringVar(&cfg.Advertise, "advertise", "", "`host:port` given to clients in Metadata (default: the listen address; the machine's hostname if listening on all interfaces)")
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDataDir, "`directory` holding the data (created if missing)")
	nodeID := fs.Int64("node-id", 0, "this broker's Kafka node id (node.id)")
	fs.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", true, "create unknown topics on first use (auto.create.topics.enable)")
	partitions := fs.Int64("num-partitions", int64(def.Partitions), "partitions of an auto-created topic, and of CreateTopics requests asking for the default (num.partitions)")
	fs.Int64Var(&cfg.Topic.SegmentBytes, "segment-bytes", def.SegmentBytes, "default segment.bytes: roll a segment once it holds this many bytes")
	fs.Int64Var(&cfg.Topic.SegmentMs, "segment-ms", def.SegmentMs, "default segment.ms: roll a segment when its first append is this many milliseconds old")
	fs.Int64Var(&cfg.Topic.RetentionMs, "retention-ms", def.RetentionMs, "default retention.ms: delete segments whose newest record is older (milliseconds; -1 keeps everything)")
	fs.Int64Var(&cfg.Topic.RetentionBytes, "retention-bytes", def.RetentionBytes, "default retention.bytes: delete the oldest segments while a partition is bigger (-1: no limit)")
	fs.Int64Var(&cfg.Topic.FlushMessages, "flush-messages", def.FlushMessages, "default flush.messages: fsync after this many records (1: every acknowledged produce is on disk)")
	fs.Int64Var(&cfg.Topic.FlushMs, "flush-ms", def.FlushMs, "default flush.ms: fsync when the oldest unflushed append is this many milliseconds old")
	maxMsg := fs.Int64("max-message-bytes", int64(def.MaxMessageBytes), "default max.message.bytes: the largest record batch accepted")
	fs.IntVar(&cfg.MaxConnections, "max-connections", defaultMaxConnections, "most open client connections; 0 or negative: no limit")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "on SIGTERM or SIGINT, how long to let in-flight requests finish before closing connections")
	fs.Var(levelFlag{&cfg.LogLevel}, "log-level", "least severe `level` logged: debug, info, warn or error")
	offsetsParts := fs.Int64("offsets-topic-num-partitions", int64(group.DefaultOffsetsTopicNumPartitions), "partitions of __consumer_offsets when it is created (offsets.topic.num.partitions); an existing topic keeps its count")
	fs.StringVar(&cfg.Pprof, "pprof", "", "`host:port` for a net/http/pprof endpoint at /debug/pprof/ (default off; keep it on loopback)")
	voters := fs.String("controller-voters", "", "raft voters of a cluster, `id@host:port,...` (controller.quorum.voters); empty runs a single node")
	fs.StringVar(&cfg.Cluster.RaftListen, "raft-listen", "", "`host:port` of this broker's raft transport (default: its --controller-voters address; required if it is not a voter)")
	fs.StringVar(&cfg.Cluster.GossipListen, "gossip-listen", "", "`host:port` of this broker's gossip (membership and failure detection), TCP and UDP; required in a cluster")
	join := fs.String("join", "", "gossip addresses of other brokers to join, `host:port,...`")
	fs.StringVar(&cfg.Cluster.Rack, "rack", "", "this broker's rack (broker.rack): replicas are spread over racks")
	fs.StringVar(&cfg.Cluster.ClusterID, "cluster-id", "", "the cluster's id (default: derived from --controller-voters, the same on every broker)")
	rf := fs.Int64("default-replication-factor", 1, "replication factor of auto-created topics and of CreateTopics requests asking for the default (default.replication.factor)")
	fs.IntVar(&cfg.Cluster.MinInsyncReplicas, "min-insync-replicas", 1, "min.insync.replicas of topics that do not set it: an acks=all produce needs that many in-sync replicas")
	fs.DurationVar(&cfg.Cluster.ReplicaLagTimeMax, "replica-lag-time-max", 30*time.Second, "replica.lag.time.max.ms: a follower not caught up for this long leaves the ISR")
	fs.StringVar(&cfg.Cluster.Timing, "cluster-timing", "default", "failure detection and election timing: default (a dead broker is found in about 2-3 s) or fast (under a second; loopback tests only, it flaps under load)")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " [" + envName(f.Name) + "]" })

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, usage)
			return config{}, err
		}
		return config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected argument %q (all settings are flags)", errUsage, fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		name := envName(f.Name)
		if v, ok := lookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%w: invalid value %q for %s: %v", errUsage, v, name, err)
			}
		}
	})
	if envErr != nil {
		return config{}, envErr
	}

	if *nodeID < 0 || *nodeID > math.MaxInt32 {
		return config{}, fmt.Errorf("%w: --node-id %d not in 0..%d", errUsage, *nodeID, math.MaxInt32)
	}
	cfg.NodeID = int32(*nodeID)
	if *partitions < 1 || *partitions > math.MaxInt32 {
		return config{}, fmt.Errorf("%w: --num-partitions %d must be at least 1", errUsage, *partitions)
	}
	cfg.Topic.Partitions = int32(*partitions)
	if *offsetsParts < 1 || *offsetsParts > 100000 {
		return config{}, fmt.Errorf("%w: --offsets-topic-num-partitions %d not in 1..100000", errUsage, *offsetsParts)
	}
	cfg.OffsetsTopicPartitions = int32(*offsetsParts)
	if *maxMsg < 0 || *maxMsg > math.MaxInt32 {
		return config{}, fmt.Errorf("%w: --max-message-bytes %d not in 0..%d", errUsage, *maxMsg, math.MaxInt32)
	}
	cfg.Topic.MaxMessageBytes = int32(*maxMsg)
	if err := cfg.Topic.Validate(); err != nil {
		return config{}, fmt.Errorf("%w: topic defaults: %v", errUsage, err)
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = -1 // netio: negative is no limit
	}
	if cfg.ShutdownTimeout <= 0 {
		return config{}, fmt.Errorf("%w: --shutdown-timeout %v must be positive", errUsage, cfg.ShutdownTimeout)
	}
	if cfg.DataDir == "" {
		return config{}, fmt.Errorf("%w: --data-dir is empty", errUsage)
	}
	if _, _, err := splitHostPort(cfg.Listen, true); err != nil {
		return config{}, fmt.Errorf("%w: --listen: %v", errUsage, err)
	}
	if cfg.Advertise != "" {
		host, port, err := splitHostPort(cfg.Advertise, false)
		if err != nil {
			return config{}, fmt.Errorf("%w: --advertise: %v", errUsage, err)
		}
		if host == "" || isUnspecified(host) {
			return config{}, fmt.Errorf("%w: --advertise %q: clients need a host they can connect to", errUsage, cfg.Advertise)
		}
		if port == 0 {
			return config{}, fmt.Errorf("%w: --advertise %q: port 0", errUsage, cfg.Advertise)
		}
	}
	if cfg.Pprof != "" {
		if _, _, err := splitHostPort(cfg.Pprof, true); err != nil {
			return config{}, fmt.Errorf("%w: --pprof: %v", errUsage, err)
		}
	}
	if err := parseCluster(&cfg, *voters, *join, *rf); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// parseCluster checks the cluster flags and fills cfg.Cluster.
func parseCluster(cfg *config, voters, join string, rf int64) error {
	c := &cfg.Cluster
	if rf < 1 || rf > math.MaxInt16 {
		return fmt.Errorf("%w: --default-replication-factor %d must be at least 1", errUsage, rf)
	}
	c.DefaultReplicationFactor = int16(rf)
	if c.MinInsyncReplicas < 1 {
		return fmt.Errorf("%w: --min-insync-replicas %d must be at least 1", errUsage, c.MinInsyncReplicas)
	}
	if c.ReplicaLagTimeMax <= 0 {
		return fmt.Errorf("%w: --replica-lag-time-max %v must be positive", errUsage, c.ReplicaLagTimeMax)
	}
	if c.Timing != "default" && c.Timing != "fast" {
		return fmt.Errorf("%w: --cluster-timing %q: want default or fast", errUsage, c.Timing)
	}
	if voters == "" {
		for name, v := range map[string]string{"raft-listen": c.RaftListen, "gossip-listen": c.GossipListen, "join": join, "cluster-id": c.ClusterID} {
			if v != "" {
				return fmt.Errorf("%w: --%s needs --controller-voters (a cluster)", errUsage, name)
			}
		}
		return nil
	}
	vs, err := controller.ParseVoters(voters)
	if err != nil {
		return fmt.Errorf("%w: --controller-voters: %v", errUsage, err)
	}
	c.Voters = vs
	if c.RaftListen == "" {
		for _, v := range vs {
			if v.ID == cfg.NodeID {
				c.RaftListen = v.Addr
			}
		}
		if c.RaftListen == "" {
			return fmt.Errorf("%w: --raft-listen is required: node %d is not one of the --controller-voters", errUsage, cfg.NodeID)
		}
	}
	if _, _, err := splitHostPort(c.RaftListen, false); err != nil {
		return fmt.Errorf("%w: --raft-listen: %v", errUsage, err)
	}
	if c.GossipListen == "" {
		return fmt.Errorf("%w: --gossip-listen is required in a cluster", errUsage)
	}
	if _, _, err := splitHostPort(c.GossipListen, false); err != nil {
		return fmt.Errorf("%w: --gossip-listen: %v", errUsage, err)
	}
	if join != "" {
		for _, a := range strings.Split(join, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := splitHostPort(a, false); err != nil {
				return fmt.Errorf("%w: --join: %v", errUsage, err)
			}
			c.Join = append(c.Join, a)
		}
	}
	return nil
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `Usage: easel [flags]

Easel runs a Kafka-compatible broker. With no flags it is a single node that
listens on %s and keeps its data in ./%s; with
--controller-voters it is a member of a cluster. Every flag can also be set
by the environment variable named in brackets; a flag on the command line wins.

Flags:
`, defaultListen, defaultDataDir)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// splitHostPort splits a host:port address and checks the port. The host may
// be empty (all interfaces) only if emptyHost is set.
func splitHostPort(addr string, emptyHost bool) (string, uint16, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %v", addr, err)
	}
	if host == "" && !emptyHost {
		return "", 0, fmt.Errorf("%q: missing host", addr)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number in 0..65535", addr, p)
	}
	return host, uint16(port), nil
}

// isUnspecified reports whether host is an all-interfaces address such as
// 0.0.0.0 or ::.
func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// advertisedAddr returns the host and port the broker gives clients in
// Metadata: the --advertise address if set; otherwise the host of the
// --listen address with the port actually bound, except that a listen host
// of all interfaces (empty, 0.0.0.0, ::) is replaced by the machine's
// hostname, since clients cannot connect to 0.0.0.0.
func advertisedAddr(cfg config, bound net.Addr, hostname func() (string, error)) (string, int32, error) {
	if cfg.Advertise != "" {
		host, port, err := splitHostPort(cfg.Advertise, false)
		return host, int32(port), err
	}
	host, _, err := splitHostPort(cfg.Listen, true)
	if err != nil {
		return "", 0, err
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return "", 0, fmt.Errorf("listening on %v: not a TCP address", bound)
	}
	if host == "" || isUnspecified(host) {
		if host, err = hostname(); err != nil {
			return "", 0, fmt.Errorf("listening on all interfaces and the hostname is unknown (%v): set --advertise", err)
		}
	}
	return host, int32(tcp.Port), nil
}
