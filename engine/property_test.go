package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// The property test appends random batches to many partitions, closes or
// crashes the engine at random points, and checks every read path against
// an in-memory model after each reopen. EASEL_SEED=<n> replays one seed.

type modelBatch struct {
	stored []byte // bytes as the engine must store them
	raw    []byte // bytes as produced, for idempotent retries
	base   int64
	last   int64
	maxTS  int64
	recs   []record.Record // records as they must read back
}

type modelPart struct {
	topic   string
	id      int32
	lat     bool // LogAppendTime topic
	batches []modelBatch
	next    int64
	// the partition's idempotent producer
	pid    int64
	epoch  int16
	seq    int32
	recent []int // indexes into batches of its last batches in this epoch, oldest first
}

type propRun struct {
	t     *testing.T
	seed  uint64
	r     *rand.Rand
	dir   string
	mem   *MemoryStore
	opts  Options
	clock atomic.Int64
	e     *Engine
	parts []*modelPart
	codes []int8
}

func (pr *propRun) fatalf(format string, args ...any) {
	pr.t.Helper()
	pr.t.Fatalf("seed %d (rerun with EASEL_SEED=%d): %s", pr.seed, pr.seed, fmt.Sprintf(format, args...))
}

func TestPropertyRandomBatches(t *testing.T) {
	budget := 7 * time.Second
	if testing.Short() {
		budget = time.Second
	}
	seeds := []uint64{}
	if s := os.Getenv("EASEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EASEL_SEED: %v", err)
		}
		seeds = append(seeds, v)
	}
	for _, store := range []string{"disk", "memory"} {
		t.Run(store, func(t *testing.T) {
			fds := openFDs(t)
			deadline := time.Now().Add(budget)
			if store == "memory" {
				deadline = time.Now().Add(budget / 4)
			}
			runs := 0
			for i := 0; ; i++ {
				var seed uint64
				if len(seeds) > 0 {
					if i == len(seeds) {
						break
					}
					seed = seeds[i]
				} else {
					if i > 0 && time.Now().After(deadline) {
						break
					}
					seed = uint64(time.Now().UnixNano())
				}
				pr := &propRun{t: t, seed: seed, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), dir: t.TempDir(), codes: codecs()}
				if store == "memory" {
					pr.mem = NewMemoryStore()
				}
				pr.run(200 + pr.r.IntN(400))
				runs++
			}
			t.Logf("%d seeds, codecs %v", runs, codecs())
			if store == "disk" {
				if n := openFDs(t); n > fds {
					t.Fatalf("descriptors leaked: %d open before, %d after", fds, n)
				}
			}
		})
	}
}

func (pr *propRun) open() {
	pr.t.Helper()
	e, err := Open(pr.dir, pr.opts)
	if err != nil {
		pr.fatalf("open: %v", err)
	}
	pr.e = e
}

func (pr *propRun) run(ops int) {
	r := pr.r
	pr.clock.Store(1_700_000_000_000)
	pr.opts = quietOpts()
	pr.opts.Now = func() time.Time { return time.UnixMilli(pr.clock.Load()) }
	if pr.mem != nil {
		pr.opts.Store = pr.mem
	}
	pr.opts.Segment = segment.Config{IndexInterval: 64 + r.IntN(1024), MaxIndexBytes: 128 + r.IntN(4096)}
	pr.open()
	type topicSpec struct {
		name string
		cfg  TopicConfig
	}
	specs := []topicSpec{
		{"alpha", TopicConfig{Partitions: 3, SegmentBytes: int64(1024 + r.IntN(16384))}},
		{"beta.lat", TopicConfig{Partitions: 2, SegmentBytes: int64(2048 + r.IntN(8192)), LogAppendTime: true}},
		{"gamma_big", TopicConfig{Partitions: 1 + int32(r.IntN(3))}},
		{"delta-tiny", TopicConfig{Partitions: 2, SegmentBytes: 14}},
	}
	pid := int64(1000)
	for _, s := range specs {
		if err := pr.e.CreateTopic(s.name, s.cfg); err != nil {
			pr.fatalf("create %s: %v", s.name, err)
		}
		for i := range s.cfg.Partitions {
			pid++
			pr.parts = append(pr.parts, &modelPart{topic: s.name, id: i, lat: s.cfg.LogAppendTime, pid: pid})
		}
	}
	for range ops {
		pr.clock.Add(r.Int64N(50))
		switch x := r.IntN(100); {
		case x < 85:
			pr.appendRandom(pr.parts[r.IntN(len(pr.parts))])
		case x < 89:
			if err := pr.e.Close(); err != nil {
				pr.fatalf("close: %v", err)
			}
			pr.open()
			pr.verifyAll()
		case x < 93:
			pr.e.crash()
			pr.open()
			pr.verifyAll()
		case x < 97:
			pr.verify(pr.parts[r.IntN(len(pr.parts))])
		default:
			mp := pr.parts[r.IntN(len(pr.parts))]
			if err := pr.partition(mp).Flush(); err != nil {
				pr.fatalf("flush: %v", err)
			}
		}
	}
	pr.verifyAll()
	if r.IntN(2) == 0 {
		pr.e.crash()
		pr.open()
		pr.verifyAll()
	}
	if err := pr.e.Close(); err != nil {
		pr.fatalf("close: %v", err)
	}
}

func (pr *propRun) partition(mp *modelPart) *Partition {
	pr.t.Helper()
	p, err := pr.e.Partition(mp.topic, mp.id)
	if err != nil {
		pr.fatalf("partition %s/%d: %v", mp.topic, mp.id, err)
	}
	return p
}

func (pr *propRun) appendRandom(mp *modelPart) {
	pr.t.Helper()
	r := pr.r
	p := pr.partition(mp)
	// An idempotent retry of one of the producer's last batches.
	if len(mp.recent) > 0 && r.IntN(12) == 0 {
		mb := mp.batches[mp.recent[r.IntN(len(mp.recent))]]
		res, err := p.Append(bytes.Clone(mb.raw))
		if err != nil || !res.Duplicate || res.BaseOffset != mb.base || res.LastOffset != mb.last {
			pr.fatalf("%s/%d: retry of %d: %+v, %v", mp.topic, mp.id, mb.base, res, err)
		}
		return
	}
	maxValue := 300
	if r.IntN(8) == 0 {
		maxValue = 3000
	}
	recs := randRecords(r, pr.clock.Load(), maxValue)
	c := pr.codes[r.IntN(len(pr.codes))]
	idem := r.IntN(3) == 0
	var raw []byte
	if idem {
		if r.IntN(15) == 0 {
			mp.epoch, mp.seq, mp.recent = mp.epoch+1, 0, nil
		}
		raw = buildBatch(pr.t, recs, c, mp.pid, mp.epoch, mp.seq)
	} else {
		raw = buildBatch(pr.t, recs, c, -1, 0, 0)
	}
	batch := bytes.Clone(raw)
	res, err := p.Append(batch)
	if err != nil {
		pr.fatalf("%s/%d: append: %v", mp.topic, mp.id, err)
	}
	if res.Duplicate || res.BaseOffset != mp.next || res.LastOffset != mp.next+int64(len(recs))-1 {
		pr.fatalf("%s/%d: append result %+v, want base %d", mp.topic, mp.id, res, mp.next)
	}
	want := bytes.Clone(raw)
	record.SetBaseOffset(want, mp.next)
	record.SetPartitionLeaderEpoch(want, 0)
	now := pr.clock.Load()
	exp := make([]record.Record, len(recs))
	maxTS := int64(math.MinInt64)
	for i, rec := range recs {
		rec.Offset = mp.next + int64(i)
		if mp.lat {
			rec.Timestamp = now
		}
		exp[i] = rec
		maxTS = max(maxTS, rec.Timestamp)
	}
	if mp.lat {
		record.SetLogAppendTime(want, now)
		if res.LogAppendTime != now {
			pr.fatalf("%s/%d: LogAppendTime %d, want %d", mp.topic, mp.id, res.LogAppendTime, now)
		}
	}
	if !bytes.Equal(batch, want) {
		pr.fatalf("%s/%d: batch after append differs from the expected stored bytes", mp.topic, mp.id)
	}
	mp.batches = append(mp.batches, modelBatch{stored: want, raw: raw, base: mp.next, last: res.LastOffset, maxTS: maxTS, recs: exp})
	mp.next = res.LastOffset + 1
	if idem {
		mp.seq += int32(len(recs))
		mp.recent = append(mp.recent, len(mp.batches)-1)
		if len(mp.recent) > producerWindow {
			mp.recent = mp.recent[1:]
		}
	}
}

func (pr *propRun) verifyAll() {
	pr.t.Helper()
	for _, mp := range pr.parts {
		pr.verify(mp)
	}
}

// batchAt returns the index of the batch holding off.
func (mp *modelPart) batchAt(off int64) int {
	return sort64(len(mp.batches), func(i int) bool { return mp.batches[i].last >= off })
}

func sort64(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		m := (lo + hi) / 2
		if f(m) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// segmentRun returns the batches from i to the end of the segment holding
// batch i, given the segments' base offsets.
func (mp *modelPart) segmentRun(i int, bases []int64) []modelBatch {
	end := int64(math.MaxInt64)
	for _, b := range bases {
		if b > mp.batches[i].base {
			end = b
			break
		}
	}
	j := i
	for j < len(mp.batches) && mp.batches[j].base < end {
		j++
	}
	return mp.batches[i:j]
}

func (pr *propRun) verify(mp *modelPart) {
	pr.t.Helper()
	r := pr.r
	p := pr.partition(mp)
	name := fmt.Sprintf("%s/%d", mp.topic, mp.id)
	if p.StartOffset() != 0 || p.EndOffset() != mp.next {
		pr.fatalf("%s: offsets [%d, %d), want [0, %d)", name, p.StartOffset(), p.EndOffset(), mp.next)
	}
	// Every record through the iterator, from the start and from a random
	// offset.
	pr.checkRecords(p, mp, 0)
	if mp.next > 0 {
		pr.checkRecords(p, mp, r.Int64N(mp.next))
	}
	// Batches and regions.
	var bases []int64
	for _, s := range p.log.Segments() {
		bases = append(bases, s.BaseOffset)
	}
	for i, mb := range mp.batches {
		if r.IntN(3) != 0 && i != len(mp.batches)-1 {
			continue
		}
		off := mb.base + r.Int64N(mb.last-mb.base+1)
		maxBytes := 1 + r.IntN(3*len(mb.stored)+64)
		run := mp.segmentRun(i, bases)
		var view []byte
		for j, b := range run {
			if j > 0 && len(view)+len(b.stored) > maxBytes {
				break
			}
			view = append(view, b.stored...)
		}
		c, err := p.ReadBatches(off, maxBytes)
		if err != nil {
			pr.fatalf("%s: ReadBatches(%d, %d): %v", name, off, maxBytes, err)
		}
		if c.FirstOffset != mb.base || !bytes.Equal(c.Bytes, view) {
			pr.fatalf("%s: ReadBatches(%d, %d): first %d, %d bytes (%s); want first %d, %d bytes (%s)", name, off, maxBytes,
				c.FirstOffset, len(c.Bytes), describe(c.Bytes), mb.base, len(view), describe(view))
		}
		splitBatches(pr.t, c.Bytes)
		c.Release()

		c, err = p.Read(off, maxBytes)
		if err != nil {
			pr.fatalf("%s: Read(%d, %d): %v", name, off, maxBytes, err)
		}
		var got, want []byte
		if c.File != nil {
			got = make([]byte, c.Len)
			if _, err := c.File.ReadAt(got, c.Pos); err != nil {
				pr.fatalf("%s: pread of Read(%d): %v", name, off, err)
			}
			var rest []byte
			for _, b := range run {
				rest = append(rest, b.stored...)
			}
			n := min(len(rest), maxBytes)
			n = max(n, len(mb.stored))
			want = rest[:n]
		} else {
			got, want = c.Bytes, view
		}
		if c.FirstOffset != mb.base || c.Size() != int64(len(want)) || !bytes.Equal(got, want) {
			pr.fatalf("%s: Read(%d, %d): first %d, %d bytes; want first %d, %d bytes", name, off, maxBytes, c.FirstOffset, len(got), mb.base, len(want))
		}
		c.Release()
	}
	for _, off := range []int64{mp.next} {
		c, err := p.ReadBatches(off, 100)
		if err != nil || len(c.Bytes) != 0 || c.FirstOffset != off {
			pr.fatalf("%s: ReadBatches at the end: %d bytes, %v", name, len(c.Bytes), err)
		}
		c.Release()
	}
	for _, off := range []int64{-1, mp.next + 1} {
		if _, err := p.ReadBatches(off, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			pr.fatalf("%s: ReadBatches(%d): %v, want ErrOffsetOutOfRange", name, off, err)
		}
		if _, err := p.Read(off, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			pr.fatalf("%s: Read(%d): %v, want ErrOffsetOutOfRange", name, off, err)
		}
	}
	// Timestamps: every batch's maxTimestamp and its neighbours, and
	// beyond either end.
	tss := []int64{math.MinInt64 / 2, 0, math.MaxInt64 / 2}
	for _, mb := range mp.batches {
		if r.IntN(4) == 0 {
			tss = append(tss, mb.maxTS-1, mb.maxTS, mb.maxTS+1)
		}
	}
	for _, ts := range tss {
		want := mp.next
		for _, mb := range mp.batches {
			if mb.maxTS >= ts {
				want = mb.base
				break
			}
		}
		got, err := p.OffsetForTimestamp(ts)
		if err != nil || got != want {
			pr.fatalf("%s: OffsetForTimestamp(%d) = %d, %v; want %d", name, ts, got, err, want)
		}
	}
}

func (pr *propRun) checkRecords(p *Partition, mp *modelPart, from int64) {
	pr.t.Helper()
	name := fmt.Sprintf("%s/%d", mp.topic, mp.id)
	it := p.Records(from)
	defer it.Close()
	want := from
	i := mp.batchAt(from)
	for it.Next() {
		got := it.Record()
		for i < len(mp.batches) && mp.batches[i].last < want {
			i++
		}
		if i == len(mp.batches) {
			pr.fatalf("%s: iterator from %d returned offset %d past the end %d", name, from, got.Offset, mp.next)
		}
		exp := mp.batches[i].recs[want-mp.batches[i].base]
		if err := sameRecord(got, &exp); err != nil {
			pr.fatalf("%s: iterator from %d, record %d: %v", name, from, want, err)
		}
		want++
	}
	if err := it.Err(); err != nil {
		pr.fatalf("%s: iterator from %d: %v", name, from, err)
	}
	if want != mp.next {
		pr.fatalf("%s: iterator from %d stopped at %d, want %d", name, from, want, mp.next)
	}
}

func sameRecord(got, want *record.Record) error {
	switch {
	case got.Offset != want.Offset:
		return fmt.Errorf("offset %d, want %d", got.Offset, want.Offset)
	case got.Timestamp != want.Timestamp:
		return fmt.Errorf("timestamp %d, want %d", got.Timestamp, want.Timestamp)
	case !sameBytes(got.Key, want.Key):
		return fmt.Errorf("key %q, want %q", got.Key, want.Key)
	case !sameBytes(got.Value, want.Value):
		return fmt.Errorf("value of %d bytes, want %d", len(got.Value), len(want.Value))
	case len(got.Headers) != len(want.Headers):
		return fmt.Errorf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	if !slices.EqualFunc(got.Headers, want.Headers, func(a, b record.RecordHeader) bool {
		return a.Key == b.Key && sameBytes(a.Value, b.Value)
	}) {
		return fmt.Errorf("headers %v, want %v", got.Headers, want.Headers)
	}
	return nil
}

// sameBytes compares byte slices, telling nil (null) from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
