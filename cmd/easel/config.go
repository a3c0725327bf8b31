package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/replica"
)

// envPrefix starts the name of the environment variable that can set each
// setting: --data-dir is EASEL_DATA_DIR. A flag given on the command line
// wins over it, and it wins over the --config file.
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

// config is the broker's whole configuration, as parsed from flags,
// environment and the --config file (see settings).
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
	// LogLevel is the minimum level logged; LogFormat is "text" or "json".
	LogLevel  slog.Level
	LogFormat string
	// Metrics is the address of the Prometheus and health endpoint; empty
	// disables it.
	Metrics string
	// Pprof is the address of the net/http/pprof endpoint; empty disables it.
	Pprof string
	// OffsetsTopicPartitions is offsets.topic.num.partitions: the partition
	// count of __consumer_offsets when it is created. Invariant: >= 1.
	OffsetsTopicPartitions int32
	// Group holds the group coordinator's settings (timeouts, retention,
	// limits); its other fields are filled by run. Invariant: every
	// duration > 0, except InitialRebalanceDelay (negative: none).
	Group group.Config
	// Net holds netio's request size bound and idle timeout (negative:
	// none); its other fields are filled by run.
	Net netio.Config
	// HWCheckpointInterval is replica.high.watermark.checkpoint.interval.ms.
	// Invariant: > 0.
	HWCheckpointInterval time.Duration
	// RetentionCheckInterval is log.retention.check.interval.ms: how often
	// retention and compaction run. Invariant: > 0.
	RetentionCheckInterval time.Duration
	// CleanerDedupeBufferSize is log.cleaner.dedupe.buffer.size and
	// CleanerIOMaxBytesPerSecond log.cleaner.io.max.bytes.per.second (0: no
	// limit); see engine.Options. Invariants: > 0 and >= 0.
	CleanerDedupeBufferSize, CleanerIOMaxBytesPerSecond int64

	// Cluster holds the cluster settings; Cluster.Voters empty means a
	// single node.
	Cluster clusterConfig

	// PrintConfig asks for the effective configuration to be printed
	// instead of starting (--print-config).
	PrintConfig bool
	// Loaded tells where each setting came from.
	Loaded loaded
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
	// ReplicaFetch tunes the follower fetchers (replica.fetch.* and
	// replica.socket.timeout.ms); the broker sets its other fields.
	ReplicaFetch replica.Config
	// Timing is "default" (production failure detection and elections) or
	// "fast" (loopback tests).
	Timing string
}

// parseConfig builds the configuration from the command-line arguments
// args, the environment (read with lookupEnv) and the --config file, in
// that order of precedence, over the defaults (see setting). On -h or -help
// it writes the usage to usage and returns flag.ErrHelp; every other failure
// wraps errUsage and names the flag, variable or file key at fault.
func parseConfig(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (config, error) {
	// Topic settings that are not broker settings keep the engine's defaults.
	cfg := config{Topic: engine.DefaultTopicConfig()}
	l := &cfg.Loaded
	l.origins = map[string]origin{}
	l.values = map[string]string{}
	fs := flag.NewFlagSet("easel", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseConfig's caller reports errors
	for _, s := range settings {
		v := s.bind(&cfg)
		if err := v.Set(s.def); err != nil {
			panic(fmt.Sprintf("easel: default %q of --%s: %v", s.def, s.flag, err))
		}
		doc := s.doc + " (" + s.key + ") [" + envName(s.flag) + "]"
		fs.Var(v, s.flag, doc)
	}
	fs.StringVar(&l.file, configFlag, "", "properties `file` of settings, by Kafka's key names (see easel.properties.sample); flags and variables win over it ["+envName(configFlag)+"]")
	fs.BoolVar(&cfg.PrintConfig, printConfigFlag, false, "print the effective configuration as a properties file and exit")

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
	if !set[configFlag] {
		if v, ok := lookupEnv(envName(configFlag)); ok {
			l.file = v
		}
	}
	var file map[string]fileValue
	if l.file != "" {
		data, err := os.ReadFile(l.file)
		if err != nil {
			return config{}, fmt.Errorf("%w: --config: %v", errUsage, err)
		}
		if file, err = readConfigFile(l.file, data, l); err != nil {
			return config{}, err
		}
	}
	for _, s := range settings {
		name := envName(s.flag)
		v, fromEnvOK := lookupEnv(name)
		fv, fromFileOK := file[s.flag]
		var err error
		switch {
		case set[s.flag]:
			l.origins[s.flag] = origin{fromFlag, "--" + s.flag}
		case fromEnvOK:
			l.origins[s.flag] = origin{fromEnv, name}
			if err = fs.Set(s.flag, v); err != nil {
				return config{}, fmt.Errorf("%w: invalid value %q for %s: %v", errUsage, v, name, err)
			}
		case fromFileOK:
			l.origins[s.flag] = origin{fromFile, fv.name}
			if err = fs.Set(s.flag, fv.value); err != nil {
				return config{}, fmt.Errorf("%w: %s: invalid value %q: %v", errUsage, fv.name, fv.value, err)
			}
		default:
			l.origins[s.flag] = origin{fromDefault, "--" + s.flag}
		}
		l.values[s.flag] = fs.Lookup(s.flag).Value.String()
	}
	if err := cfg.check(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// check checks what the settings' own parsers cannot: how they combine,
// and addresses.
func (cfg *config) check() error {
	who := cfg.Loaded.who
	if err := cfg.Topic.Validate(); err != nil {
		return fmt.Errorf("%w: topic defaults: %v", errUsage, err)
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = -1 // netio: negative is no limit
	}
	for _, d := range []struct {
		flag string
		d    time.Duration
	}{
		{"shutdown-timeout", cfg.ShutdownTimeout}, {"hw-checkpoint-interval", cfg.HWCheckpointInterval},
		{"log-retention-check-interval", cfg.RetentionCheckInterval},
		{"group-min-session-timeout", cfg.Group.MinSessionTimeout}, {"group-max-session-timeout", cfg.Group.MaxSessionTimeout},
		{"offsets-retention", cfg.Group.OffsetsRetention}, {"offsets-retention-check-interval", cfg.Group.RetentionCheckInterval},
		{"offsets-commit-timeout", cfg.Group.OffsetCommitTimeout},
	} {
		if d.d <= 0 {
			return fmt.Errorf("%w: %s %v must be positive", errUsage, who(d.flag), d.d)
		}
	}
	if cfg.Group.MinSessionTimeout > cfg.Group.MaxSessionTimeout {
		return fmt.Errorf("%w: %s %v is above %s %v", errUsage, who("group-min-session-timeout"), cfg.Group.MinSessionTimeout,
			who("group-max-session-timeout"), cfg.Group.MaxSessionTimeout)
	}
	// The packages take zero for their defaults and negative for none.
	if cfg.Group.InitialRebalanceDelay <= 0 {
		cfg.Group.InitialRebalanceDelay = -1
	}
	if cfg.Net.IdleTimeout <= 0 {
		cfg.Net.IdleTimeout = -1
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: %s is empty", errUsage, who("data-dir"))
	}
	if _, _, err := splitHostPort(cfg.Listen, true); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, who("listen"), err)
	}
	if cfg.Advertise != "" {
		host, port, err := splitHostPort(cfg.Advertise, false)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, who("advertise"), err)
		}
		if host == "" || isUnspecified(host) {
			return fmt.Errorf("%w: %s %q: clients need a host they can connect to", errUsage, who("advertise"), cfg.Advertise)
		}
		if port == 0 {
			return fmt.Errorf("%w: %s %q: port 0", errUsage, who("advertise"), cfg.Advertise)
		}
	}
	for _, f := range []string{"pprof", "metrics"} {
		if addr := cfg.Loaded.values[f]; addr != "" {
			if _, _, err := splitHostPort(addr, true); err != nil {
				return fmt.Errorf("%w: %s: %v", errUsage, who(f), err)
			}
		}
	}
	return parseCluster(cfg)
}

// parseCluster checks the cluster settings.
func parseCluster(cfg *config) error {
	c := &cfg.Cluster
	who := cfg.Loaded.who
	if c.ReplicaLagTimeMax <= 0 {
		return fmt.Errorf("%w: %s %v must be positive", errUsage, who("replica-lag-time-max"), c.ReplicaLagTimeMax)
	}
	rf := &c.ReplicaFetch
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"replica-fetch-wait-max", rf.MaxWait}, {"replica-fetch-backoff", rf.Backoff}, {"replica-socket-timeout", rf.RequestTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("%w: %s %v must be positive", errUsage, who(d.name), d.v)
		}
	}
	// As Kafka requires: a follower waiting in the leader's long poll
	// must not look lagging for it.
	if rf.MaxWait >= c.ReplicaLagTimeMax {
		return fmt.Errorf("%w: %s %v must be below %s %v", errUsage, who("replica-fetch-wait-max"), rf.MaxWait, who("replica-lag-time-max"), c.ReplicaLagTimeMax)
	}
	if len(c.Voters) == 0 {
		for _, name := range []string{"raft-listen", "gossip-listen", "join", "cluster-id"} {
			if cfg.Loaded.values[name] != "" {
				return fmt.Errorf("%w: %s needs --controller-voters (a cluster)", errUsage, who(name))
			}
		}
		return nil
	}
	if c.RaftListen == "" {
		for _, v := range c.Voters {
			if v.ID == cfg.NodeID {
				c.RaftListen = v.Addr
			}
		}
		if c.RaftListen == "" {
			return fmt.Errorf("%w: --raft-listen is required: node %d is not one of the --controller-voters", errUsage, cfg.NodeID)
		}
	}
	if _, _, err := splitHostPort(c.RaftListen, false); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, who("raft-listen"), err)
	}
	if c.GossipListen == "" {
		return fmt.Errorf("%w: --gossip-listen is required in a cluster", errUsage)
	}
	if _, _, err := splitHostPort(c.GossipListen, false); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, who("gossip-listen"), err)
	}
	for _, a := range c.Join {
		if _, _, err := splitHostPort(a, false); err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, who("join"), err)
		}
	}
	return nil
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `Usage: easel [flags]

Easel runs a Kafka-compatible broker. With no flags it is a single node that
listens on %s and keeps its data in ./%s; with
--controller-voters it is a member of a cluster.

Every setting can be given as a flag, as the environment variable named in
brackets, or in a --config file of Java properties under the Kafka key named
in parentheses (settings Kafka does not have take easel. keys). A flag wins
over a variable, a variable over the file, the file over the default.
--print-config shows the result.

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

// engineOptions are the engine settings of the configuration.
func (c config) engineOptions(log *slog.Logger) engine.Options {
	return engine.Options{
		Defaults: c.Topic, Logger: log, HWCheckpointInterval: c.HWCheckpointInterval,
		RetentionCheckInterval: c.RetentionCheckInterval, CleanerDedupeBufferSize: c.CleanerDedupeBufferSize,
		CleanerIOMaxBytesPerSecond: float64(c.CleanerIOMaxBytesPerSecond),
	}
}
