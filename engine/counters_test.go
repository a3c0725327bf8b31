package engine

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// countingObserver counts what an engine reports.
type countingObserver struct {
	batches, bytes, records, syncs atomic.Int64
}

func (o *countingObserver) Appended(bytes, records int) {
	o.batches.Add(1)
	o.bytes.Add(int64(bytes))
	o.records.Add(int64(records))
}

func (o *countingObserver) Synced(d time.Duration) {
	if d >= 0 {
		o.syncs.Add(1)
	}
}

// Leader appends count per topic and reach the Observer, duplicates of an
// idempotent producer do not; fsyncs are observed; TopicStats sums what the
// partitions hold on disk.
func TestTopicCountersAndObserver(t *testing.T) {
	obs := &countingObserver{}
	e, err := Open(t.TempDir(), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cfg := DefaultTopicConfig()
	cfg.Partitions = 2
	for _, name := range []string{"a", "b"} {
		if err := e.CreateTopic(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	var wantBytes, wantRecords int64
	for i := range 5 {
		p, err := e.Partition("a", int32(i%2))
		if err != nil {
			t.Fatal(err)
		}
		batch := simpleBatch(t, i+1, 100, 1000)
		n := int64(len(batch))
		if _, err := p.Append(batch); err != nil {
			t.Fatal(err)
		}
		wantBytes += n
		wantRecords += int64(i + 1)
	}
	// An idempotent retry is a duplicate: not counted again.
	p0, _ := e.Partition("a", 0)
	dup := buildBatch(t, []record.Record{{Timestamp: 1000, Value: []byte("x")}}, codec.None, 7, 0, 0)
	for i := range 2 {
		res, err := p0.Append(append([]byte(nil), dup...))
		if err != nil || res.Duplicate != (i == 1) {
			t.Fatalf("idempotent append %d: %+v, %v", i, res, err)
		}
	}
	wantBytes += int64(len(dup))
	wantRecords++
	if err := p0.Flush(); err != nil {
		t.Fatal(err)
	}

	got := map[string][2]int64{}
	e.EachTopicCounters(func(topic string, c *TopicCounters) {
		got[topic] = [2]int64{c.BytesIn.Load(), c.RecordsIn.Load()}
	})
	if got["a"] != [2]int64{wantBytes, wantRecords} || got["b"] != [2]int64{} || len(got) != 2 {
		t.Fatalf("counters %v, want a: %d bytes %d records, b: zero", got, wantBytes, wantRecords)
	}
	if obs.batches.Load() != 6 || obs.bytes.Load() != wantBytes || obs.records.Load() != wantRecords {
		t.Fatalf("observer saw %d batches %d bytes %d records, want 6, %d, %d", obs.batches.Load(), obs.bytes.Load(), obs.records.Load(), wantBytes, wantRecords)
	}
	if obs.syncs.Load() < 1 {
		t.Fatal("Flush did not reach the observer")
	}
	if p0.Counters() != p0.ctrs || p0.Counters() == nil {
		t.Fatal("Counters is not the partition's topic counters")
	}

	stats := map[string]TopicStats{}
	for _, ts := range e.TopicStats() {
		stats[ts.Name] = ts
	}
	if a := stats["a"]; a.Partitions != 2 || a.Segments != 2 || a.Bytes != wantBytes {
		t.Fatalf("stats of a %+v, want 2 partitions, 2 segments, %d bytes", a, wantBytes)
	}
	if b := stats["b"]; b.Partitions != 2 || b.Bytes != 0 {
		t.Fatalf("stats of b %+v", b)
	}
	if all := e.Stats(); all.Bytes != wantBytes || all.Partitions != 4 {
		t.Fatalf("engine stats %+v", all)
	}
}

// The background fsync of each rolled segment reaches the Observer too
// (without flush.messages or a Flush, those are the only fsyncs).
func TestObserverSeesRollFsyncs(t *testing.T) {
	obs := &countingObserver{}
	e, err := Open(t.TempDir(), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes = 2048
	if err := e.CreateTopic("r", cfg); err != nil {
		t.Fatal(err)
	}
	p, err := e.Partition("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := p.Append(simpleBatch(t, 1, 1500, int64(1000+i))); err != nil {
			t.Fatal(err)
		}
	}
	rolled := int64(len(p.log.Segments()) - 1)
	if err := e.Close(); err != nil { // waits for the background fsyncs
		t.Fatal(err)
	}
	if rolled < 3 || obs.syncs.Load() < rolled {
		t.Fatalf("%d fsyncs observed for %d rolled segments", obs.syncs.Load(), rolled)
	}
}
