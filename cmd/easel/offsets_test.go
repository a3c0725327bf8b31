package main

// The binary and __consumer_offsets left by other versions: an earlier
// Easel's layout is migrated at start; a topic in no known format stops
// the start with instructions.

import (
	be "encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// legacyOffsetRecord is a committed offset as Easel stored it before
// package group owned __consumer_offsets (see go doc ./group).
func legacyOffsetRecord(group, topic string, partition int32, offset int64, metadata string) record.Record {
	k := be.BigEndian.AppendUint16(nil, 1)
	k = be.BigEndian.AppendUint16(k, uint16(len(group)))
	k = append(k, group...)
	k = be.BigEndian.AppendUint16(k, uint16(len(topic)))
	k = append(k, topic...)
	k = be.BigEndian.AppendUint32(k, uint32(partition))
	v := be.BigEndian.AppendUint64(nil, uint64(offset))
	v = be.BigEndian.AppendUint32(v, 0xFFFFFFFF) // leader epoch -1
	v = be.BigEndian.AppendUint64(v, uint64(time.Now().UnixMilli()))
	v = be.BigEndian.AppendUint32(v, uint32(len(metadata)))
	return record.Record{Key: k, Value: append(v, metadata...)}
}

// openDir opens dir with the engine, with a topic "orders" of 3 partitions
// and __consumer_offsets of n partitions, and returns partition 0 of the
// latter.
func openDir(t *testing.T, dir string, n int32) (*engine.Engine, *engine.Partition) {
	t.Helper()
	eng, err := engine.Open(dir, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for name, parts := range map[string]int32{"orders": 3, engine.ConsumerOffsetsTopic: n} {
		if err := eng.CreateTopic(name, engine.TopicConfig{Partitions: parts, RetentionMs: -1, RetentionBytes: -1}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := eng.Partition(engine.ConsumerOffsetsTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return eng, p
}

// TestLegacyOffsetsMigrated starts the binary on a data directory of the
// previous version: its committed offsets are served after the migration.
func TestLegacyOffsetsMigrated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	eng, p := openDir(t, dir, 1)
	var recs []record.Record
	for g := range 20 {
		for part := range int32(3) {
			recs = append(recs, legacyOffsetRecord(fmt.Sprint("old-group-", g), "orders", part, int64(10*g)+int64(part), "m"))
		}
	}
	if _, err := p.AppendRecords(codec.None, recs...); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	pr := startEasel(t, "--data-dir", dir)
	pr.waitLog(regexp.MustCompile(`msg="group: migrated __consumer_offsets to Kafka's format" offsets=60 partitions=50`), 10*time.Second)
	adm := kadm.NewClient(newClient(t, pr.addr))
	ctx := testContext(t, 30*time.Second)
	for g := range 20 {
		got, err := adm.FetchOffsets(ctx, fmt.Sprint("old-group-", g))
		if err != nil {
			t.Fatal(err)
		}
		for part := range int32(3) {
			if o, ok := got.Lookup("orders", part); !ok || o.At != int64(10*g)+int64(part) || o.Metadata != "m" {
				t.Fatalf("group %d partition %d: %+v (found %v)", g, part, o, ok)
			}
		}
	}
	topics, err := adm.ListTopicsWithInternal(ctx, engine.ConsumerOffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topics[engine.ConsumerOffsetsTopic].Partitions); n != 50 {
		t.Fatalf("__consumer_offsets has %d partitions after the migration", n)
	}
}

// TestUnknownOffsetsTopicExits1 starts the binary on a __consumer_offsets
// that no Easel wrote: it exits 1, saying what to do.
func TestUnknownOffsetsTopicExits1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	eng, p := openDir(t, dir, 3)
	if _, err := p.AppendRecords(codec.None, record.Record{Key: []byte("key"), Value: []byte("value")}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	pr := launch(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	if code := pr.wait(60 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if logs := pr.logs.String(); !strings.Contains(logs, "move the directories __consumer_offsets-*") {
		t.Fatalf("the log does not say what to do:\n%s", logs)
	}
}
