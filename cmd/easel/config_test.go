package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/replica"
)

// env is a fake environment for parseConfig.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env{}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Listen:           "127.0.0.1:9092",
		DataDir:          "easel-data",
		NodeID:           0,
		AutoCreateTopics: true,
		Topic:            engine.DefaultTopicConfig(),
		MaxConnections:   10000,
		ShutdownTimeout:  10 * time.Second,
		LogLevel:         slog.LevelInfo,
		LogFormat:        "text",

		OffsetsTopicPartitions: 50,
		Group: group.Config{InitialRebalanceDelay: 3 * time.Second, MinSessionTimeout: 6 * time.Second,
			MaxSessionTimeout: 30 * time.Minute, OffsetsRetention: 7 * 24 * time.Hour, RetentionCheckInterval: 10 * time.Minute,
			MaxOffsetMetadataBytes: 4096, MaxGroupSize: math.MaxInt32, OffsetCommitTimeout: 5 * time.Second},
		Net:                     netio.Config{MaxRequestSize: 100 << 20, IdleTimeout: 10 * time.Minute},
		HWCheckpointInterval:    5 * time.Second,
		RetentionCheckInterval:  5 * time.Minute,
		CleanerDedupeBufferSize: 128 << 20,
		Cluster: clusterConfig{DefaultReplicationFactor: 1, Timing: "default", MinInsyncReplicas: 1, ReplicaLagTimeMax: 30 * time.Second,
			ReplicaFetch: replica.Config{MaxWait: 500 * time.Millisecond, MinBytes: 1, MaxBytes: 10 << 20, PartitionMaxBytes: 1 << 20,
				Backoff: time.Second, RequestTimeout: 30 * time.Second}},
	}
	for _, st := range settings {
		if o := cfg.Loaded.origins[st.flag]; o.source != fromDefault {
			t.Errorf("--%s comes from %+v, want the default", st.flag, o)
		}
	}
	cfg.Loaded = loaded{}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.Topic.Partitions != 1 {
		t.Fatalf("num.partitions default %d, want 1", cfg.Topic.Partitions)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   env
		check func(config) bool
	}{
		{"listen flag", []string{"--listen", "0.0.0.0:19092"}, nil,
			func(c config) bool { return c.Listen == "0.0.0.0:19092" }},
		{"listen env", nil, env{"EASEL_LISTEN": "127.0.0.1:0"},
			func(c config) bool { return c.Listen == "127.0.0.1:0" }},
		{"flag wins over env", []string{"-listen=127.0.0.1:1"}, env{"EASEL_LISTEN": "127.0.0.1:2"},
			func(c config) bool { return c.Listen == "127.0.0.1:1" }},
		{"data dir env", nil, env{"EASEL_DATA_DIR": "/var/lib/easel"},
			func(c config) bool { return c.DataDir == "/var/lib/easel" }},
		{"advertise", []string{"--advertise", "kafka.example.com:9093"}, nil,
			func(c config) bool { return c.Advertise == "kafka.example.com:9093" }},
		{"node id", []string{"--node-id", "7"}, nil,
			func(c config) bool { return c.NodeID == 7 }},
		{"auto create off by flag", []string{"--auto-create-topics=false"}, nil,
			func(c config) bool { return !c.AutoCreateTopics }},
		{"auto create off by env", nil, env{"EASEL_AUTO_CREATE_TOPICS": "false"},
			func(c config) bool { return !c.AutoCreateTopics }},
		{"auto create flag wins", []string{"--auto-create-topics"}, env{"EASEL_AUTO_CREATE_TOPICS": "false"},
			func(c config) bool { return c.AutoCreateTopics }},
		{"offsets topic partitions", []string{"--offsets-topic-num-partitions", "3"}, nil,
			func(c config) bool { return c.OffsetsTopicPartitions == 3 }},
		{"offsets topic partitions env", nil, env{"EASEL_OFFSETS_TOPIC_NUM_PARTITIONS": "1"},
			func(c config) bool { return c.OffsetsTopicPartitions == 1 }},
		{"num partitions", []string{"--num-partitions", "12"}, nil,
			func(c config) bool { return c.Topic.Partitions == 12 }},
		{"topic defaults", []string{"--segment-bytes", "1048576", "--segment-ms", "60000",
			"--retention-ms", "-1", "--retention-bytes", "1000000", "--flush-messages", "1",
			"--flush-ms", "100", "--max-message-bytes", "2000000"}, nil,
			func(c config) bool {
				want := engine.DefaultTopicConfig()
				want.SegmentBytes, want.SegmentMs, want.RetentionMs, want.RetentionBytes = 1<<20, 60000, -1, 1000000
				want.FlushMessages, want.FlushMs, want.MaxMessageBytes = 1, 100, 2000000
				return c.Topic == want
			}},
		{"topic defaults by env", nil, env{"EASEL_SEGMENT_BYTES": "4096", "EASEL_FLUSH_MESSAGES": "1"},
			func(c config) bool { return c.Topic.SegmentBytes == 4096 && c.Topic.FlushMessages == 1 }},
		{"max connections", []string{"--max-connections", "5"}, nil,
			func(c config) bool { return c.MaxConnections == 5 }},
		{"max connections unlimited", []string{"--max-connections", "0"}, nil,
			func(c config) bool { return c.MaxConnections < 0 }},
		{"log level", []string{"--log-level", "debug"}, nil,
			func(c config) bool { return c.LogLevel == slog.LevelDebug }},
		{"log level env upper case", nil, env{"EASEL_LOG_LEVEL": "WARN"},
			func(c config) bool { return c.LogLevel == slog.LevelWarn }},
		{"pprof", []string{"--pprof", "127.0.0.1:6060"}, nil,
			func(c config) bool { return c.Pprof == "127.0.0.1:6060" }},
		{"log cleaner", []string{"--log-retention-check-interval", "30s", "--log-cleaner-dedupe-buffer-size", "1048576",
			"--log-cleaner-io-max-bytes-per-second", "5000000"}, nil,
			func(c config) bool {
				o := c.engineOptions(nil)
				return o.RetentionCheckInterval == 30*time.Second && o.CleanerDedupeBufferSize == 1<<20 && o.CleanerIOMaxBytesPerSecond == 5e6
			}},
		{"shutdown timeout", []string{"--shutdown-timeout", "2s"}, nil,
			func(c config) bool { return c.ShutdownTimeout == 2*time.Second }},
		{"unrelated env ignored", nil, env{"EASEL_REQUIRE_KCAT": "1", "EASEL_NOPE": "x"},
			func(c config) bool { return c.Listen == defaultListen }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, tt.env.lookup, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("unexpected config %+v", cfg)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  env
		want string // in the error message
	}{
		{"unknown flag", []string{"--nope"}, nil, "not defined: -nope"},
		{"positional", []string{"data"}, nil, `unexpected argument "data"`},
		{"listen no port", []string{"--listen", "localhost"}, nil, "--listen"},
		{"listen bad port", []string{"--listen", "localhost:99999"}, nil, "--listen"},
		{"advertise no host", []string{"--advertise", ":9092"}, nil, "--advertise"},
		{"advertise all interfaces", []string{"--advertise", "0.0.0.0:9092"}, nil, "--advertise"},
		{"advertise port 0", []string{"--advertise", "h:0"}, nil, "port 0"},
		{"node id negative", []string{"--node-id", "-1"}, nil, "-node-id: want a whole number in"},
		{"node id too big", []string{"--node-id", "2147483648"}, nil, "-node-id: want a whole number in"},
		{"node id not a number", []string{"--node-id", "one"}, nil, "node-id"},
		{"node id bad env", nil, env{"EASEL_NODE_ID": "one"}, "EASEL_NODE_ID"},
		{"bool bad env", nil, env{"EASEL_AUTO_CREATE_TOPICS": "maybe"}, "EASEL_AUTO_CREATE_TOPICS"},
		{"partitions zero", []string{"--num-partitions", "0"}, nil, "-num-partitions: want a whole number in"},
		{"offsets topic partitions zero", []string{"--offsets-topic-num-partitions", "0"}, nil, "-offsets-topic-num-partitions: want a whole number in"},
		{"segment bytes tiny", []string{"--segment-bytes", "5"}, nil, "segment.bytes"},
		{"retention ms", []string{"--retention-ms", "-2"}, nil, "retention.ms"},
		{"flush messages", []string{"--flush-messages", "0"}, nil, "flush.messages"},
		{"max message bytes", []string{"--max-message-bytes", "3000000000"}, nil, "-max-message-bytes: want a whole number in"},
		{"log level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"log level env", nil, env{"EASEL_LOG_LEVEL": "info+2"}, "EASEL_LOG_LEVEL"},
		{"shutdown timeout", []string{"--shutdown-timeout", "0s"}, nil, "--shutdown-timeout"},
		{"retention check interval", []string{"--log-retention-check-interval", "0s"}, nil, "--log-retention-check-interval"},
		{"dedupe buffer", []string{"--log-cleaner-dedupe-buffer-size", "0"}, nil, "-log-cleaner-dedupe-buffer-size"},
		{"cleaner io", []string{"--log-cleaner-io-max-bytes-per-second", "-1"}, nil, "-log-cleaner-io-max-bytes-per-second"},
		{"empty data dir", []string{"--data-dir", ""}, nil, "--data-dir"},
		{"pprof", []string{"--pprof", "6060"}, nil, "--pprof"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, tt.env.lookup, nil)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want errUsage", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigHelp(t *testing.T) {
	var buf bytes.Buffer
	_, err := parseConfig([]string{"-help"}, env{}.lookup, &buf)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	out := buf.String()
	for _, s := range []string{"Usage: easel", "-listen", "[EASEL_LISTEN]", "-data-dir", "[EASEL_DATA_DIR]",
		"-segment-bytes", "-pprof", "127.0.0.1:9092", "easel-data"} {
		if !strings.Contains(out, s) {
			t.Errorf("usage lacks %q:\n%s", s, out)
		}
	}
}

func TestAdvertisedAddr(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}
	host := func() (string, error) { return "box.example", nil }
	noHost := func() (string, error) { return "", errors.New("no hostname") }
	tests := []struct {
		listen, advertise string
		hostname          func() (string, error)
		wantHost          string
		wantPort          int32
		wantErr           bool
	}{
		{"127.0.0.1:0", "", host, "127.0.0.1", 40001, false},
		{"localhost:9092", "", host, "localhost", 40001, false},
		{"0.0.0.0:9092", "", host, "box.example", 40001, false},
		{"[::]:9092", "", host, "box.example", 40001, false},
		{":9092", "", host, "box.example", 40001, false},
		{":9092", "", noHost, "", 0, true},
		{"0.0.0.0:9092", "kafka.example:19092", noHost, "kafka.example", 19092, false},
		{"[::1]:9092", "", host, "::1", 40001, false},
	}
	for _, tt := range tests {
		cfg := config{Listen: tt.listen, Advertise: tt.advertise}
		h, p, err := advertisedAddr(cfg, bound, tt.hostname)
		if (err != nil) != tt.wantErr || h != tt.wantHost || p != tt.wantPort {
			t.Errorf("advertisedAddr(listen %q, advertise %q) = %q, %d, %v; want %q, %d, err %v",
				tt.listen, tt.advertise, h, p, err, tt.wantHost, tt.wantPort, tt.wantErr)
		}
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"listen": "EASEL_LISTEN", "data-dir": "EASEL_DATA_DIR", "max-message-bytes": "EASEL_MAX_MESSAGE_BYTES",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// FuzzParseConfig checks that any arguments, environment and --config file
// either fail with errUsage (or flag.ErrHelp) or yield a config that keeps
// its invariants.
func FuzzParseConfig(f *testing.F) {
	f.Add("--listen\x00127.0.0.1:0", "EASEL_NODE_ID=3", "")
	f.Add("--num-partitions\x000", "", "num.partitions=2")
	f.Add("-segment-bytes=14\x00--retention-ms=-1", "EASEL_LOG_LEVEL=debug", "log.retention.hours=-3\nlisteners=PLAINTEXT://:1")
	f.Add("--advertise\x00[::1]:9092", "EASEL_AUTO_CREATE_TOPICS=false\x00EASEL_MAX_CONNECTIONS=-5", "controller.quorum.voters=0@h:1\neasel.gossip.listen=h:2")
	f.Add("-h", "", "")
	f.Fuzz(func(t *testing.T, args, environ, file string) {
		e := env{}
		for kv := range strings.SplitSeq(environ, "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "EASEL_CONFIG" {
				e[k] = v
			}
		}
		var argv []string
		if args != "" {
			argv = strings.Split(args, "\x00")
		}
		if file != "" {
			p := filepath.Join(t.TempDir(), "f.properties")
			if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			e["EASEL_CONFIG"] = p
		}
		cfg, err := parseConfig(argv, e.lookup, io.Discard)
		if err != nil {
			if !errors.Is(err, errUsage) && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("error %v is neither errUsage nor flag.ErrHelp", err)
			}
			return
		}
		if err := cfg.Topic.Validate(); err != nil {
			t.Fatalf("config passed with invalid topic defaults: %v", err)
		}
		if cfg.NodeID < 0 || cfg.MaxConnections == 0 || cfg.ShutdownTimeout <= 0 || cfg.DataDir == "" {
			t.Fatalf("config breaks an invariant: %+v", cfg)
		}
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
			t.Fatalf("listen address %q: %v", cfg.Listen, err)
		}
		bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
		host, port, err := advertisedAddr(cfg, bound, func() (string, error) { return "h", nil })
		if err != nil || host == "" || port <= 0 {
			t.Fatalf("advertisedAddr(%q, %q) = %q, %d, %v", cfg.Listen, cfg.Advertise, host, port, err)
		}
		if err := cfg.Loaded.print(io.Discard); err != nil {
			t.Fatalf("print: %v", err)
		}
	})
}
