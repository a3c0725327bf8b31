package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

// The compaction property test writes random keyed records and tombstones
// (some batches from an idempotent producer, every codec), compacts at
// random points, advances a fake clock past delete.retention.ms, closes and
// crashes the engine, and after every step compares a full read with a
// model: the records of the log's sealed part as of each pass are exactly
// the latest of each key there, tombstones included until their batch's
// delete horizon (set at the first pass that maps them) has passed at a
// pass; everything after is as written. Offsets must strictly increase, a
// reader positioned before a pass must read on without error, and the
// producer must go on with its next sequence. EASEL_SEED=<n> replays one
// seed.

type compactRec struct {
	off     int64
	key     []byte
	value   []byte // nil: tombstone
	present bool
	horizon int64 // delete horizon of its batch, -1 if none yet
}

type compactModel struct {
	recs      []*compactRec
	prevEnd   int64 // where the last pass stopped (the cleaner checkpoint)
	retention int64 // delete.retention.ms
}

// clean applies one pass at now over [0, end), as the cleaner must.
func (m *compactModel) clean(now, end int64) {
	if end <= m.prevEnd && !m.tombstonesDue(now) {
		return // nothing dirty, no tombstone due: no pass
	}
	end = max(end, m.prevEnd)
	latest := make(map[string]int64)
	for _, r := range m.recs {
		if r.off < end {
			latest[string(r.key)] = r.off
		}
	}
	for _, r := range m.recs {
		if r.off >= end || !r.present {
			continue
		}
		switch {
		case r.off < latest[string(r.key)]:
			r.present = false
		case r.value == nil && r.horizon >= 0 && now >= r.horizon:
			r.present = false
		case r.value == nil && r.horizon < 0 && r.off >= m.prevEnd:
			r.horizon = now + m.retention
		}
	}
	m.prevEnd = end
}

// tombstonesDue reports whether a tombstone kept so far has a delete
// horizon at or before now.
func (m *compactModel) tombstonesDue(now int64) bool {
	for _, r := range m.recs {
		if r.present && r.value == nil && r.horizon >= 0 && r.horizon <= now {
			return true
		}
	}
	return false
}

func (m *compactModel) from(off int64) []*compactRec {
	var out []*compactRec
	for _, r := range m.recs {
		if r.present && r.off >= off {
			out = append(out, r)
		}
	}
	return out
}

func TestCompactionProperty(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	if s := os.Getenv("EASEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{v}
	}
	for _, seed := range seeds {
		for _, mem := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/mem=%v", seed, mem), func(t *testing.T) {
				t.Parallel()
				runCompactionProperty(t, seed, mem, 400)
			})
		}
	}
}

func runCompactionProperty(t *testing.T, seed uint64, mem bool, ops int) {
	r := rand.New(rand.NewPCG(seed, 77))
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(1_700_000_000_000)
	opts := quietOpts()
	opts.Now = func() time.Time { return time.UnixMilli(clock.Load()) }
	opts.CleanerDedupeBufferSize = 1 << 20
	var store *MemoryStore
	if mem {
		store = NewMemoryStore()
		opts.Store = store
	}
	e := mustOpen(t, dir, opts)
	defer func() { e.Close() }()
	cfg := TopicConfig{Partitions: 1, SegmentBytes: 1 + int64(r.IntN(3000)) + 600}
	for k, v := range map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "5000", "min.cleanable.dirty.ratio": "0"} {
		if err := cfg.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateTopic("c", cfg); err != nil {
		t.Fatal(err)
	}
	m := &compactModel{retention: 5000}
	nkeys := 3 + r.IntN(30)
	pid, seq := int64(4242), int32(0)
	codes := codecs()
	part := func() *Partition {
		p, err := e.Partition("c", 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	reopen := func(crash bool) {
		if crash {
			e.crash()
		} else if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e = mustOpen(t, dir, opts)
	}
	for op := range ops {
		p := part()
		switch x := r.IntN(100); {
		case x < 70:
			n := 1 + r.IntN(6)
			recs := make([]record.Record, n)
			for i := range recs {
				recs[i] = record.Record{Timestamp: clock.Load(), Key: []byte("k" + strconv.Itoa(r.IntN(nkeys)))}
				if r.IntN(5) != 0 {
					recs[i].Value = []byte(fmt.Sprintf("v%d-%d", op, i))
				}
			}
			idem := r.IntN(3) == 0
			bpid := int64(-1)
			if idem {
				bpid = pid
			}
			res, err := p.Append(buildBatch(t, recs, codes[r.IntN(len(codes))], bpid, 0, seq))
			if err != nil {
				t.Fatalf("op %d: append: %v", op, err)
			}
			if idem {
				seq += int32(n)
			}
			for i, rec := range recs {
				m.recs = append(m.recs, &compactRec{off: res.BaseOffset + int64(i), key: rec.Key, value: rec.Value, present: true, horizon: -1})
			}
		case x < 82:
			segs := p.log.Segments()
			end := segs[len(segs)-1].BaseOffset
			// A reader in the middle, before the pass.
			mid := int64(0)
			if n := p.EndOffset(); n > 0 {
				mid = r.Int64N(n)
			}
			it := p.Records(mid)
			var got []record.Record
			for range r.IntN(5) {
				if !it.Next() {
					break
				}
				got = append(got, copyRec(it.Record()))
			}
			before := m.from(mid)
			if _, err := e.EnforceRetention(); err != nil {
				t.Fatalf("op %d: compact: %v", op, err)
			}
			m.clean(clock.Load(), end)
			for it.Next() {
				got = append(got, copyRec(it.Record()))
			}
			if err := it.Close(); err != nil {
				t.Fatalf("op %d: reader from %d across the pass: %v", op, mid, err)
			}
			checkAcross(t, op, got, before, m.from(mid))
		case x < 90:
			clock.Add(r.Int64N(4000))
		case x < 95 && !mem:
			reopen(false)
		case !mem:
			reopen(true)
		}
		checkCompacted(t, op, part(), m)
	}
	// The run compacted something, tombstones went too.
	var gone, tombsGone int
	for _, r := range m.recs {
		if !r.present {
			gone++
			if r.value == nil && r.horizon >= 0 {
				tombsGone++
			}
		}
	}
	t.Logf("%d records written, %d compacted away (%d expired tombstones), %d segments", len(m.recs), gone, tombsGone, len(part().log.Segments()))
	if gone == 0 || tombsGone == 0 {
		t.Fatalf("nothing compacted: the run tests nothing")
	}
	// The producer's state survived: its next batch is in sequence.
	if _, err := part().Append(buildBatch(t, []record.Record{{Key: []byte("k0"), Value: []byte("last")}}, 0, pid, 0, seq)); err != nil {
		t.Fatalf("producer after compaction: %v", err)
	}
}

func copyRec(r *record.Record) record.Record {
	return record.Record{Offset: r.Offset, Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
}

// checkAcross checks what a reader positioned before a pass read: offsets
// increase, and each record is one the model had before or has after.
func checkAcross(t *testing.T, op int, got []record.Record, before, after []*compactRec) {
	t.Helper()
	known := make(map[int64]*compactRec)
	for _, r := range append(before, after...) {
		known[r.off] = r
	}
	prev := int64(-1)
	for _, g := range got {
		w, ok := known[g.Offset]
		if g.Offset <= prev || !ok || !bytes.Equal(g.Key, w.key) || !bytes.Equal(g.Value, w.value) || (g.Value == nil) != (w.value == nil) {
			t.Fatalf("op %d: reader across a pass read offset %d (after %d) key %q value %q: not in the log", op, g.Offset, prev, g.Key, g.Value)
		}
		prev = g.Offset
	}
	// Everything the model keeps after the last record read is read.
	for _, w := range after {
		if w.off > prev {
			t.Fatalf("op %d: reader across a pass stopped at %d before %d", op, prev, w.off)
		}
	}
}

// checkCompacted compares a full read of p with the model.
func checkCompacted(t *testing.T, op int, p *Partition, m *compactModel) {
	t.Helper()
	it := p.Records(p.StartOffset())
	defer it.Close()
	want := m.from(0)
	i := 0
	prev := int64(-1)
	for it.Next() {
		g := it.Record()
		if g.Offset <= prev {
			t.Fatalf("op %d: offset %d after %d", op, g.Offset, prev)
		}
		prev = g.Offset
		if i >= len(want) {
			t.Fatalf("op %d: extra record at %d key %q", op, g.Offset, g.Key)
		}
		w := want[i]
		if g.Offset != w.off || !bytes.Equal(g.Key, w.key) || (g.Value == nil) != (w.value == nil) || !bytes.Equal(g.Value, w.value) {
			t.Fatalf("op %d: record %d: got offset %d key %q value %q, want offset %d key %q value %q",
				op, i, g.Offset, g.Key, g.Value, w.off, w.key, w.value)
		}
		i++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("op %d: read: %v", op, err)
	}
	if i != len(want) {
		t.Fatalf("op %d: read %d records, want %d (next wanted at %d)", op, i, len(want), want[i].off)
	}
	if n := int64(len(m.recs)); p.EndOffset() != n {
		t.Fatalf("op %d: log end %d, want %d", op, p.EndOffset(), n)
	}
	// Segments still follow on from each other.
	segs := p.log.Segments()
	if d, ok := p.log.(*diskLog); ok {
		ss := d.segments()
		for j := 0; j+1 < len(ss); j++ {
			if ss[j].NextOffset() != ss[j+1].BaseOffset() {
				t.Fatalf("op %d: segment %d ends at %d, next begins at %d", op, ss[j].BaseOffset(), ss[j].NextOffset(), ss[j+1].BaseOffset())
			}
		}
	}
	for j := 1; j < len(segs); j++ {
		if segs[j].BaseOffset <= segs[j-1].BaseOffset {
			t.Fatalf("op %d: segment bases %d then %d", op, segs[j-1].BaseOffset, segs[j].BaseOffset)
		}
	}
}
