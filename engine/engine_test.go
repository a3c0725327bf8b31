package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

func quietOpts() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetentionCheckInterval: -1}
}

func mustOpen(t testing.TB, dir string, opts Options) *Engine {
	t.Helper()
	e, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return e
}

func readAll(t testing.TB, p *Partition, from int64) []record.Record {
	t.Helper()
	it := p.Records(from)
	var out []record.Record
	for it.Next() {
		r := *it.Record()
		r.Key = bytes.Clone(r.Key)
		r.Value = bytes.Clone(r.Value)
		r.Headers = nil
		out = append(out, r)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("iterate: %v", err)
	}
	return out
}

func TestProduceReadReopen(t *testing.T) {
	for _, store := range []string{"disk", "memory"} {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			opts := quietOpts()
			if store == "memory" {
				opts.Store = NewMemoryStore()
			}
			e := mustOpen(t, dir, opts)
			if err := e.CreateTopic("events", TopicConfig{Partitions: 3, SegmentBytes: 4096}); err != nil {
				t.Fatal(err)
			}
			if err := e.CreateTopic("events", TopicConfig{}); !errors.Is(err, ErrTopicExists) {
				t.Fatalf("duplicate create: %v", err)
			}
			if err := e.CreateTopic("bad/name", TopicConfig{}); !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("bad name: %v", err)
			}
			want := map[int32][]string{}
			for i := range 300 {
				k := []byte(fmt.Sprintf("key-%d", i%17))
				v := []byte(fmt.Sprintf("value-%d", i))
				c := []int8{codec.None, codec.Gzip, codec.None}[i%3]
				offs, err := e.Produce("events", c, record.Record{Key: k, Value: v, Timestamp: int64(1000 + i)})
				if err != nil {
					t.Fatal(err)
				}
				_ = offs
				var part int32 = -1
				for pid := range int32(3) {
					p, _ := e.Partition("events", pid)
					if p.EndOffset() > int64(len(want[pid])) {
						part = pid
					}
				}
				want[part] = append(want[part], string(v))
			}
			check := func(e *Engine) {
				for pid := range int32(3) {
					p, err := e.Partition("events", pid)
					if err != nil {
						t.Fatal(err)
					}
					got := readAll(t, p, 0)
					if len(got) != len(want[pid]) {
						t.Fatalf("partition %d: %d records, want %d", pid, len(got), len(want[pid]))
					}
					for i, r := range got {
						if string(r.Value) != want[pid][i] || r.Offset != int64(i) {
							t.Fatalf("partition %d record %d: %q@%d, want %q", pid, i, r.Value, r.Offset, want[pid][i])
						}
					}
				}
			}
			check(e)
			if store == "memory" {
				return
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Partition("events", 0); !errors.Is(err, ErrClosed) {
				t.Fatalf("closed engine: %v", err)
			}
			e = mustOpen(t, dir, opts)
			defer e.Close()
			if !e.clean {
				t.Fatal("reopen after Close was not clean")
			}
			check(e)
			p, _ := e.Partition("events", 0)
			if p.StartOffset() != 0 || len(p.log.Segments()) < 2 {
				t.Fatalf("expected several segments, got %d", len(p.log.Segments()))
			}
		})
	}
}

func TestOffsetForTimestampAndRetention(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 1024, RetentionBytes: 3000}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	val := bytes.Repeat([]byte("x"), 200)
	for i := range 50 {
		if _, err := p.AppendRecords(codec.None, record.Record{Value: val, Timestamp: int64(10 * (i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ ts, want int64 }{{0, 0}, {10, 0}, {11, 1}, {250, 24}, {500, 49}, {501, 50}} {
		got, err := p.OffsetForTimestamp(tc.ts)
		if err != nil || got != tc.want {
			t.Errorf("OffsetForTimestamp(%d) = %d, %v; want %d", tc.ts, got, err, tc.want)
		}
	}
	n, err := e.EnforceRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention: %d, %v", n, err)
	}
	var total int64
	for _, s := range p.log.Segments() {
		total += s.Size
	}
	if total > 3000+1024 {
		t.Fatalf("after retention %d bytes remain", total)
	}
	if p.StartOffset() == 0 {
		t.Fatal("start offset did not move")
	}
	if _, err := p.Read(0, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	got := readAll(t, p, p.StartOffset())
	if int64(len(got)) != p.EndOffset()-p.StartOffset() {
		t.Fatalf("read %d records after retention", len(got))
	}
}

func buildIdem(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	b := record.NewBuilder(record.BuilderOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	for i := range n {
		b.Add(record.Record{Value: []byte(fmt.Sprint(i)), Timestamp: 1})
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	r1, err := p.Append(buildIdem(t, 7, 0, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.Append(buildIdem(t, 7, 0, 3, 2))
	if err != nil {
		t.Fatal(err)
	}
	dup, err := p.Append(buildIdem(t, 7, 0, 0, 3))
	if err != nil || !dup.Duplicate || dup.BaseOffset != r1.BaseOffset {
		t.Fatalf("retry: %+v, %v", dup, err)
	}
	if _, err := p.Append(buildIdem(t, 7, 0, 9, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := p.Append(buildIdem(t, 7, 1, 5, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not at 0: %v", err)
	}
	if _, err := p.Append(buildIdem(t, 8, 3, 42, 1)); err != nil {
		t.Fatalf("unknown producer, any sequence: %v", err)
	}
	if _, err := p.Append(buildIdem(t, 8, 2, 43, 1)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// State survives a clean restart (snapshot) ...
	e = mustOpen(t, dir, quietOpts())
	p, _ = e.Partition("t", 0)
	dup, err = p.Append(buildIdem(t, 7, 0, 3, 2))
	if err != nil || !dup.Duplicate || dup.BaseOffset != r2.BaseOffset {
		t.Fatalf("retry after restart: %+v, %v", dup, err)
	}
	e.Close()
	// ... and a restart without a usable snapshot (rebuilt from batch headers).
	names, _ := p.log.States(snapshotSuffix)
	if len(names) == 0 {
		t.Fatal("no producer snapshot written")
	}
	for _, n := range names {
		if err := p.log.(*diskLog).SaveState(n, []byte("garbage"), true); err != nil {
			t.Fatal(err)
		}
	}
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	dup, err = p.Append(buildIdem(t, 7, 0, 3, 2))
	if err != nil || !dup.Duplicate || dup.BaseOffset != r2.BaseOffset {
		t.Fatalf("retry after rebuild: %+v, %v", dup, err)
	}
}

func TestAppendRejects(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{MaxMessageBytes: 1000}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	good := buildIdem(t, -1, -1, -1, 1)
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff
	if _, err := p.Append(bad); !errors.Is(err, record.ErrCorrupt) {
		t.Fatalf("bad crc: %v", err)
	}
	if _, err := p.Append(good[:40]); err == nil {
		t.Fatal("short batch accepted")
	}
	b := record.NewBuilder(record.BuilderOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	b.Add(record.Record{Value: make([]byte, 2000)})
	big, _ := b.AppendTo(nil)
	if _, err := p.Append(big); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if p.EndOffset() != 0 {
		t.Fatal("rejected batches were stored")
	}
}
