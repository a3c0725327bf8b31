package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/internal/properties"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/replica"
)

// setting is one configuration setting. It can be given, from the highest
// precedence down, as a command-line flag (--flag), an environment variable
// (envName(flag): EASEL_ and the flag name in upper case with dashes as
// underscores), a key in the --config file (Kafka's name for it, or an
// easel.-prefixed name where Kafka has none), or left at its default.
// settings is the one table of them: flags, keys, variables, defaults, the
// usage text and --print-config all come from it.
type setting struct {
	flag string // command-line flag name
	key  string // properties key (Kafka's, or easel.-prefixed)
	// aliases are other Kafka keys for the setting, such as
	// log.retention.hours for log.retention.ms. key wins over them, and an
	// earlier alias over a later one, as in Kafka.
	aliases []alias
	def     string // default, in flag syntax
	doc     string // usage; a `quoted` word names the value
	// bind returns the flag.Value that parses a value in flag syntax into
	// its field of c.
	bind func(c *config) flag.Value
	// fromFile converts a value of key in Kafka's syntax into flag syntax,
	// and toFile back (for --print-config); nil means the same syntax.
	fromFile, toFile func(string) (string, error)
}

// alias is another key for a setting; conv converts its value into the
// setting's flag syntax (nil: the same).
type alias struct {
	key  string
	conv func(string) (string, error)
}

// settings is the single table of the broker's settings, in the order
// --print-config and -help list them. Adding a setting is adding an entry
// (and its field in config).
var settings = func() []setting {
	d := engine.DefaultTopicConfig()
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []setting{
		{flag: "listen", key: "listeners", def: defaultListen,
			doc:  "`host:port` to listen on for Kafka clients; port 0 picks a free port",
			bind: str(func(c *config) *string { return &c.Listen }), fromFile: fromListener, toFile: toListener},
		{flag: "advertise", key: "advertised.listeners",
			doc:  "`host:port` given to clients in Metadata (default: the listen address; the machine's hostname if listening on all interfaces)",
			bind: str(func(c *config) *string { return &c.Advertise }), fromFile: fromListener, toFile: toListener},
		{flag: "data-dir", key: "log.dirs", aliases: []alias{{key: "log.dir"}}, def: defaultDataDir,
			doc:  "`directory` holding the data (created if missing); one directory",
			bind: str(func(c *config) *string { return &c.DataDir }), fromFile: fromLogDirs},
		{flag: "node-id", key: "node.id", aliases: []alias{{key: "broker.id"}}, def: "0",
			doc:  "this broker's Kafka node id",
			bind: intIn(0, math.MaxInt32, func(c *config) *int32 { return &c.NodeID })},
		{flag: "auto-create-topics", key: "auto.create.topics.enable", def: "true",
			doc:  "create unknown topics on first use",
			bind: boolean(func(c *config) *bool { return &c.AutoCreateTopics })},
		{flag: "num-partitions", key: "num.partitions", def: strconv.Itoa(int(d.Partitions)),
			doc:  "partitions of an auto-created topic, and of CreateTopics requests asking for the default",
			bind: intIn(1, math.MaxInt32, func(c *config) *int32 { return &c.Topic.Partitions })},
		{flag: "segment-bytes", key: "log.segment.bytes", def: i64(d.SegmentBytes),
			doc:  "default segment.bytes: roll a segment once it holds this many bytes",
			bind: intIn(math.MinInt64, math.MaxInt64, func(c *config) *int64 { return &c.Topic.SegmentBytes })},
		{flag: "segment-ms", key: "log.roll.ms", aliases: []alias{{"log.roll.hours", scaled(3600000)}}, def: i64(d.SegmentMs),
			doc:  "default segment.ms: roll a segment when its first append is this many milliseconds old",
			bind: intIn(math.MinInt64, math.MaxInt64, func(c *config) *int64 { return &c.Topic.SegmentMs })},
		{flag: "retention-ms", key: "log.retention.ms", def: i64(d.RetentionMs),
			aliases: []alias{{"log.retention.minutes", scaled(60000)}, {"log.retention.hours", scaled(3600000)}},
			doc:     "default retention.ms: delete segments whose newest record is older (milliseconds; -1 keeps everything)",
			bind:    intIn(math.MinInt64, math.MaxInt64, func(c *config) *int64 { return &c.Topic.RetentionMs })},
		{flag: "retention-bytes", key: "log.retention.bytes", def: i64(d.RetentionBytes),
			doc:  "default retention.bytes: delete the oldest segments while a partition is bigger (-1: no limit)",
			bind: intIn(math.MinInt64, math.MaxInt64, func(c *config) *int64 { return &c.Topic.RetentionBytes })},
		{flag: "flush-messages", key: "log.flush.interval.messages", def: i64(d.FlushMessages),
			doc:  "default flush.messages: fsync after this many records (1: every acknowledged produce is on disk)",
			bind: intIn(math.MinInt64, math.MaxInt64, func(c *config) *int64 { return &c.Topic.FlushMessages })},
		{flag: "flush-ms", key: "log.flush.interval.ms", def: i64(d.FlushMs),
			doc:  "default flush.ms: fsync when the oldest unflushed append is this many milliseconds old",
			bind: intIn(math.MinInt64, math.MaxInt64, func(c *config) *int64 { return &c.Topic.FlushMs })},
		{flag: "max-message-bytes", key: "message.max.bytes", def: strconv.Itoa(int(d.MaxMessageBytes)),
			doc:  "default max.message.bytes: the largest record batch accepted",
			bind: intIn(0, math.MaxInt32, func(c *config) *int32 { return &c.Topic.MaxMessageBytes })},
		{flag: "message-timestamp-type", key: "log.message.timestamp.type", def: "CreateTime",
			doc:  "default message.timestamp.type: CreateTime (the producer's timestamps) or LogAppendTime (the broker stamps each batch)",
			bind: timestampType(func(c *config) *bool { return &c.Topic.LogAppendTime })},
		{flag: "max-connections", key: "max.connections", def: strconv.Itoa(defaultMaxConnections),
			doc:  "most open client connections; 0 or negative: no limit",
			bind: intIn(math.MinInt32, math.MaxInt32, func(c *config) *int { return &c.MaxConnections })},
		{flag: "socket-request-max-bytes", key: "socket.request.max.bytes", def: strconv.Itoa(netio.DefaultMaxRequestSize),
			doc:  "the largest request frame accepted; also bounds the bytes of one connection's requests read and not yet answered",
			bind: intIn(1, math.MaxInt32, func(c *config) *int { return &c.Net.MaxRequestSize })},
		{flag: "connections-max-idle", key: "connections.max.idle.ms", def: netio.DefaultIdleTimeout.String(),
			doc:  "close a connection idle this long (no request outstanding); 0 or negative: never (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Net.IdleTimeout }), fromFile: fromMillis, toFile: toMillis},
		{flag: "hw-checkpoint-interval", key: "replica.high.watermark.checkpoint.interval.ms", def: engine.DefaultHWCheckpointInterval.String(),
			doc:  "how often moved high watermarks are written to the data directory (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.HWCheckpointInterval }), fromFile: fromMillis, toFile: toMillis},
		{flag: "log-retention-check-interval", key: "log.retention.check.interval.ms", def: "5m0s",
			doc:  "how often retention and compaction run (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.RetentionCheckInterval }), fromFile: fromMillis, toFile: toMillis},
		{flag: "log-cleaner-dedupe-buffer-size", key: "log.cleaner.dedupe.buffer.size", def: "134217728",
			doc:  "bytes of compaction's key map (24 a key; one partition is compacted at a time)",
			bind: intIn(1, math.MaxInt64, func(c *config) *int64 { return &c.CleanerDedupeBufferSize })},
		{flag: "log-cleaner-io-max-bytes-per-second", key: "log.cleaner.io.max.bytes.per.second", def: "0",
			doc:  "what compaction reads and writes per second at most; 0: no limit",
			bind: intIn(0, math.MaxInt64, func(c *config) *int64 { return &c.CleanerIOMaxBytesPerSecond })},
		{flag: "shutdown-timeout", key: "easel.shutdown.timeout", def: defaultShutdownTimeout.String(),
			doc:  "on SIGTERM or SIGINT, how long to let in-flight requests finish before closing connections",
			bind: duration(func(c *config) *time.Duration { return &c.ShutdownTimeout })},
		{flag: "log-level", key: "easel.log.level", def: "info",
			doc:  "least severe `level` logged: debug, info, warn or error",
			bind: level(func(c *config) *slog.Level { return &c.LogLevel })},
		{flag: "log-format", key: "easel.log.format", def: "text",
			doc:  "log line `format`: text (key=value) or json (one object a line)",
			bind: oneOf([]string{"text", "json"}, func(c *config) *string { return &c.LogFormat })},
		{flag: "metrics", key: "easel.metrics.listen",
			doc:  "`host:port` serving Prometheus /metrics, /healthz and /readyz over HTTP (default off)",
			bind: str(func(c *config) *string { return &c.Metrics })},
		{flag: "pprof", key: "easel.pprof.listen",
			doc:  "`host:port` for a net/http/pprof endpoint at /debug/pprof/ (default off; keep it on loopback)",
			bind: str(func(c *config) *string { return &c.Pprof })},
		{flag: "offsets-topic-num-partitions", key: "offsets.topic.num.partitions", def: strconv.Itoa(group.DefaultOffsetsTopicNumPartitions),
			doc:  "partitions of __consumer_offsets when it is created; an existing topic keeps its count",
			bind: intIn(1, 100000, func(c *config) *int32 { return &c.OffsetsTopicPartitions })},
		{flag: "group-initial-rebalance-delay", key: "group.initial.rebalance.delay.ms", def: "3s",
			doc:  "how long the first rebalance of an empty group waits for more members; 0: none (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Group.InitialRebalanceDelay }), fromFile: fromMillis, toFile: toMillis},
		{flag: "group-min-session-timeout", key: "group.min.session.timeout.ms", def: "6s",
			doc:  "the shortest session timeout a member may ask for (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Group.MinSessionTimeout }), fromFile: fromMillis, toFile: toMillis},
		{flag: "group-max-session-timeout", key: "group.max.session.timeout.ms", def: "30m0s",
			doc:  "the longest session timeout a member may ask for (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Group.MaxSessionTimeout }), fromFile: fromMillis, toFile: toMillis},
		{flag: "group-max-size", key: "group.max.size", def: strconv.Itoa(math.MaxInt32),
			doc:  "the most members a group may have",
			bind: intIn(1, math.MaxInt32, func(c *config) *int { return &c.Group.MaxGroupSize })},
		{flag: "offsets-retention", key: "offsets.retention.minutes", def: "168h0m0s",
			doc:  "a group without members whose last commit is older loses its committed offsets (in the file: minutes)",
			bind: duration(func(c *config) *time.Duration { return &c.Group.OffsetsRetention }), fromFile: fromMinutes, toFile: toMinutes},
		{flag: "offsets-retention-check-interval", key: "offsets.retention.check.interval.ms", def: "10m0s",
			doc:  "how often expired groups are looked for (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Group.RetentionCheckInterval }), fromFile: fromMillis, toFile: toMillis},
		{flag: "offsets-commit-timeout", key: "offsets.commit.timeout.ms", def: "5s",
			doc:  "how long an offset commit may wait for the in-sync replicas (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Group.OffsetCommitTimeout }), fromFile: fromMillis, toFile: toMillis},
		{flag: "offset-metadata-max-bytes", key: "offset.metadata.max.bytes", def: "4096",
			doc:  "the longest metadata string of a committed offset",
			bind: intIn(1, math.MaxInt32, func(c *config) *int { return &c.Group.MaxOffsetMetadataBytes })},
		{flag: "controller-voters", key: "controller.quorum.voters",
			doc:  "raft voters of a cluster, `id@host:port,...`; empty runs a single node",
			bind: voters(func(c *config) *[]controller.Voter { return &c.Cluster.Voters })},
		{flag: "raft-listen", key: "easel.raft.listen",
			doc:  "`host:port` of this broker's raft transport (default: its --controller-voters address; required if it is not a voter)",
			bind: str(func(c *config) *string { return &c.Cluster.RaftListen })},
		{flag: "gossip-listen", key: "easel.gossip.listen",
			doc:  "`host:port` of this broker's gossip (membership and failure detection), TCP and UDP; required in a cluster",
			bind: str(func(c *config) *string { return &c.Cluster.GossipListen })},
		{flag: "join", key: "easel.gossip.join",
			doc:  "gossip addresses of other brokers to join, `host:port,...`",
			bind: list(func(c *config) *[]string { return &c.Cluster.Join })},
		{flag: "rack", key: "broker.rack",
			doc:  "this broker's rack: replicas are spread over racks",
			bind: str(func(c *config) *string { return &c.Cluster.Rack })},
		{flag: "cluster-id", key: "easel.cluster.id",
			doc:  "the cluster's id (default: derived from --controller-voters, the same on every broker)",
			bind: str(func(c *config) *string { return &c.Cluster.ClusterID })},
		{flag: "default-replication-factor", key: "default.replication.factor", def: "1",
			doc:  "replication factor of auto-created topics and of CreateTopics requests asking for the default",
			bind: intIn(1, math.MaxInt16, func(c *config) *int16 { return &c.Cluster.DefaultReplicationFactor })},
		{flag: "min-insync-replicas", key: "min.insync.replicas", def: "1",
			doc:  "min.insync.replicas of topics that do not set it: an acks=all produce needs that many in-sync replicas",
			bind: intIn(1, math.MaxInt32, func(c *config) *int { return &c.Cluster.MinInsyncReplicas })},
		{flag: "replica-lag-time-max", key: "replica.lag.time.max.ms", def: "30s",
			doc:  "a follower not caught up for this long leaves the ISR (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Cluster.ReplicaLagTimeMax }), fromFile: fromMillis, toFile: toMillis},
		{flag: "replica-fetch-max-bytes", key: "replica.fetch.max.bytes", def: strconv.Itoa(replica.DefaultPartitionMaxBytes),
			doc:  "record bytes a follower asks for per partition and fetch (the first batch comes whole even if larger)",
			bind: intIn(1, math.MaxInt32, func(c *config) *int32 { return &c.Cluster.ReplicaFetch.PartitionMaxBytes })},
		{flag: "replica-fetch-response-max-bytes", key: "replica.fetch.response.max.bytes", def: strconv.Itoa(replica.DefaultMaxBytes),
			doc:  "record bytes one follower fetch response may hold over all its partitions",
			bind: intIn(1, math.MaxInt32, func(c *config) *int32 { return &c.Cluster.ReplicaFetch.MaxBytes })},
		{flag: "replica-fetch-min-bytes", key: "replica.fetch.min.bytes", def: strconv.Itoa(replica.DefaultMinBytes),
			doc:  "record bytes a leader waits for (up to the fetch wait) before answering a follower",
			bind: intIn(1, math.MaxInt32, func(c *config) *int32 { return &c.Cluster.ReplicaFetch.MinBytes })},
		{flag: "replica-fetch-wait-max", key: "replica.fetch.wait.max.ms", def: replica.DefaultMaxWait.String(),
			doc:  "how long a leader may hold a follower's fetch waiting for data; below replica.lag.time.max.ms (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Cluster.ReplicaFetch.MaxWait }), fromFile: fromMillis, toFile: toMillis},
		{flag: "replica-fetch-backoff", key: "replica.fetch.backoff.ms", def: replica.DefaultBackoff.String(),
			doc:  "pause of a follower's fetcher after a failed request, and the longest pause of a partition after its errors (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Cluster.ReplicaFetch.Backoff }), fromFile: fromMillis, toFile: toMillis},
		{flag: "replica-socket-timeout", key: "replica.socket.timeout.ms", def: replica.DefaultRequestTimeout.String(),
			doc:  "how long a follower's request may take beyond the fetch wait before it is given up (in the file: milliseconds)",
			bind: duration(func(c *config) *time.Duration { return &c.Cluster.ReplicaFetch.RequestTimeout }), fromFile: fromMillis, toFile: toMillis},
		{flag: "cluster-timing", key: "easel.cluster.timing", def: "default",
			doc:  "failure detection and election timing: default (a dead broker is found in about 2-3 s) or fast (under a second; loopback tests only, it flaps under load)",
			bind: oneOf([]string{"default", "fast"}, func(c *config) *string { return &c.Cluster.Timing })},
	}
}()

// Flags that are not settings: they say where the settings come from and
// what to do with them.
const (
	configFlag      = "config"
	printConfigFlag = "print-config"
)

// envName returns the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Sources of a setting's effective value, from the highest precedence down.
const (
	fromFlag    = "flag"
	fromEnv     = "environment"
	fromFile    = "file"
	fromDefault = "default"
)

// origin is where a setting's effective value came from.
type origin struct {
	source string // fromFlag, fromEnv, fromFile or fromDefault
	name   string // "--listen", "EASEL_LISTEN", "listeners (easel.properties:3)"
}

// loaded is how a configuration came about: each setting's origin, and the
// warnings to log once the logger exists.
type loaded struct {
	file     string            // the --config file; "" if none
	origins  map[string]origin // by flag name
	values   map[string]string // effective value by flag name, in flag syntax
	warnings []string
}

// who names where the setting of flag came from, for error messages.
func (l *loaded) who(flag string) string {
	if o, ok := l.origins[flag]; ok && o.source != fromDefault {
		return o.name
	}
	return "--" + flag
}

// logTo writes the warnings at Warn and every effective setting at Debug.
func (l *loaded) logTo(log *slog.Logger) {
	for _, w := range l.warnings {
		log.Warn("config: " + w)
	}
	for _, s := range settings {
		o := l.origins[s.flag]
		log.Debug("config", "key", s.key, "flag", s.flag, "value", l.values[s.flag], "from", o.source, "source", o.name)
	}
}

// print writes the effective configuration as a properties file that
// --config reads back, each setting preceded by a comment naming its flag,
// its variable and where its value came from.
func (l *loaded) print(w io.Writer) error {
	fmt.Fprintf(w, "# Effective easel configuration (precedence: flag, environment, file, default).\n")
	if l.file != "" {
		fmt.Fprintf(w, "# File: %s\n", l.file)
	}
	for _, s := range settings {
		v := l.values[s.flag]
		if s.toFile != nil && v != "" {
			fv, err := s.toFile(v)
			if err != nil {
				return fmt.Errorf("%s: %w", s.key, err)
			}
			v = fv
		}
		o := l.origins[s.flag]
		src := o.source
		if o.source != fromDefault {
			src += " " + o.name
		}
		fmt.Fprintf(w, "\n# --%s, %s; from the %s\n%s=%s\n", s.flag, envName(s.flag), src, properties.Escape(s.key, true), properties.Escape(v, false))
	}
	return nil
}

// fileValue is a setting's value as a --config file gives it.
type fileValue struct {
	value string // in flag syntax
	name  string // "log.retention.hours (easel.properties:7)"
}

// readConfigFile parses a --config file into the values it sets, by flag
// name. Keys Easel knows under no name are warnings (Kafka keys it does not
// implement, and unknown keys), except under easel., where they are errors.
// A value that cannot be converted from Kafka's syntax is an error naming
// the key, its line and why.
func readConfigFile(path string, data []byte, l *loaded) (map[string]fileValue, error) {
	entries, err := properties.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: --config %s: %v", errUsage, path, err)
	}
	type found struct {
		rank int // 0: the key; i+1: the i-th alias
		fileValue
	}
	byFlag := map[string]found{}
	warned := map[string]bool{}
	for _, e := range entries {
		s, rank, conv := lookupKey(e.Key)
		where := fmt.Sprintf("%s (%s:%d)", e.Key, path, e.Line)
		if s == nil {
			switch {
			case strings.HasPrefix(e.Key, "easel."):
				return nil, fmt.Errorf("%w: %s: unknown setting", errUsage, where)
			case warned[e.Key]:
			case isKafkaKey(e.Key):
				l.warnings = append(l.warnings, fmt.Sprintf("%s: a Kafka setting Easel does not implement; ignored", where))
			default:
				l.warnings = append(l.warnings, fmt.Sprintf("%s: unknown setting; ignored", where))
			}
			warned[e.Key] = true
			continue
		}
		v := strings.TrimSpace(e.Value)
		if conv != nil {
			if v, err = conv(v); err != nil {
				return nil, fmt.Errorf("%w: %s: invalid value %q: %v", errUsage, where, e.Value, err)
			}
		}
		// A later line with the same key wins, as in Java; a higher-ranked
		// key wins over its aliases wherever it is.
		if prev, ok := byFlag[s.flag]; ok && prev.rank < rank {
			continue
		}
		byFlag[s.flag] = found{rank, fileValue{v, where}}
	}
	out := make(map[string]fileValue, len(byFlag))
	for f, v := range byFlag {
		out[f] = v.fileValue
	}
	return out, nil
}

// lookupKey finds the setting a properties key sets, the key's rank among
// the setting's names, and the conversion of its values to flag syntax.
func lookupKey(key string) (*setting, int, func(string) (string, error)) {
	for i := range settings {
		s := &settings[i]
		if s.key == key {
			return s, 0, s.fromFile
		}
		for j, a := range s.aliases {
			if a.key == key {
				return s, j + 1, a.conv
			}
		}
	}
	return nil, 0, nil
}

// fromListener converts Kafka's listeners syntax, PLAINTEXT://host:port,
// to host:port. Easel has one plaintext listener.
func fromListener(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if strings.Contains(v, ",") {
		return "", errors.New("easel serves one listener; give one")
	}
	name, addr, ok := strings.Cut(v, "://")
	if !ok {
		return v, nil // host:port, as the flag takes it
	}
	if !strings.EqualFold(name, "PLAINTEXT") {
		return "", fmt.Errorf("listener %q: only PLAINTEXT is supported", name)
	}
	return addr, nil
}

func toListener(v string) (string, error) { return "PLAINTEXT://" + v, nil }

// fromLogDirs takes log.dirs, a comma-separated list, of which Easel
// supports one directory.
func fromLogDirs(v string) (string, error) {
	if strings.Contains(v, ",") {
		return "", errors.New("one data directory only (easel keeps its data in one)")
	}
	return v, nil
}

// fromMillis converts a Kafka *.ms value to a Go duration.
func fromMillis(v string) (string, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "", errors.New("want a whole number of milliseconds")
	}
	if n > math.MaxInt64/int64(time.Millisecond) || n < math.MinInt64/int64(time.Millisecond) {
		return "", errors.New("out of range")
	}
	return (time.Duration(n) * time.Millisecond).String(), nil
}

// fromMinutes converts a Kafka *.minutes value to a Go duration.
func fromMinutes(v string) (string, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > math.MaxInt64/int64(time.Minute) || n < math.MinInt64/int64(time.Minute) {
		return "", errors.New("want a whole number of minutes")
	}
	return (time.Duration(n) * time.Minute).String(), nil
}

func toMinutes(v string) (string, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(int64(d/time.Minute), 10), nil
}

func toMillis(v string) (string, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(d.Milliseconds(), 10), nil
}

// scaled converts a count of a larger unit (log.retention.hours) to
// milliseconds; a negative count means -1 (unlimited), as in Kafka.
func scaled(ms int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", errors.New("want a whole number")
		}
		if n < 0 {
			return "-1", nil
		}
		if n > math.MaxInt64/ms {
			return "", errors.New("out of range")
		}
		return strconv.FormatInt(n*ms, 10), nil
	}
}

// value is a flag.Value setting *p through parse and showing it through
// format.
type value[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
	isBool bool
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func (v *value[T]) String() string {
	if v == nil || v.p == nil { // flag's zero-value probe
		return ""
	}
	return v.format(*v.p)
}

// IsBoolFlag lets a boolean flag stand alone (--auto-create-topics).
func (v *value[T]) IsBoolFlag() bool { return v.isBool }

func bind[T any](field func(*config) *T, parse func(string) (T, error), format func(T) string) func(*config) flag.Value {
	return func(c *config) flag.Value { return &value[T]{p: field(c), parse: parse, format: format} }
}

func str(field func(*config) *string) func(*config) flag.Value {
	return bind(field, func(s string) (string, error) { return s, nil }, func(s string) string { return s })
}

func boolean(field func(*config) *bool) func(*config) flag.Value {
	return func(c *config) flag.Value {
		return &value[bool]{p: field(c), isBool: true, format: strconv.FormatBool, parse: func(s string) (bool, error) {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return false, errors.New("want true or false")
			}
			return b, nil
		}}
	}
}

// intIn is an integer setting with values in lo..hi.
func intIn[T ~int | ~int16 | ~int32 | ~int64](lo, hi int64, field func(*config) *T) func(*config) flag.Value {
	return bind(field, func(s string) (T, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < lo || n > hi {
			if lo == math.MinInt64 {
				return 0, errors.New("want a whole number")
			}
			return 0, fmt.Errorf("want a whole number in %d..%d", lo, hi)
		}
		return T(n), nil
	}, func(n T) string { return strconv.FormatInt(int64(n), 10) })
}

func duration(field func(*config) *time.Duration) func(*config) flag.Value {
	return bind(field, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("want a duration such as 500ms, 10s or 2m")
		}
		return d, nil
	}, time.Duration.String)
}

// level is a slog.Level setting: debug, info, warn or error, in any case.
func level(field func(*config) *slog.Level) func(*config) flag.Value {
	return bind(field, func(s string) (slog.Level, error) {
		var l slog.Level
		switch strings.ToLower(s) {
		case "debug", "info", "warn", "error":
			return l, l.UnmarshalText([]byte(s))
		}
		return l, errors.New("want debug, info, warn or error")
	}, func(l slog.Level) string { return strings.ToLower(l.String()) })
}

func oneOf(choices []string, field func(*config) *string) func(*config) flag.Value {
	return bind(field, func(s string) (string, error) {
		for _, c := range choices {
			if strings.EqualFold(s, c) {
				return c, nil
			}
		}
		return "", fmt.Errorf("want %s", strings.Join(choices, " or "))
	}, func(s string) string { return s })
}

func timestampType(field func(*config) *bool) func(*config) flag.Value {
	return bind(field, func(s string) (bool, error) {
		switch {
		case strings.EqualFold(s, "CreateTime"):
			return false, nil
		case strings.EqualFold(s, "LogAppendTime"):
			return true, nil
		}
		return false, errors.New("want CreateTime or LogAppendTime")
	}, func(b bool) string {
		if b {
			return "LogAppendTime"
		}
		return "CreateTime"
	})
}

func voters(field func(*config) *[]controller.Voter) func(*config) flag.Value {
	return bind(field, func(s string) ([]controller.Voter, error) {
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		return controller.ParseVoters(s)
	}, controller.FormatVoters)
}

// list is a comma-separated list of strings; spaces around items are
// dropped, and so are empty items.
func list(field func(*config) *[]string) func(*config) flag.Value {
	return bind(field, func(s string) ([]string, error) {
		var out []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	}, func(l []string) string { return strings.Join(l, ",") })
}
