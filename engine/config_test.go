package engine

import (
	"bytes"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// openTestEngine opens an engine in a new directory, closed when the test
// ends.
func openTestEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	e, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestTopicConfigSet checks Set's parsing and Validate's ranges for every
// topic setting: what Kafka accepts is accepted, the rest is
// ErrInvalidConfig.
func TestTopicConfigSet(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"compression.type", "zstd", true},
		{"compression.type", "producer", true},
		{"compression.type", "uncompressed", true},
		{"compression.type", "GZIP", true},
		{"compression.type", "none", false},
		{"compression.type", "brotli", false},
		{"file.delete.delay.ms", "0", true},
		{"file.delete.delay.ms", "-1", false},
		{"flush.messages", "1", true},
		{"flush.messages", "0", false},
		{"flush.ms", "0", true},
		{"flush.ms", "-1", false},
		{"index.interval.bytes", "0", true},
		{"index.interval.bytes", "-1", false},
		{"index.interval.bytes", "4294967296", false}, // not an INT
		{"max.message.bytes", "0", true},
		{"max.message.bytes", "2147483648", false},
		{"message.timestamp.type", "LogAppendTime", true},
		{"message.timestamp.type", "logappendtime", false},
		{"message.timestamp.difference.max.ms", "1000", true},
		{"message.timestamp.before.max.ms", "0", true},
		{"message.timestamp.after.max.ms", "-5", false},
		{"message.downconversion.enable", "False", true},
		{"message.downconversion.enable", "no", false},
		{"preallocate", "true", true},
		{"preallocate", "1", false},
		{"retention.bytes", "0", true},
		{"retention.bytes", "-7", true}, // negative: no limit, as in Kafka
		{"retention.ms", "-1", true},
		{"retention.ms", "-2", false},
		{"retention.ms", "abc", false},
		{"segment.bytes", "14", true},
		{"segment.bytes", "13", false},
		{"segment.bytes", "2147483648", false},
		{"segment.index.bytes", "4", true},
		{"segment.index.bytes", "3", false},
		{"segment.jitter.ms", "0", true},
		{"segment.jitter.ms", "-1", false},
		{"segment.ms", "1", true},
		{"segment.ms", "0", false},
		{"segment.ms", " 60000 ", true}, // Kafka trims
		{"no.such.config", "1", false},
	} {
		c := DefaultTopicConfig()
		err := c.Set(tc.name, tc.value)
		if err == nil {
			err = c.Validate()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s=%q: err %v, want ok=%v", tc.name, tc.value, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s=%q: %v does not wrap ErrInvalidConfig", tc.name, tc.value, err)
		}
	}
}

// TestTopicConfigEntriesRoundTrip checks that every entry Entries reports
// parses back with Set to the same config, and that a zero given with Set
// survives the defaults.
func TestTopicConfigEntriesRoundTrip(t *testing.T) {
	c := DefaultTopicConfig()
	for _, kv := range [][2]string{{"compression.type", "lz4"}, {"segment.jitter.ms", "5"}, {"preallocate", "true"},
		{"message.downconversion.enable", "false"}, {"message.timestamp.before.max.ms", "0"}, {"file.delete.delay.ms", "0"}} {
		if err := c.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	c = c.withDefaults(DefaultTopicConfig())
	if c.TimestampBeforeMaxMs != 0 || c.FileDeleteDelayMs != 0 || c.MessageDownconversion {
		t.Fatalf("explicit zeros lost to the defaults: %+v", c)
	}
	var back TopicConfig
	back.Partitions = c.Partitions
	for _, e := range c.Entries() {
		if err := back.Set(e.Name, e.Value); err != nil {
			t.Fatalf("Set(%s, %q): %v", e.Name, e.Value, err)
		}
	}
	back.explicit = c.explicit
	if back != c {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, c)
	}
	if n := len(c.Entries()); n != len(configKeys) {
		t.Fatalf("%d entries, %d keys", n, len(configKeys))
	}
}

func TestTimestampBounds(t *testing.T) {
	c := DefaultTopicConfig()
	if b, a := c.TimestampBounds(); b != math.MaxInt64 || a != math.MaxInt64 {
		t.Fatalf("defaults: %d %d", b, a)
	}
	c.Set("message.timestamp.difference.max.ms", "100")
	if b, a := c.TimestampBounds(); b != 100 || a != 100 {
		t.Fatalf("difference only: %d %d", b, a)
	}
	c.Set("message.timestamp.after.max.ms", "7")
	if b, a := c.TimestampBounds(); b != 100 || a != 7 {
		t.Fatalf("difference and after: %d %d", b, a)
	}
}

// TestAppendTimestampBounds checks that CreateTime batches with a record
// outside message.timestamp.before/after.max.ms are refused with
// ErrInvalidTimestamp, compressed or not, and that LogAppendTime topics are
// not checked.
func TestAppendTimestampBounds(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e, err := Open(t.TempDir(), Options{Now: func() time.Time { return now }, RetentionCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var cfg TopicConfig
	cfg.Set("message.timestamp.before.max.ms", "1000")
	cfg.Set("message.timestamp.after.max.ms", "500")
	if err := e.CreateTopic("ts", cfg); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("ts", 0)
	ms := now.UnixMilli()
	for _, tc := range []struct {
		ts []int64
		ok bool
	}{
		{[]int64{ms}, true},
		{[]int64{ms - 1000, ms + 500}, true},
		{[]int64{ms, ms - 1001}, false}, // the second record is too old
		{[]int64{ms + 501}, false},
	} {
		for _, c := range []int8{codec.None, codec.Zstd} {
			recs := make([]record.Record, len(tc.ts))
			for i, ts := range tc.ts {
				recs[i] = record.Record{Timestamp: ts, Value: []byte("v")}
			}
			_, err := p.Append(buildBatch(t, recs, c, -1, 0, 0))
			if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrInvalidTimestamp) {
				t.Errorf("timestamps %v codec %d: %v, want ok=%v", tc.ts, c, err, tc.ok)
			}
		}
	}
	// LogAppendTime: the broker's time is stamped, nothing is checked.
	lat := cfg
	lat.Set("message.timestamp.type", "LogAppendTime")
	if err := e.SetTopicConfig("ts", lat); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(simpleBatch(t, 1, 1, ms-1_000_000)); err != nil {
		t.Fatalf("LogAppendTime topic: %v", err)
	}
}

// TestAppendRecompress checks compression.type: batches in another codec
// are stored re-compressed with the same records, idempotent retries are
// still recognised, and "producer" keeps the batch as produced.
func TestAppendRecompress(t *testing.T) {
	e := openTestEngine(t, Options{RetentionCheckInterval: -1})
	var cfg TopicConfig
	cfg.Set("compression.type", "zstd")
	if err := e.CreateTopic("z", cfg); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("z", 0)
	recs := []record.Record{{Timestamp: 5, Key: []byte("k1"), Value: bytes.Repeat([]byte("a"), 300)},
		{Timestamp: 9, Value: []byte("v2"), Headers: []record.RecordHeader{{Key: "h", Value: []byte("x")}}}}
	in := buildBatch(t, recs, codec.Snappy, 42, 3, 0)
	orig := bytes.Clone(in)
	res, err := p.Append(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, orig) {
		t.Fatal("Append changed the caller's batch though it stored another")
	}
	if dup, err := p.Append(bytes.Clone(orig)); err != nil || !dup.Duplicate || dup.BaseOffset != res.BaseOffset {
		t.Fatalf("retry: %+v %v", dup, err)
	}
	// Already zstd: stored as produced.
	zin := buildBatch(t, recs, codec.Zstd, -1, 0, 0)
	if _, err := p.Append(bytes.Clone(zin)); err != nil {
		t.Fatal(err)
	}
	got := readAllBatches(t, p)
	if len(got) != 2 {
		t.Fatalf("%d batches", len(got))
	}
	for i, b := range got {
		h, err := record.Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Codec() != codec.Zstd {
			t.Fatalf("batch %d stored with codec %d", i, h.Codec())
		}
		if i == 0 && (h.ProducerID != 42 || h.ProducerEpoch != 3 || h.BaseSequence != 0) {
			t.Fatalf("producer fields lost: %+v", h)
		}
		it := record.NewIterator(b, 0)
		j := 0
		for ; it.Next(); j++ {
			r := it.Record()
			if r.Timestamp != recs[j].Timestamp || !bytes.Equal(r.Key, recs[j].Key) || !bytes.Equal(r.Value, recs[j].Value) || len(r.Headers) != len(recs[j].Headers) {
				t.Fatalf("batch %d record %d: %+v, want %+v", i, j, r, recs[j])
			}
		}
		if it.Err() != nil || j != len(recs) {
			t.Fatalf("batch %d: %d records, %v", i, j, it.Err())
		}
	}
	// producer: kept in its own codec.
	cfg.Set("compression.type", "producer")
	if err := e.SetTopicConfig("z", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(buildBatch(t, recs, codec.Gzip, -1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	got = readAllBatches(t, p)
	if h, _ := record.ParseHeader(got[2]); h.Codec() != codec.Gzip {
		t.Fatalf("producer: stored with codec %d", h.Codec())
	}
}

// TestSetTopicConfigLive checks that a changed segment.bytes and
// retention.bytes take effect on an open partition without reopening it,
// and that the change survives a restart.
func TestSetTopicConfigLive(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{RetentionCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CreateTopic("live", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("live", 0)
	for range 10 {
		if _, err := p.Append(simpleBatch(t, 1, 1000, time.Now().UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segmentFiles(t, partDir(dir, "live", 0))); n != 1 {
		t.Fatalf("%d segments before the change", n)
	}
	var cfg TopicConfig
	cfg.Set("segment.bytes", "2500")
	cfg.Set("retention.bytes", "5000")
	if err := e.SetTopicConfig("live", cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.SetTopicConfig("nope", cfg); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	bad := cfg
	bad.Set("segment.ms", "0")
	if err := e.SetTopicConfig("live", bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("invalid: %v", err)
	}
	for range 10 {
		if _, err := p.Append(simpleBatch(t, 1, 1000, time.Now().UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
	segs := len(segmentFiles(t, partDir(dir, "live", 0)))
	if segs < 5 {
		t.Fatalf("%d segments: the lowered segment.bytes did not roll the open partition", segs)
	}
	if n, err := e.EnforceRetention(); err != nil || n == 0 {
		t.Fatalf("retention.bytes not applied: %d %v", n, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open(dir, Options{RetentionCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	info, err := e.Topic("live")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.SegmentBytes != 2500 || info.Config.RetentionBytes != 5000 || !info.Config.IsSet("segment.bytes") {
		t.Fatalf("after restart: %+v", info.Config)
	}
	if info.Config.CompressionType != CompressionProducer || info.Config.FileDeleteDelayMs != 60000 {
		t.Fatalf("defaults after restart: %+v", info.Config)
	}
}

// TestSegmentJitter checks segment.jitter.ms: segments roll by age no
// later than segment.ms, and with a jitter, earlier by a random amount.
func TestSegmentJitter(t *testing.T) {
	var now atomic.Int64
	now.Store(1_700_000_000_000)
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	e := openTestEngine(t, Options{Now: clock, RetentionCheckInterval: -1})
	var cfg TopicConfig
	cfg.Set("segment.ms", "1000")
	cfg.Set("segment.jitter.ms", "1000")
	if err := e.CreateTopic("j", cfg); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("j", 0)
	var ages []int64
	created := now.Load()
	for len(ages) < 20 {
		before := len(p.log.Segments())
		if _, err := p.Append(simpleBatch(t, 1, 10, now.Load())); err != nil {
			t.Fatal(err)
		}
		if len(p.log.Segments()) > before {
			ages = append(ages, now.Load()-created)
			created = now.Load()
		}
		now.Add(5)
	}
	early := 0
	for _, a := range ages {
		if a > 1005 {
			t.Fatalf("a segment rolled at age %d ms > segment.ms", a)
		}
		if a < 995 {
			early++
		}
	}
	if early < len(ages)/2 {
		t.Fatalf("ages %v: the jitter made almost no segment roll early", ages)
	}
}
