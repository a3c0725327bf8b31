package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/replica"
)

// writeConfig writes a --config file and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "easel.properties")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every setting's key, given in a file, reaches its field; the origin of
// each is the file, with its line.
func TestConfigFileEveryKey(t *testing.T) {
	file := `# every key Easel implements
listeners = PLAINTEXT://127.0.0.1:19092
advertised.listeners: kafka.example.com:19093
log.dirs /srv/easel
node.id=4
auto.create.topics.enable=false
num.partitions=6
log.segment.bytes=1048576
log.roll.ms=60000
log.retention.ms=-1
log.retention.bytes=5000000
log.flush.interval.messages=1
log.flush.interval.ms=250
message.max.bytes=2000000
log.message.timestamp.type=LogAppendTime
max.connections=77
socket.request.max.bytes=1000000
connections.max.idle.ms=0
replica.high.watermark.checkpoint.interval.ms=2500
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=1048576
log.cleaner.io.max.bytes.per.second=2000000
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.max.session.timeout.ms=60000
group.max.size=10
offsets.retention.minutes=60
offsets.retention.check.interval.ms=30000
offsets.commit.timeout.ms=7000
offset.metadata.max.bytes=100
easel.shutdown.timeout=3s
easel.log.level=DEBUG
easel.log.format=json
easel.metrics.listen=127.0.0.1:9308
easel.pprof.listen=127.0.0.1:6060
offsets.topic.num.partitions=5
controller.quorum.voters=4@127.0.0.1:9093,\
    5@127.0.0.2:9093
easel.raft.listen=127.0.0.1:9193
easel.gossip.listen=127.0.0.1:9094
easel.gossip.join=127.0.0.2:9094, 127.0.0.3:9094
broker.rack=r1
easel.cluster.id=abcdefghijklmnopqrstuv
default.replication.factor=3
min.insync.replicas=2
replica.lag.time.max.ms=1500
replica.fetch.max.bytes=2097152
replica.fetch.response.max.bytes=4194304
replica.fetch.min.bytes=2
replica.fetch.wait.max.ms=250
replica.fetch.backoff.ms=300
replica.socket.timeout.ms=4000
easel.cluster.timing=fast
`
	path := writeConfig(t, file)
	cfg, err := parseConfig([]string{"--config", path}, env{}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The file's topic defaults over Kafka's for the rest.
	topic := engine.DefaultTopicConfig()
	topic.Partitions, topic.SegmentBytes, topic.SegmentMs, topic.RetentionMs = 6, 1<<20, 60000, -1
	topic.RetentionBytes, topic.FlushMessages, topic.FlushMs, topic.MaxMessageBytes = 5000000, 1, 250, 2000000
	topic.LogAppendTime = true
	want := config{
		Listen: "127.0.0.1:19092", Advertise: "kafka.example.com:19093", DataDir: "/srv/easel", NodeID: 4,
		Topic:          topic,
		MaxConnections: 77, ShutdownTimeout: 3 * time.Second, LogLevel: slog.LevelDebug, LogFormat: "json",
		Metrics: "127.0.0.1:9308", Pprof: "127.0.0.1:6060", OffsetsTopicPartitions: 5,
		Net:                    netio.Config{MaxRequestSize: 1000000, IdleTimeout: -1},
		HWCheckpointInterval:   2500 * time.Millisecond,
		RetentionCheckInterval: time.Minute, CleanerDedupeBufferSize: 1 << 20, CleanerIOMaxBytesPerSecond: 2000000,
		Group: group.Config{InitialRebalanceDelay: -1, MinSessionTimeout: time.Second, MaxSessionTimeout: time.Minute,
			MaxGroupSize: 10, OffsetsRetention: time.Hour, RetentionCheckInterval: 30 * time.Second,
			OffsetCommitTimeout: 7 * time.Second, MaxOffsetMetadataBytes: 100},
		Cluster: clusterConfig{
			Voters:     []controller.Voter{{ID: 4, Addr: "127.0.0.1:9093"}, {ID: 5, Addr: "127.0.0.2:9093"}},
			RaftListen: "127.0.0.1:9193", GossipListen: "127.0.0.1:9094", Join: []string{"127.0.0.2:9094", "127.0.0.3:9094"},
			Rack: "r1", ClusterID: "abcdefghijklmnopqrstuv", DefaultReplicationFactor: 3, MinInsyncReplicas: 2,
			ReplicaLagTimeMax: 1500 * time.Millisecond, Timing: "fast",
			ReplicaFetch: replica.Config{PartitionMaxBytes: 2 << 20, MaxBytes: 4 << 20, MinBytes: 2, MaxWait: 250 * time.Millisecond,
				Backoff: 300 * time.Millisecond, RequestTimeout: 4 * time.Second},
		},
	}
	l := cfg.Loaded
	cfg.Loaded = loaded{}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config from file:\n got %+v\nwant %+v", cfg, want)
	}
	for _, s := range settings {
		o := l.origins[s.flag]
		if o.source != fromFile || !strings.HasPrefix(o.name, s.key+" ("+path+":") {
			t.Errorf("--%s: origin %+v, want the file's key %s", s.flag, o, s.key)
		}
		if !strings.Contains(file, "\n"+s.key) {
			t.Errorf("the test file lacks %s", s.key)
		}
	}
	if len(l.warnings) != 0 {
		t.Errorf("warnings: %q", l.warnings)
	}
}

// A flag wins over its variable, the variable over the file, the file over
// the default; the config file itself can be named by EASEL_CONFIG.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, "node.id=1\nnum.partitions=2\nlog.segment.bytes=4096\nmax.connections=9\n")
	e := env{"EASEL_NODE_ID": "11", "EASEL_NUM_PARTITIONS": "12", "EASEL_CONFIG": path}
	cfg, err := parseConfig([]string{"--node-id", "21"}, e.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != 21 || cfg.Topic.Partitions != 12 || cfg.Topic.SegmentBytes != 4096 ||
		cfg.MaxConnections != 9 || cfg.Listen != defaultListen {
		t.Fatalf("node id %d (want the flag's 21), partitions %d (want the variable's 12), segment bytes %d and max connections %d (want the file's 4096, 9), listen %q (want the default)",
			cfg.NodeID, cfg.Topic.Partitions, cfg.Topic.SegmentBytes, cfg.MaxConnections, cfg.Listen)
	}
	o := cfg.Loaded.origins
	for flag, want := range map[string]origin{
		"node-id":        {fromFlag, "--node-id"},
		"num-partitions": {fromEnv, "EASEL_NUM_PARTITIONS"},
		"segment-bytes":  {fromFile, "log.segment.bytes (" + path + ":3)"},
		"listen":         {fromDefault, "--listen"},
	} {
		if o[flag] != want {
			t.Errorf("origin of --%s = %+v, want %+v", flag, o[flag], want)
		}
	}
	// --config on the command line wins over EASEL_CONFIG.
	other := writeConfig(t, "node.id=3\n")
	cfg, err = parseConfig([]string{"--config", other}, e.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != 11 || cfg.Topic.SegmentBytes == 4096 || cfg.Loaded.file != other {
		t.Fatalf("--config %s: node id %d (want the variable's 11), segment bytes %d (want the default), file %q",
			other, cfg.NodeID, cfg.Topic.SegmentBytes, cfg.Loaded.file)
	}
}

// Kafka's alternative keys: log.retention.ms over minutes over hours,
// log.roll.ms over hours, node.id over broker.id, wherever they are in the
// file; the last line of a repeated key wins.
func TestConfigFileAliases(t *testing.T) {
	tests := []struct {
		file  string
		check func(config) bool
	}{
		{"log.retention.hours=2", func(c config) bool { return c.Topic.RetentionMs == 2*3600000 }},
		{"log.retention.minutes=3\nlog.retention.hours=2", func(c config) bool { return c.Topic.RetentionMs == 3*60000 }},
		{"log.retention.ms=5\nlog.retention.minutes=3\nlog.retention.hours=2", func(c config) bool { return c.Topic.RetentionMs == 5 }},
		{"log.retention.hours=2\nlog.retention.ms=5", func(c config) bool { return c.Topic.RetentionMs == 5 }},
		{"log.retention.hours=-1", func(c config) bool { return c.Topic.RetentionMs == -1 }},
		{"log.roll.hours=1", func(c config) bool { return c.Topic.SegmentMs == 3600000 }},
		{"log.roll.ms=7\nlog.roll.hours=1", func(c config) bool { return c.Topic.SegmentMs == 7 }},
		{"broker.id=8", func(c config) bool { return c.NodeID == 8 }},
		{"node.id=9\nbroker.id=8", func(c config) bool { return c.NodeID == 9 }},
		{"log.dir=/a", func(c config) bool { return c.DataDir == "/a" }},
		{"node.id=1\nnode.id=2", func(c config) bool { return c.NodeID == 2 }},
		{"listeners=plaintext://:9092", func(c config) bool { return c.Listen == ":9092" }},
		{"listeners=127.0.0.1:0", func(c config) bool { return c.Listen == "127.0.0.1:0" }},
		{"log.message.timestamp.type=logappendtime", func(c config) bool { return c.Topic.LogAppendTime }},
	}
	for _, tt := range tests {
		cfg, err := parseConfig([]string{"--config", writeConfig(t, tt.file)}, env{}.lookup, nil)
		if err != nil {
			t.Errorf("%q: %v", tt.file, err)
			continue
		}
		if !tt.check(cfg) {
			t.Errorf("%q: unexpected config %+v", tt.file, cfg)
		}
	}
}

// Kafka keys Easel does not implement and unknown keys are warnings, once
// each; an unknown easel. key, a bad value or a bad file stops the start
// naming the key, its line and why.
func TestConfigFileUnknownAndMalformed(t *testing.T) {
	path := writeConfig(t, "num.io.threads=8\nssl.keystore.location=/x\nnum.io.threads=9\nfoo.bar=1\nnode.id=2\n")
	cfg, err := parseConfig([]string{"--config", path}, env{}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Loaded.warnings
	if len(w) != 3 || !strings.Contains(w[0], "num.io.threads ("+path+":1): a Kafka setting Easel does not implement") ||
		!strings.Contains(w[1], "ssl.keystore.location") || !strings.Contains(w[2], "foo.bar ("+path+":4): unknown setting") {
		t.Fatalf("warnings %q", w)
	}
	var logs bytes.Buffer
	cfg.Loaded.logTo(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if n := strings.Count(logs.String(), "num.io.threads"); n != 1 {
		t.Errorf("num.io.threads logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "level=DEBUG msg=config key=node.id flag=node-id value=2 from=file") {
		t.Errorf("debug lines lack node.id from the file:\n%s", logs.String())
	}

	tests := []struct {
		file, want string
	}{
		{"easel.nope=1", "easel.nope (%s:1): unknown setting"},
		{"# c\nnode.id=x", `node.id (%s:2): invalid value "x": want a whole number`},
		{"node.id=-1", "node.id (%s:1): invalid value \"-1\": want a whole number in 0..2147483647"},
		{"num.partitions=0", "num.partitions (%s:1)"},
		{"auto.create.topics.enable=yes please", "auto.create.topics.enable (%s:1): invalid value \"yes please\": want true or false"},
		{"log.retention.hours=two", "log.retention.hours (%s:1): invalid value \"two\": want a whole number"},
		{"replica.lag.time.max.ms=30s", "replica.lag.time.max.ms (%s:1): invalid value \"30s\": want a whole number of milliseconds"},
		{"replica.lag.time.max.ms=0", "replica.lag.time.max.ms (%s:1) 0s must be positive"},
		{"replica.fetch.max.bytes=0", "replica.fetch.max.bytes (%s:1): invalid value \"0\": want a whole number in 1..2147483647"},
		{"replica.fetch.backoff.ms=0", "replica.fetch.backoff.ms (%s:1) 0s must be positive"},
		{"replica.lag.time.max.ms=400\nreplica.fetch.wait.max.ms=500", "replica.fetch.wait.max.ms (%s:2) 500ms must be below replica.lag.time.max.ms (%s:1) 400ms"},
		{"listeners=SSL://h:9093", `listener "SSL": only PLAINTEXT is supported`},
		{"listeners=PLAINTEXT://a:1,PLAINTEXT://b:2", "one listener"},
		{"listeners=localhost", "listeners (%s:1)"},
		{"advertised.listeners=PLAINTEXT://0.0.0.0:9092", "advertised.listeners (%s:1) \"0.0.0.0:9092\": clients need a host"},
		{"log.dirs=/a,/b", "log.dirs (%s:1)"},
		{"easel.log.format=xml", "easel.log.format (%s:1): invalid value \"xml\": want text or json"},
		{"easel.metrics.listen=9308", "easel.metrics.listen (%s:1)"},
		{"easel.shutdown.timeout=0s", "easel.shutdown.timeout (%s:1) 0s must be positive"},
		{"log.segment.bytes=5", "segment.bytes"},
		{"controller.quorum.voters=1@", "controller.quorum.voters (%s:1)"},
		{"easel.gossip.join=h:1", "easel.gossip.join (%s:1) needs --controller-voters"},
		{"offsets.retention.minutes=0", "offsets.retention.minutes (%s:1) 0s must be positive"},
		{"offsets.retention.minutes=1.5", "offsets.retention.minutes (%s:1): invalid value \"1.5\": want a whole number of minutes"},
		{"group.min.session.timeout.ms=60000\ngroup.max.session.timeout.ms=1000", "group.min.session.timeout.ms (%s:1) 1m0s is above group.max.session.timeout.ms (%s:2) 1s"},
		{"socket.request.max.bytes=0", "socket.request.max.bytes (%s:1): invalid value \"0\": want a whole number in 1..2147483647"},
		{"k=\\u12", "line 1"},
	}
	for _, tt := range tests {
		path := writeConfig(t, tt.file)
		want := tt.want
		if strings.Contains(want, "%s") {
			want = strings.ReplaceAll(want, "%s", path)
		}
		_, err := parseConfig([]string{"--config", path}, env{}.lookup, nil)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want errUsage mentioning %q", tt.file, err, want)
		}
	}
	if _, err := parseConfig([]string{"--config", filepath.Join(t.TempDir(), "missing")}, env{}.lookup, nil); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing file: %v", err)
	}
}

// --print-config prints every setting under its key with its origin, as a
// file that reads back to the same configuration.
func TestPrintConfig(t *testing.T) {
	path := writeConfig(t, "listeners=PLAINTEXT://127.0.0.1:0\nlog.retention.hours=1\nreplica.lag.time.max.ms=1500\nbroker.rack=a b\n")
	cfg, err := parseConfig([]string{"--config", path, "--print-config", "--node-id", "3"}, env{"EASEL_NUM_PARTITIONS": "4"}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.PrintConfig {
		t.Fatal("PrintConfig not set")
	}
	var out bytes.Buffer
	if err := cfg.Loaded.print(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"# --node-id, EASEL_NODE_ID; from the flag --node-id\nnode.id=3\n",
		"# --num-partitions, EASEL_NUM_PARTITIONS; from the environment EASEL_NUM_PARTITIONS\nnum.partitions=4\n",
		"from the file log.retention.hours (" + path + ":2)\nlog.retention.ms=3600000\n",
		"listeners=PLAINTEXT://127.0.0.1:0\n",
		"replica.lag.time.max.ms=1500\n",
		"# --data-dir, EASEL_DATA_DIR; from the default\nlog.dirs=easel-data\n",
		"advertised.listeners=\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	for _, s := range settings {
		if !strings.Contains(text, "\n"+s.key+"=") {
			t.Errorf("output lacks %s", s.key)
		}
	}
	again, err := parseConfig([]string{"--config", writeConfig(t, text)}, env{}.lookup, nil)
	if err != nil {
		t.Fatalf("printed config does not read back: %v\n%s", err, text)
	}
	cfg.Loaded, again.Loaded = loaded{}, loaded{}
	cfg.PrintConfig = false
	if !reflect.DeepEqual(cfg, again) {
		t.Fatalf("read back:\n got %+v\nwant %+v", again, cfg)
	}
}

// The sample file in the repository loads without a warning.
func TestSampleConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"--config", "../../easel.properties.sample"}, env{}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Loaded.warnings) > 0 {
		t.Fatalf("warnings: %q", cfg.Loaded.warnings)
	}
	if cfg.NodeID != 1 || len(cfg.Cluster.Voters) != 3 || cfg.Topic.RetentionMs != 168*3600000 || cfg.LogFormat != "json" {
		t.Fatalf("unexpected config %+v", cfg)
	}
}

// The settings table is consistent: unique flags and keys, no key both
// implemented and listed as unimplemented, easel. keys only for what Kafka
// lacks, and kafkaKeys sorted for binary search.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range settings {
		names := []string{"--" + s.flag, s.key}
		for _, a := range s.aliases {
			names = append(names, a.key)
		}
		for _, n := range names {
			if seen[n] {
				t.Errorf("%s given twice", n)
			}
			seen[n] = true
			if isKafkaKey(n) {
				t.Errorf("%s is implemented and in kafkaKeys", n)
			}
		}
		if s.doc == "" || s.bind == nil {
			t.Errorf("--%s lacks doc or bind", s.flag)
		}
	}
	if !slices.IsSorted(kafkaKeys) {
		t.Error("kafkaKeys is not sorted")
	}
	if len(slices.Compact(slices.Clone(kafkaKeys))) != len(kafkaKeys) {
		t.Error("kafkaKeys has duplicates")
	}
}
