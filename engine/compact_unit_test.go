package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

func TestCompactionConfig(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        string // the value Entries shows; "" means an error
	}{
		{"cleanup.policy", "compact", "compact"},
		{"cleanup.policy", "compact,delete", "compact,delete"},
		{"cleanup.policy", " delete , compact ", "delete,compact"},
		{"cleanup.policy", "compact,compact", "compact"},
		{"cleanup.policy", "", ""},
		{"cleanup.policy", "compact,", ""},
		{"cleanup.policy", "shred", ""},
		{"delete.retention.ms", "0", "0"},
		{"delete.retention.ms", "-1", ""},
		{"delete.retention.ms", "1d", ""},
		{"min.compaction.lag.ms", "100", "100"},
		{"min.compaction.lag.ms", "-5", ""},
		{"max.compaction.lag.ms", "0", ""},
		{"max.compaction.lag.ms", "60000", "60000"},
		{"min.cleanable.dirty.ratio", "0", "0"},
		{"min.cleanable.dirty.ratio", "0.25", "0.25"},
		{"min.cleanable.dirty.ratio", "1", "1"},
		{"min.cleanable.dirty.ratio", "1.5", ""},
		{"min.cleanable.dirty.ratio", "-0.1", ""},
		{"min.cleanable.dirty.ratio", "NaN", ""},
		{"min.cleanable.dirty.ratio", "half", ""},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			var c TopicConfig
			err := c.Set(tc.name, tc.value)
			c = c.withDefaults(DefaultTopicConfig())
			if err == nil {
				err = c.Validate()
			}
			if tc.want == "" {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("got %v, want an error wrapping ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.IsSet(tc.name) {
				t.Fatalf("%s not marked set", tc.name)
			}
			for _, en := range c.Entries() {
				if en.Name == tc.name && en.Value != tc.want {
					t.Fatalf("Entries shows %s=%q, want %q", en.Name, en.Value, tc.want)
				}
			}
		})
	}
	d := DefaultTopicConfig()
	if d.DeleteRetentionMs != 86400000 || d.MinCompactionLagMs != 0 || d.MaxCompactionLagMs != math.MaxInt64 || d.MinCleanableDirtyRatio != 0.5 {
		t.Fatalf("defaults %+v", d)
	}
	var c TopicConfig
	if err := c.Set("min.compaction.lag.ms", "10"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("max.compaction.lag.ms", "5"); err != nil {
		t.Fatal(err)
	}
	if err := c.withDefaults(d).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("min lag above max lag: %v", err)
	}
}

// Topic settings persist across a reopen, and a topic written before the
// compaction settings existed gets their defaults.
func TestCompactionConfigPersists(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	var cfg TopicConfig
	for k, v := range map[string]string{"cleanup.policy": "compact,delete", "min.cleanable.dirty.ratio": "0", "delete.retention.ms": "7"} {
		if err := cfg.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateTopic("c", cfg); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	info, err := e.Topic("c")
	if err != nil {
		t.Fatal(err)
	}
	got := info.Config
	if got.CleanupPolicy != "compact,delete" || got.MinCleanableDirtyRatio != 0 || got.DeleteRetentionMs != 7 || got.MaxCompactionLagMs != math.MaxInt64 {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestOffsetMap(t *testing.T) {
	var m offsetMap
	m.reset(1000, 1<<20)
	for i := range 1000 {
		if !m.room(1) || !m.put([]byte("key"+strconv.Itoa(i%300)), int64(i)) {
			t.Fatalf("put %d failed with %d of %d used", i, m.used, m.limit)
		}
	}
	if m.used != 300 {
		t.Fatalf("%d entries, want 300", m.used)
	}
	for k := range 300 {
		want := int64(k + 900)
		if k+900 >= 1000 {
			want = int64(k + 600)
		}
		if got := m.get([]byte("key" + strconv.Itoa(k))); got != want {
			t.Fatalf("key%d: %d, want %d", k, got, want)
		}
	}
	if got := m.get([]byte("absent")); got != -1 {
		t.Fatalf("absent key: %d", got)
	}
	// Bounded by the buffer: 64 slots at least, 90% usable.
	m.reset(1<<30, 10*offsetMapEntry)
	if len(m.slots) != 64 || m.limit != 57 {
		t.Fatalf("%d slots, limit %d", len(m.slots), m.limit)
	}
	n := 0
	for m.put([]byte(strconv.Itoa(n)), 1) {
		n++
	}
	if n != m.limit || m.room(1) {
		t.Fatalf("took %d keys, limit %d", n, m.limit)
	}
}

func TestThrottle(t *testing.T) {
	th := throttle{rate: 1 << 20}
	start := time.Now()
	th.wait(1 << 18) // a quarter of a second's worth
	th.wait(1 << 18)
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("512 KiB at 1 MiB/s took %v", d)
	}
	stop := make(chan struct{})
	close(stop)
	th = throttle{rate: 1, stop: stop}
	start = time.Now()
	th.wait(1 << 20)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a stopped throttle slept %v", d)
	}
}

// clockEngine opens an engine whose clock reads *now, closed at the end
// of the test.
func clockEngine(t testing.TB, now *time.Time) *Engine {
	t.Helper()
	opts := quietOpts()
	opts.Now = func() time.Time { return *now }
	e := mustOpen(t, t.TempDir(), opts)
	t.Cleanup(func() { e.Close() })
	return e
}

// compactNow runs retention and compaction once.
func compactNow(t testing.TB, e *Engine) {
	t.Helper()
	if _, err := e.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
}

// compactTopic creates a compacted topic c with settings from kv.
func compactTopic(t testing.TB, e *Engine, segBytes int64, kv ...string) *Partition {
	t.Helper()
	cfg := TopicConfig{Partitions: 1, SegmentBytes: segBytes}
	kv = append([]string{"cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0"}, kv...)
	for i := 0; i < len(kv); i += 2 {
		if err := cfg.Set(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateTopic("c", cfg); err != nil {
		t.Fatal(err)
	}
	p, err := e.Partition("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendKV(t testing.TB, p *Partition, ts int64, kv ...string) {
	t.Helper()
	var recs []record.Record
	for i := 0; i < len(kv); i += 2 {
		r := record.Record{Key: []byte(kv[i]), Timestamp: ts}
		if kv[i+1] != "" {
			r.Value = []byte(kv[i+1])
		}
		recs = append(recs, r)
	}
	if _, err := p.Append(buildBatch(t, recs, 0, -1, 0, 0)); err != nil {
		t.Fatal(err)
	}
}

// latestOf reads p and returns each key's last value ("" for a tombstone)
// and the number of records read.
func latestOf(t testing.TB, p *Partition) (map[string]string, int) {
	t.Helper()
	it := p.Records(p.StartOffset())
	defer it.Close()
	out := make(map[string]string)
	n := 0
	for it.Next() {
		out[string(it.Record().Key)] = string(it.Record().Value)
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out, n
}

// A dedupe buffer smaller than the keys makes each pass clean part of the
// log; the latest value of each key is never lost. A batch with more keys
// than the buffer maps is ErrCleanerBuffer.
func TestCompactionSmallBuffer(t *testing.T) {
	opts := quietOpts()
	opts.CleanerDedupeBufferSize = 64 * offsetMapEntry // 57 keys
	e := mustOpen(t, t.TempDir(), opts)
	defer e.Close()
	p := compactTopic(t, e, 1024)
	want := make(map[string]string)
	for i := range 300 {
		k, v := "k"+strconv.Itoa(i%100), "v"+strconv.Itoa(i)
		appendKV(t, p, 0, k, v)
		want[k] = v
	}
	_, before := latestOf(t, p)
	var lastRead int
	for pass := range 6 {
		compactNow(t, e)
		got, n := latestOf(t, p)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("pass %d: %s = %q, want %q", pass, k, got[k], v)
			}
		}
		lastRead = n
	}
	if lastRead >= before {
		t.Fatalf("%d records before, %d after 6 passes", before, lastRead)
	}
	// One batch of 100 distinct keys cannot be mapped at all.
	var kv []string
	for i := range 100 {
		kv = append(kv, "big"+strconv.Itoa(i), "x")
	}
	appendKV(t, p, 0, kv...)
	appendKV(t, p, 0, "pad", string(bytes.Repeat([]byte("p"), 1100))) // seals it
	var err error
	for range 20 {
		if _, err = e.EnforceRetention(); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrCleanerBuffer) {
		t.Fatalf("got %v, want ErrCleanerBuffer", err)
	}
	if got, _ := latestOf(t, p); got["big7"] != "x" || got["k3"] != want["k3"] {
		t.Fatalf("a failed pass changed the log: %v", got)
	}
}

// min.compaction.lag.ms keeps young segments out; max.compaction.lag.ms
// forces a pass the dirty ratio would skip.
func TestCompactionLags(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e := clockEngine(t, &now)
	p := compactTopic(t, e, 200, "min.compaction.lag.ms", "60000", "min.cleanable.dirty.ratio", "0.99", "max.compaction.lag.ms", "120000")
	pad := string(bytes.Repeat([]byte("p"), 300))
	for i := range 20 {
		appendKV(t, p, now.UnixMilli(), "k", "v"+strconv.Itoa(i))
	}
	now = now.Add(30 * time.Second)
	appendKV(t, p, now.UnixMilli(), "pad", pad) // rolls: the k segments are sealed
	_, n0 := latestOf(t, p)
	compactNow(t, e)
	if _, n := latestOf(t, p); n != n0 {
		t.Fatalf("records younger than min.compaction.lag.ms compacted: %d -> %d", n0, n)
	}
	now = now.Add(60 * time.Second)
	compactNow(t, e)
	_, n1 := latestOf(t, p)
	if n1 >= n0 {
		t.Fatalf("old enough but not compacted: %d -> %d", n0, n1)
	}
	// A little more dirt, far below the 0.99 ratio: no pass ...
	for i := range 3 {
		appendKV(t, p, now.UnixMilli(), "k", "w"+strconv.Itoa(i))
	}
	appendKV(t, p, now.UnixMilli(), "pad", pad)
	now = now.Add(50 * time.Second)
	compactNow(t, e)
	_, n2 := latestOf(t, p)
	if n2 != n1+4 {
		t.Fatalf("compacted below min.cleanable.dirty.ratio: %d records, want %d", n2, n1+4)
	}
	// ... until the first dirty record is older than max.compaction.lag.ms.
	now = now.Add(60 * time.Second)
	compactNow(t, e)
	got, n3 := latestOf(t, p)
	if n3 >= n2 || got["k"] != "w2" {
		t.Fatalf("max.compaction.lag.ms did not force a pass: %d -> %d records, k=%q", n2, n3, got["k"])
	}
}

// compact,delete applies both: old segments go by retention.ms, the rest
// is compacted.
func TestCompactAndDelete(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e := clockEngine(t, &now)
	p := compactTopic(t, e, 200, "cleanup.policy", "compact,delete", "retention.ms", "1000")
	for i := range 10 {
		appendKV(t, p, now.UnixMilli(), "old", "v"+strconv.Itoa(i))
	}
	now = now.Add(5 * time.Second)
	for i := range 10 {
		appendKV(t, p, now.UnixMilli(), "new", "v"+strconv.Itoa(i))
	}
	compactNow(t, e)
	got, n := latestOf(t, p)
	if _, ok := got["old"]; ok || got["new"] != "v9" || n > 3 {
		t.Fatalf("after compact,delete: %v (%d records)", got, n)
	}
}

// A follower copies a compacted leader's batches, holes and empty
// batches included, byte for byte.
func TestFollowerCopiesCompactedLog(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	p := compactTopic(t, e, 300, "delete.retention.ms", "0")
	for i := range 60 {
		v := "v" + strconv.Itoa(i)
		if i%9 == 0 {
			v = ""
		}
		appendKV(t, p, 0, "k"+strconv.Itoa(i%5), v, "j", strconv.Itoa(i))
	}
	for range 2 {
		compactNow(t, e)
	}
	if err := e.CreateTopic("f", TopicConfig{Partitions: 1, SegmentBytes: 300}); err != nil {
		t.Fatal(err)
	}
	f, _ := e.Partition("f", 0)
	if err := f.BecomeFollower(1); err != nil {
		t.Fatal(err)
	}
	fw, err := f.Follower(1)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < p.EndOffset(); {
		c, err := p.ReadReplica(off, 500)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, c.Size())
		if c.File != nil {
			_, err = c.File.ReadAt(b, c.Pos)
		} else {
			copy(b, c.Bytes)
		}
		c.Release()
		if err != nil {
			t.Fatal(err)
		}
		res, err := fw.Append(b)
		if err != nil {
			t.Fatalf("follower append at %d: %v", off, err)
		}
		off = res.LastOffset + 1
	}
	lb, fb := readAllBatches(t, p), readAllBatches(t, f)
	if f.EndOffset() != p.EndOffset() || len(lb) != len(fb) {
		t.Fatalf("follower ends at %d with %d batches, leader %d with %d", f.EndOffset(), len(fb), p.EndOffset(), len(lb))
	}
	holes := 0
	for i := range lb {
		if !bytes.Equal(lb[i], fb[i]) {
			t.Fatalf("batch %d differs", i)
		}
		if i > 0 {
			ph, _ := record.ParseHeader(lb[i-1])
			h, _ := record.ParseHeader(lb[i])
			if h.BaseOffset > ph.LastOffset()+1 {
				holes++
			}
		}
	}
	if holes == 0 {
		t.Fatalf("the compacted log has no holes between batches: the test tests nothing")
	}
	t.Logf("%d batches, %d holes between them", len(lb), holes)
}

// A compacted topic refuses records without a key (INVALID_RECORD in
// Kafka); a delete topic takes them.
func TestCompactedTopicNeedsKeys(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	p := compactTopic(t, e, 1<<20)
	for _, c := range codecs() {
		b := buildBatch(t, []record.Record{{Key: []byte("k"), Value: []byte("v")}, {Value: []byte("no key")}}, c, -1, 0, 0)
		if _, err := p.Append(b); !errors.Is(err, record.ErrInvalid) {
			t.Fatalf("codec %d: keyless record: %v, want record.ErrInvalid", c, err)
		}
	}
	if p.EndOffset() != 0 {
		t.Fatalf("a refused batch was appended")
	}
	if err := e.CreateTopic("d", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	d, _ := e.Partition("d", 0)
	if _, err := d.Append(buildBatch(t, []record.Record{{Value: []byte("no key")}}, 0, -1, 0, 0)); err != nil {
		t.Fatal(err)
	}
}

// Appends, reads and compaction passes run at once (under -race in CI):
// every read sees offsets increase and each key's values in the order
// written, and the end holds each key's last value.
func TestCompactionConcurrent(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	p := compactTopic(t, e, 2048)
	stop := make(chan struct{})
	errs := make(chan error, 3)
	last := make(map[string]int)
	go func() { // the writer
		for n := 0; ; n++ {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			k := "k" + strconv.Itoa(n%20)
			rec := record.Record{Key: []byte(k), Value: []byte(k + "/" + strconv.Itoa(n))}
			if _, err := p.Append(buildBatch(t, []record.Record{rec}, int8(n%5), -1, 0, 0)); err != nil {
				errs <- err
				return
			}
			last[k] = n
		}
	}()
	go func() { // compaction
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if _, err := e.EnforceRetention(); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() { // a reader from the start, again and again
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			it := p.Records(p.StartOffset())
			prev, seen := int64(-1), make(map[string]int)
			for it.Next() {
				r := it.Record()
				var n int
				k, v, _ := bytes.Cut(r.Value, []byte("/"))
				n, _ = strconv.Atoi(string(v))
				if r.Offset <= prev || string(k) != string(r.Key) || n < seen[string(k)] {
					errs <- fmt.Errorf("offset %d (after %d) key %q value %q, seen %d", r.Offset, prev, r.Key, r.Value, seen[string(k)])
					it.Close()
					return
				}
				prev, seen[string(k)] = r.Offset, n
			}
			if err := it.Close(); err != nil {
				errs <- err
				return
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, n := latestOf(t, p)
	for k, v := range last {
		if got[k] != k+"/"+strconv.Itoa(v) {
			t.Fatalf("%s = %q, want its last value %d", k, got[k], v)
		}
	}
	if int64(n) >= p.EndOffset() {
		t.Fatalf("nothing compacted: %d records of %d offsets", n, p.EndOffset())
	}
}
