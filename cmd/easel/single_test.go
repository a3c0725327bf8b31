package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// A data directory of a single node from before it was a cluster of one
// (topics in .meta, the cluster id and producer-id counter in broker.*
// files) is imported into the metadata log at start: the same topics, ids,
// settings and records, the same cluster id, producer ids above the old
// counter; .meta is renamed so that it is never imported again, and a
// restart finds everything as it was.
func TestSingleNodeLegacyImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	eng, err := engine.Open(dir, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var cfg engine.TopicConfig
	cfg.Partitions = 2
	if err := cfg.Set("retention.ms", "-1"); err != nil {
		t.Fatal(err)
	}
	if err := eng.CreateTopic("old", cfg); err != nil {
		t.Fatal(err)
	}
	info, err := eng.Topic("old")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := eng.Produce("old", codec.None, record.Record{Key: []byte(strconv.Itoa(i % 2)), Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	const clusterID = "legacy-cluster-id-0001"
	if err := os.WriteFile(filepath.Join(dir, "broker.cluster-id"), []byte(clusterID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broker.producer-id"), []byte("5000\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	check := func(p *proc) {
		t.Helper()
		ctx := testContext(t, 60*time.Second)
		cl := newClient(t, p.addr)
		adm := kadm.NewClient(cl)
		m, err := adm.Metadata(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		if m.Cluster != clusterID {
			t.Errorf("cluster id %q, want %q", m.Cluster, clusterID)
		}
		td := m.Topics["old"]
		if td.Err != nil || len(td.Partitions) != 2 {
			t.Fatalf("topic old: %+v (want 2 partitions)", td)
		}
		// The same topic id: the old logs are hosted, none set aside.
		if strays, _ := filepath.Glob(filepath.Join(dir, "*-stray*")); len(strays) > 0 {
			t.Fatalf("logs set aside: %v (topic id %v)", strays, info.ID)
		}
		rc, err := adm.DescribeTopicConfigs(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := rc.On("old", nil); err != nil {
			t.Fatal(err)
		} else {
			found := false
			for _, c := range v.Configs {
				if c.Key == "retention.ms" {
					found = true
					if c.MaybeValue() != "-1" {
						t.Errorf("retention.ms %q, want -1", c.MaybeValue())
					}
				}
			}
			if !found {
				t.Errorf("no retention.ms in %+v", v.Configs)
			}
		}
		cons := newClient(t, p.addr, kgo.ConsumeTopics("old"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		got := 0
		for got < 10 {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read %d of the 10 old records", got)
			}
			got += fs.NumRecords()
		}
		req := kmsg.NewPtrInitProducerIDRequest()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 || resp.ProducerID < 5000 {
			t.Fatalf("producer id %+v %v, want >= 5000", resp, err)
		}
	}
	p := startEasel(t, "--data-dir", dir)
	check(p)
	if _, err := os.Stat(filepath.Join(dir, ".meta")); !os.IsNotExist(err) {
		t.Errorf(".meta still there after the import: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".meta-imported")); err != nil {
		t.Errorf(".meta-imported: %v", err)
	}
	if code := p.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	check(startEasel(t, "--data-dir", dir))
}
