package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// The replica property test drives pairs of partitions that replicate each
// other, in a random mix: leader appends (some idempotent, some retried),
// follower appends of batches fetched from the other replica (ReadReplica,
// sometimes cut mid-batch like a fetch response, now and then corrupt or
// not contiguous), truncations (to where the two logs diverge, and to
// random offsets, clean and unclean), high watermark moves, DeleteRecords,
// BecomeLeader and BecomeFollower with growing (and sometimes stale)
// epochs, follower start overs (TruncateFullyAndStartAt), reopens and
// crashes. After each step it compares the offsets,
// the high watermark, the leader epoch and the whole epoch cache (through
// EndOffsetForEpoch) with an in-memory model, and now and then every read
// path. Readers hold chunks (mmap views and file regions) across
// truncations, deletions and appends of other bytes at the same offsets
// and check that their bytes never change. It runs on the disk and the
// memory store, with managed high watermarks and without (the high
// watermark then equals the log end). EASEL_SEED=<n> replays one seed.

// rBatch is one batch of a replica's log as the model knows it.
type rBatch struct {
	stored     []byte // bytes as the log must hold them
	raw        []byte // bytes as the producer sent them, for retries
	base, last int64
	epoch      int32
	maxTS      int64
	pid        int64 // producer id; -1 when not idempotent
	pepoch     int16 // producer epoch
	lastSeq    int32
	recs       []record.Record // records as they must read back
}

// mEpoch is an entry of the model's leader-epoch cache.
type mEpoch struct {
	epoch int32
	start int64
}

// replica is the model of one partition.
type replica struct {
	topic string
	id    int32
	lat   bool // LogAppendTime topic
	pair  *rPair
	peer  *replica
	// batches is every batch of the log, including those below the log
	// start (some of which the log may have deleted with their segment).
	// Invariant: offsets are contiguous from 0.
	batches []rBatch
	start   int64
	hw      int64
	// ckpt holds the values the high watermark checkpoint file may hold
	// for the partition; -1 stands for "not named".
	ckpt        []int64
	leaderEpoch int32
	follower    bool
	// tail is an epoch cache entry at the log end with no batch yet
	// (BecomeLeader, or DeleteRecords up to the log end).
	tail *mEpoch
}

// rPair is two replicas of the same data.
type rPair struct {
	pid    int64 // the idempotent producer writing to whichever leads
	pepoch int16 // its epoch
	epoch  int32 // the highest leader epoch used so far
}

// rHeld is a chunk a reader holds on to.
type rHeld struct {
	x    *replica
	kind string
	off  int64
	c    Chunk
	want []byte
}

type replicaRun struct {
	t         *testing.T
	seed      uint64
	r         *rand.Rand
	dir       string
	mem       *MemoryStore
	managed   bool
	ckptEvery bool // the high watermark checkpoint loop runs
	opts      Options
	clock     atomic.Int64
	e         *Engine
	reps      []*replica
	held      []rHeld
	codes     []int8
	step      int
	op        string
	trace     []string       // the last operations, printed on failure
	counts    map[string]int // outcomes seen, for the log
}

func (pr *replicaRun) count(what string) { pr.counts[what]++ }

func (pr *replicaRun) fatalf(format string, args ...any) {
	pr.t.Helper()
	for _, l := range pr.trace {
		pr.t.Log(l)
	}
	var run []string
	for _, part := range strings.Split(pr.t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	pr.t.Fatalf("seed %d (rerun with EASEL_SEED=%d EASEL_TRACE=1000 go test -run '%s' ./engine/), step %d (%s): %s",
		pr.seed, pr.seed, strings.Join(run, "/"), pr.step, pr.op, fmt.Sprintf(format, args...))
}

func TestPropertyReplica(t *testing.T) {
	budget := 9 * time.Second
	if testing.Short() {
		budget = 1500 * time.Millisecond
	}
	var seeds []uint64
	if s := os.Getenv("EASEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EASEL_SEED: %v", err)
		}
		seeds = append(seeds, v)
	}
	variants := []struct {
		store, hw string
		share     float64 // of the budget
	}{
		{"disk", "managed", 0.42},
		{"disk", "unmanaged", 0.25},
		{"memory", "managed", 0.2},
		{"memory", "unmanaged", 0.13},
	}
	for _, v := range variants {
		t.Run(v.store+"/"+v.hw, func(t *testing.T) {
			deadline := time.Now().Add(time.Duration(float64(budget) * v.share))
			runs := 0
			counts := map[string]int{}
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
				pr := &replicaRun{t: t, seed: seed, r: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)),
					dir: t.TempDir(), managed: v.hw == "managed", codes: codecs(), counts: counts}
				if v.store == "memory" {
					pr.mem = NewMemoryStore()
				}
				t.Cleanup(func() { // after a failure
					for _, h := range pr.held {
						h.c.Release()
					}
					if pr.e != nil {
						pr.e.crash()
					}
				})
				pr.run(100 + pr.r.IntN(300))
				runs++
			}
			t.Logf("%d seeds; outcomes %v", runs, counts)
			if open := fdsUnder(filepath.Dir(t.TempDir())); len(open) > 0 {
				t.Fatalf("descriptors left open in the data directories: %v", open)
			}
		})
	}
}

func (pr *replicaRun) open() {
	pr.t.Helper()
	e, err := Open(pr.dir, pr.opts)
	if err != nil {
		pr.fatalf("open: %v", err)
	}
	pr.e = e
}

func (pr *replicaRun) run(ops int) {
	r := pr.r
	pr.clock.Store(1_700_000_000_000)
	pr.opts = quietOpts()
	pr.opts.Now = func() time.Time { return time.UnixMilli(pr.clock.Load()) }
	pr.opts.ManagedHighWatermarks = pr.managed
	pr.opts.HWCheckpointInterval = -1 // only on Close: the model then knows the file exactly
	if r.IntN(2) == 0 {
		pr.opts.HWCheckpointInterval = time.Duration(1+r.IntN(20)) * time.Millisecond
		pr.ckptEvery = true
	}
	if pr.mem != nil {
		pr.opts.Store = pr.mem
	}
	pr.opts.Segment = segment.Config{IndexInterval: 64 + r.IntN(1024), MaxIndexBytes: 128 + r.IntN(4096)}
	pr.open()
	specs := []struct {
		name string
		cfg  TopicConfig
	}{
		{"ra", TopicConfig{Partitions: 2, SegmentBytes: int64(1024 + r.IntN(8192))}},
		{"rb.lat", TopicConfig{Partitions: 2, SegmentBytes: int64(2048 + r.IntN(8192)), LogAppendTime: true}},
		{"rc-tiny", TopicConfig{Partitions: 2, SegmentBytes: 14}}, // a segment per batch
	}
	for i, s := range specs {
		if err := pr.e.CreateTopic(s.name, s.cfg); err != nil {
			pr.fatalf("create %s: %v", s.name, err)
		}
		pair := &rPair{pid: 5000 + int64(i)}
		a := &replica{topic: s.name, id: 0, lat: s.cfg.LogAppendTime, pair: pair, ckpt: []int64{-1}}
		b := &replica{topic: s.name, id: 1, lat: s.cfg.LogAppendTime, pair: pair, ckpt: []int64{-1}}
		if pr.ckptEvery {
			a.ckpt, b.ckpt = append(a.ckpt, 0), append(b.ckpt, 0)
		}
		a.peer, b.peer = b, a
		pr.reps = append(pr.reps, a, b)
	}
	for pr.step = 0; pr.step < ops; pr.step++ {
		pr.clock.Add(r.Int64N(50))
		x := pr.reps[r.IntN(len(pr.reps))]
		if len(pr.trace) > 0 {
			pr.tracef("")
		}
		switch n := r.IntN(100); {
		case n < 27:
			pr.op = "leader append to " + x.name()
			pr.leaderAppend(x)
		case n < 30:
			pr.op = "retry on " + x.name()
			pr.retry(x)
		case n < 43:
			pr.op = "fetch by " + x.name()
			pr.fetch(x, x.peer)
		case n < 50:
			pr.op = "reconcile " + x.name()
			pr.reconcile(x)
		case n < 53:
			pr.op = "truncate " + x.name()
			pr.randomTruncate(x)
		case n < 57:
			pr.op = "start over " + x.name()
			pr.startOver(x)
		case n < 64:
			pr.op = "set hw of " + x.name()
			pr.setHW(x)
		case n < 68:
			pr.op = "delete records of " + x.name()
			pr.deleteRecords(x)
		case n < 74:
			pr.op = "change role of " + x.name()
			pr.changeRole(x)
		case n < 83:
			pr.op = "hold a chunk of " + x.name()
			pr.hold(x)
		case n < 86:
			pr.op = "check held chunks"
			pr.checkHeld(false)
		case n < 90:
			pr.op = "verify " + x.name()
			pr.verify(x)
		case n < 94:
			pr.op = "reopen"
			pr.reopen(false)
		case n < 97:
			pr.op = "crash"
			pr.reopen(true)
		default:
			pr.op = "flush " + x.name()
			if err := pr.partition(x).Flush(); err != nil {
				pr.fatalf("flush: %v", err)
			}
		}
		pr.tracef("%s", pr.op)
		pr.checkState(x)
		pr.checkState(x.peer)
	}
	pr.op = "final checks"
	pr.checkHeld(true)
	pr.verifyAll()
	if r.IntN(2) == 0 {
		pr.reopen(true)
	}
	pr.reopen(false)
	if err := pr.e.Close(); err != nil {
		pr.fatalf("close: %v", err)
	}
}

// traceSteps is how many steps the failure trace shows (EASEL_TRACE=<n>).
var traceSteps = func() int {
	if n, err := strconv.Atoi(os.Getenv("EASEL_TRACE")); err == nil && n > 0 {
		return n
	}
	return 40
}()

// tracef adds to the description of the current step, kept for the last
// traceSteps steps.
func (pr *replicaRun) tracef(format string, args ...any) {
	if format == "" {
		if len(pr.trace) == traceSteps {
			pr.trace = pr.trace[1:]
		}
		pr.trace = append(pr.trace, "")
		return
	}
	if len(pr.trace) == 0 {
		pr.trace = append(pr.trace, "")
	}
	pr.trace[len(pr.trace)-1] += fmt.Sprintf("step %d: ", pr.step) + fmt.Sprintf(format, args...) + "; "
}

func (x *replica) name() string { return fmt.Sprintf("%s/%d", x.topic, x.id) }

func (x *replica) leo() int64 {
	if n := len(x.batches); n > 0 {
		return x.batches[n-1].last + 1
	}
	return 0
}

// index returns the index of the batch holding off (len(batches) past the end).
func (x *replica) index(off int64) int {
	return sort.Search(len(x.batches), func(i int) bool { return x.batches[i].last >= off })
}

// entries is the leader-epoch cache the log must have: an entry for each
// epoch in the batches at or above the log start, where its first batch
// begins (the log start for the first), then the tail entry if any.
func (x *replica) entries() []mEpoch {
	var out []mEpoch
	for _, b := range x.batches[x.index(x.start):] {
		if len(out) == 0 || b.epoch > out[len(out)-1].epoch {
			out = append(out, mEpoch{b.epoch, max(b.base, x.start)})
		}
	}
	if x.tail != nil {
		out = append(out, *x.tail)
	}
	return out
}

// boundaryBelow rounds off down to a batch boundary (the base of the batch
// holding it), as SetHighWatermark does.
func (x *replica) boundaryBelow(off int64) int64 {
	if i := x.index(off); i < len(x.batches) && x.batches[i].base < off && off <= x.batches[i].last {
		return x.batches[i].base
	}
	return off
}

func (x *replica) latestEpoch() (int32, bool) {
	es := x.entries()
	if len(es) == 0 {
		return UndefinedEpoch, false
	}
	return es[len(es)-1].epoch, true
}

// endOffsetFor is OffsetForLeaderEpoch as KIP-101/279 and the engine's doc
// define it, over the model's cache.
func (x *replica) endOffsetFor(epoch int32) (int32, int64) {
	es := x.entries()
	if epoch == UndefinedEpoch || len(es) == 0 {
		return UndefinedEpoch, UndefinedOffset
	}
	switch l := es[len(es)-1]; {
	case epoch == l.epoch:
		return epoch, x.leo()
	case epoch > l.epoch:
		return UndefinedEpoch, UndefinedOffset
	case epoch < es[0].epoch:
		return epoch, es[0].start
	}
	i := len(es) - 1
	for es[i].epoch > epoch {
		i--
	}
	return es[i].epoch, es[i+1].start
}

// clampHW is the high watermark a managed partition opens with when the
// checkpoint holds v.
func (x *replica) clampHW(v int64) int64 {
	if v < 0 {
		return x.start
	}
	return min(max(v, x.start), x.leo())
}

// lastProduced returns the index of the last batch of the pair's producer
// in x, or -1.
func (x *replica) lastProduced() int {
	for i := len(x.batches) - 1; i >= 0; i-- {
		if x.batches[i].pid == x.pair.pid {
			return i
		}
	}
	return -1
}

// nextSeq is the epoch and sequence the pair's producer continues with on
// x: the next sequence after its last batch there, or sequence 0 of its
// epoch if that batch is of an older epoch.
func (x *replica) nextSeq() (int16, int32) {
	i := x.lastProduced()
	switch {
	case i < 0:
		return x.pair.pepoch, 0
	case x.batches[i].pepoch == x.pair.pepoch:
		return x.pair.pepoch, x.batches[i].lastSeq + 1
	}
	return x.pair.pepoch, 0
}

// reopened updates the model for an engine opened again: empty epochs at
// the log end are dropped, the leader epoch is the latest in the cache,
// every partition leads.
func (x *replica) reopened() {
	x.tail = nil
	x.leaderEpoch = 0
	if l, ok := x.latestEpoch(); ok {
		x.leaderEpoch = l
	}
	x.follower = false
}

func (pr *replicaRun) partition(x *replica) *Partition {
	pr.t.Helper()
	p, err := pr.e.Partition(x.topic, x.id)
	if err != nil {
		pr.fatalf("partition %s: %v", x.name(), err)
	}
	return p
}

// hwMoved records a new high watermark of x.
func (pr *replicaRun) hwMoved(x *replica, hw int64) {
	x.hw = hw
	if pr.managed && pr.ckptEvery && !slices.Contains(x.ckpt, hw) {
		x.ckpt = append(x.ckpt, hw)
	}
}

// checkState compares what every step may change: offsets, the high
// watermark, roles and the epoch cache.
func (pr *replicaRun) checkState(x *replica) {
	pr.t.Helper()
	p := pr.partition(x)
	start, leo, hw := p.StartOffset(), p.EndOffset(), p.HighWatermark()
	if start != x.start || leo != x.leo() || hw != x.hw {
		pr.fatalf("%s: start %d, end %d, hw %d; want %d, %d, %d", x.name(), start, leo, hw, x.start, x.leo(), x.hw)
	}
	if start > hw || hw > leo {
		pr.fatalf("%s: start %d, hw %d, end %d out of order", x.name(), start, hw, leo)
	}
	if !pr.managed && hw != leo {
		pr.fatalf("%s: unmanaged hw %d, end %d", x.name(), hw, leo)
	}
	if p.LeaderEpoch() != x.leaderEpoch || p.IsFollower() != x.follower {
		pr.fatalf("%s: leader epoch %d follower %v; want %d %v", x.name(), p.LeaderEpoch(), p.IsFollower(), x.leaderEpoch, x.follower)
	}
	for ep := int32(-1); ep <= x.pair.epoch+1; ep++ {
		gotE, gotOff := p.EndOffsetForEpoch(ep)
		we, wo := x.endOffsetFor(ep)
		if gotE != we || gotOff != wo {
			pr.fatalf("%s: EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d); model cache %v, end %d; engine cache %v", x.name(), ep, gotE, gotOff, we, wo, x.entries(), x.leo(), p.epochs.cache.entries)
		}
	}
}

func (pr *replicaRun) leaderAppend(x *replica) {
	pr.t.Helper()
	r := pr.r
	p := pr.partition(x)
	maxValue := 200
	if r.IntN(10) == 0 {
		maxValue = 2000
	}
	recs := randRecords(r, pr.clock.Load(), maxValue)
	pid, pepoch, seq := int64(-1), int16(0), int32(0)
	if r.IntN(2) == 0 && !x.follower {
		pid = x.pair.pid
		pepoch, seq = x.nextSeq()
	}
	raw := buildBatch(pr.t, recs, pr.codes[r.IntN(len(pr.codes))], pid, pepoch, seq)
	batch := bytes.Clone(raw)
	res, err := p.Append(batch)
	latest, ok := x.latestEpoch()
	switch {
	case x.follower:
		if !errors.Is(err, ErrNotLeader) {
			pr.fatalf("%s: append on a follower: %+v, %v; want ErrNotLeader", x.name(), res, err)
		}
		pr.count("append refused: follower")
		return
	case ok && x.leaderEpoch < latest:
		if !errors.Is(err, ErrFencedLeaderEpoch) {
			pr.fatalf("%s: append in epoch %d under cache epoch %d: %+v, %v; want ErrFencedLeaderEpoch", x.name(), x.leaderEpoch, latest, res, err)
		}
		pr.count("append refused: fenced")
		return
	case err != nil:
		pr.fatalf("%s: append: %v", x.name(), err)
	}
	base := x.leo()
	if res.Duplicate || res.BaseOffset != base || res.LastOffset != base+int64(len(recs))-1 {
		pr.fatalf("%s: append result %+v, want base %d", x.name(), res, base)
	}
	want := bytes.Clone(raw)
	record.SetBaseOffset(want, base)
	record.SetPartitionLeaderEpoch(want, x.leaderEpoch)
	now := pr.clock.Load()
	exp := make([]record.Record, len(recs))
	for i, rec := range recs {
		rec.Offset = base + int64(i)
		if x.lat {
			rec.Timestamp = now
		}
		exp[i] = rec
	}
	if x.lat {
		record.SetLogAppendTime(want, now)
		if res.LogAppendTime != now {
			pr.fatalf("%s: LogAppendTime %d, want %d", x.name(), res.LogAppendTime, now)
		}
	}
	if !bytes.Equal(batch, want) {
		pr.fatalf("%s: batch after append differs from the expected stored bytes", x.name())
	}
	h, err := record.ParseHeader(want)
	if err != nil {
		pr.fatalf("%s: %v", x.name(), err)
	}
	pr.tracef("%s: append [%d, %d] epoch %d pid %d/%d seq %d", x.name(), base, res.LastOffset, x.leaderEpoch, pid, pepoch, seq)
	x.batches = append(x.batches, rBatch{stored: want, raw: raw, base: base, last: res.LastOffset, epoch: x.leaderEpoch,
		maxTS: h.MaxTimestamp, pid: pid, pepoch: pepoch, lastSeq: seq + int32(len(recs)) - 1, recs: exp})
	x.tail = nil
	if !pr.managed {
		pr.hwMoved(x, x.leo())
	}
}

// retry sends one of the producer's last batches again: a duplicate with
// its original offsets, as long as the producer state (rebuilt by
// truncations and reopens) remembers it: one of the last five of its
// epoch, at or above the log start.
func (pr *replicaRun) retry(x *replica) {
	pr.t.Helper()
	last := x.lastProduced()
	if last < 0 {
		return
	}
	var cands []int
	seen := 0
	for i := last; i >= 0 && seen < producerWindow; i-- {
		if b := x.batches[i]; b.pid == x.pair.pid && b.pepoch == x.batches[last].pepoch {
			seen++
			if b.last >= x.start {
				cands = append(cands, i)
			}
		}
	}
	if len(cands) == 0 {
		return
	}
	b := x.batches[cands[pr.r.IntN(len(cands))]]
	res, err := pr.partition(x).Append(bytes.Clone(b.raw))
	if x.follower {
		if !errors.Is(err, ErrNotLeader) {
			pr.fatalf("%s: retry on a follower: %+v, %v", x.name(), res, err)
		}
		return
	}
	if err != nil || !res.Duplicate || res.BaseOffset != b.base || res.LastOffset != b.last {
		pr.fatalf("%s: retry of the batch at %d (seq %d): %+v, %v", x.name(), b.base, b.lastSeq, res, err)
	}
	pr.count("duplicate")
}

// chunkBytes returns a chunk's bytes, reading a file region with pread.
func (pr *replicaRun) chunkBytes(c Chunk) []byte {
	pr.t.Helper()
	if c.File == nil {
		return c.Bytes
	}
	b := make([]byte, c.Len)
	if _, err := c.File.ReadAt(b, c.Pos); err != nil {
		pr.fatalf("pread of [%d, %d): %v", c.Pos, c.Pos+c.Len, err)
	}
	return b
}

// segBases lists the base offsets of a partition's segments.
func segBases(p *Partition) []int64 {
	var out []int64
	for _, s := range p.log.Segments() {
		out = append(out, s.BaseOffset)
	}
	return out
}

// expectRead returns what a read of x at off bounded by bound must return:
// from the batch holding off, the batches of its segment that begin below
// bound; whole within maxBytes (the first always) for views, cut at
// maxBytes (but never within the first) for file regions.
func (x *replica) expectRead(bases []int64, off int64, maxBytes int, bound int64, region bool) (int64, []byte) {
	i := x.index(off)
	segEnd := int64(math.MaxInt64)
	for _, b := range bases {
		if b > x.batches[i].base {
			segEnd = b
			break
		}
	}
	var out []byte
	for j := i; j < len(x.batches) && x.batches[j].base < segEnd && x.batches[j].base < bound; j++ {
		s := x.batches[j].stored
		if !region && j > i && len(out)+len(s) > maxBytes {
			break
		}
		out = append(out, s...)
	}
	if region {
		out = out[:max(min(len(out), maxBytes), len(x.batches[i].stored))]
	}
	return x.batches[i].base, out
}

// checkRead calls one of the read paths of x and checks its result against
// the model. It returns the chunk (to Release) and its bytes.
func (pr *replicaRun) checkRead(x *replica, p *Partition, kind string, off int64, maxBytes int) (Chunk, []byte) {
	pr.t.Helper()
	var c Chunk
	var err error
	bound := x.hw
	switch kind {
	case "Read":
		c, err = p.Read(off, maxBytes)
	case "ReadBatches":
		c, err = p.ReadBatches(off, maxBytes)
	case "ReadReplica":
		c, err = p.ReadReplica(off, maxBytes)
		bound = x.leo()
	}
	what := fmt.Sprintf("%s: %s(%d, %d) with start %d, hw %d, end %d", x.name(), kind, off, maxBytes, x.start, x.hw, x.leo())
	if off < x.start || off > x.leo() {
		if !errors.Is(err, ErrOffsetOutOfRange) {
			pr.fatalf("%s: %v, want ErrOffsetOutOfRange", what, err)
		}
		return c, nil
	}
	if err != nil {
		pr.fatalf("%s: %v", what, err)
	}
	got := pr.chunkBytes(c)
	if off >= bound {
		if len(got) != 0 || c.FirstOffset != off {
			pr.fatalf("%s: first %d, %d bytes; want nothing at %d", what, c.FirstOffset, len(got), off)
		}
		return c, got
	}
	region := c.File != nil
	if pr.mem == nil && region != (kind != "ReadBatches") {
		pr.fatalf("%s: file region %v", what, region)
	}
	first, want := x.expectRead(segBases(p), off, maxBytes, bound, region)
	if c.FirstOffset != first || c.Size() != int64(len(got)) || !bytes.Equal(got, want) {
		pr.fatalf("%s: first %d, %d bytes (%s); want first %d, %d bytes (%s)", what, c.FirstOffset, len(got), describe(got), first, len(want), describe(want))
	}
	if !region {
		splitBatches(pr.t, got)
	}
	return c, got
}

// fetch is one fetch of x from s: a replica read of s at x's log end, maybe
// cut short or corrupted, appended to x with AppendReplica. It reports
// whether the append succeeded.
func (pr *replicaRun) fetch(x, s *replica) bool {
	pr.t.Helper()
	r := pr.r
	from := x.leo()
	c, got := pr.checkRead(s, pr.partition(s), "ReadReplica", from, 1+r.IntN(8000))
	if from < s.start || from > s.leo() {
		return false
	}
	data := bytes.Clone(got)
	c.Release()
	var whole []rBatch
	if len(data) > 0 {
		if r.IntN(2) == 0 {
			data = data[:r.IntN(len(data)+1)]
		}
		n := 0
		for j := s.index(from); j < len(s.batches) && n+len(s.batches[j].stored) <= len(data); j++ {
			whole = append(whole, s.batches[j])
			n += len(s.batches[j].stored)
		}
	}
	corrupt := -1
	if len(whole) > 0 && r.IntN(25) == 0 {
		corrupt = r.IntN(len(whole))
		pos := 0
		for _, b := range whole[:corrupt+1] {
			pos += len(b.stored)
		}
		data[pos-1-r.IntN(4)] ^= 0x20 // in the last record: only the CRC can tell
	}
	res, err := pr.partition(x).AppendReplica(data)
	var wantErr error
	next := from
	// Epochs may not go back from the last batch's; an epoch that holds
	// no batch yet (x.tail) gives way, as in Kafka.
	latest := UndefinedEpoch
	if bs := x.batches[x.index(x.start):]; len(bs) > 0 {
		latest = bs[len(bs)-1].epoch
	}
	for k, b := range whole {
		if k == corrupt {
			wantErr = record.ErrCorrupt
			break
		}
		if b.base != next || b.epoch < latest {
			wantErr = ErrNotContiguous
			break
		}
		next, latest = b.last+1, b.epoch
	}
	what := fmt.Sprintf("%s: AppendReplica of %d bytes (%d whole batches from %s at %d)", x.name(), len(data), len(whole), s.name(), from)
	if wantErr != nil {
		if !errors.Is(err, wantErr) || res.Batches != 0 || res.FirstOffset != -1 || res.LastOffset != -1 {
			pr.fatalf("%s: %+v, %v; want %v", what, res, err, wantErr)
		}
		pr.count(fmt.Sprintf("replica append refused: %v", wantErr))
		return false
	}
	want := ReplicaAppendResult{FirstOffset: -1, LastOffset: -1}
	if len(whole) > 0 {
		want.FirstOffset, want.LastOffset = whole[0].base, whole[len(whole)-1].last
	}
	for _, b := range whole {
		want.Batches++
		want.Bytes += len(b.stored)
	}
	if err != nil || res != want {
		pr.fatalf("%s: %+v, %v; want %+v", what, res, err, want)
	}
	pr.tracef("%s: replica append %+v from %s", x.name(), res, s.name())
	x.batches = append(x.batches, whole...)
	if n := 0; len(whole) > 0 {
		for _, b := range whole {
			n += len(b.stored)
		}
		if n < len(data) {
			pr.count("replica append of a cut response")
		} else {
			pr.count("replica append")
		}
		x.tail = nil
		if !pr.managed {
			pr.hwMoved(x, x.leo())
		}
	}
	return true
}

// reconcile makes x a copy of its peer as a follower would: truncate to
// where the logs diverge (unclean if that is below the high watermark),
// then fetch until caught up.
func (pr *replicaRun) reconcile(x *replica) {
	pr.t.Helper()
	s := x.peer
	i := 0
	for i < len(x.batches) && i < len(s.batches) && bytes.Equal(x.batches[i].stored, s.batches[i].stored) {
		i++
	}
	d := x.leo()
	if i < len(x.batches) {
		d = x.batches[i].base
	}
	if d < x.start {
		return
	}
	if d < x.leo() {
		pr.truncate(x, d, d < x.hw)
	}
	for k := 0; k < 20 && x.leo() < s.leo(); k++ {
		if !pr.fetch(x, s) {
			break
		}
	}
}

func (pr *replicaRun) randomTruncate(x *replica) {
	pr.t.Helper()
	r := pr.r
	leo := x.leo()
	var off int64
	switch r.IntN(4) {
	case 0:
		if len(x.batches) > 0 {
			off = x.batches[r.IntN(len(x.batches))].base
		}
	case 1:
		off = x.start - 1 + r.Int64N(leo-x.start+3)
	case 2:
		off = x.hw - 1 + r.Int64N(3)
	default:
		off = leo - r.Int64N(3)
	}
	unclean := r.IntN(2) == 0
	pr.truncate(x, off, unclean)
}

// truncate calls TruncateTo and checks the result against the model.
func (pr *replicaRun) truncate(x *replica, off int64, unclean bool) {
	pr.t.Helper()
	end, err := pr.partition(x).TruncateTo(off, unclean)
	leo := x.leo()
	what := fmt.Sprintf("%s: TruncateTo(%d, unclean %v) with start %d, hw %d, end %d", x.name(), off, unclean, x.start, x.hw, leo)
	if off >= leo {
		if err != nil || end != leo {
			pr.fatalf("%s: %d, %v; want %d", what, end, err, leo)
		}
		pr.count("truncation at or past the end")
		return
	}
	if off < x.start {
		if !errors.Is(err, ErrOffsetOutOfRange) {
			pr.fatalf("%s: %d, %v; want ErrOffsetOutOfRange", what, end, err)
		}
		pr.count("truncation refused: below the start")
		return
	}
	i := x.index(off)
	cut := x.batches[i].base
	var wantErr error
	switch {
	case cut < x.start: // the cut would go below the log start
		wantErr = ErrOffsetOutOfRange
	case !unclean && cut < x.hw: // committed records would go
		wantErr = ErrBelowHighWatermark
	}
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			pr.fatalf("%s: %d, %v; want %v", what, end, err, wantErr)
		}
		pr.count(fmt.Sprintf("truncation refused: %v", wantErr))
		return
	}
	if err != nil || end != cut {
		pr.fatalf("%s: %d, %v; want %d", what, end, err, cut)
	}
	pr.tracef("%s: TruncateTo(%d, %v) = %d", x.name(), off, unclean, end)
	switch {
	case cut < x.hw:
		pr.count("unclean truncation below the hw")
	case unclean:
		pr.count("unclean truncation at or above the hw")
	default:
		pr.count("clean truncation")
	}
	for _, h := range pr.held {
		if h.x == x {
			pr.count("truncation while a reader holds a chunk")
			pr.checkOne(h)
		}
	}
	x.batches = x.batches[:i]
	x.tail = nil
	// No checkpoint may bring back a high watermark above the cut.
	for j, v := range x.ckpt {
		x.ckpt[j] = min(v, cut)
	}
	if x.hw > cut {
		pr.hwMoved(x, cut)
		if pr.managed {
			// The cut wrote the checkpoint at once: every replica's
			// current high watermark is a value the file may hold.
			for _, y := range pr.reps {
				if !slices.Contains(y.ckpt, y.hw) {
					y.ckpt = append(y.ckpt, y.hw)
				}
			}
		}
	}
}

// startOver starts x's log over (FollowerWriter.TruncateFullyAndStartAt)
// at a batch boundary of its peer's log past x's end, as a follower whose
// log ends below its leader's log start does, or is refused: at or below
// the end, as a leader, in another epoch. The model keeps the peer's
// batches below the new start in x.batches (below the log start nothing
// reads them), so that offsets stay contiguous from 0 and a reconcile
// finds where the two logs agree.
func (pr *replicaRun) startOver(x *replica) {
	pr.t.Helper()
	r := pr.r
	if !x.follower && x.peer.follower && r.IntN(4) != 0 {
		x = x.peer // mostly what followers do
	}
	s := x.peer
	p := pr.partition(x)
	epoch := x.leaderEpoch
	if r.IntN(8) == 0 {
		epoch += int32(r.IntN(3)) - 1
	}
	w, err := p.Follower(epoch)
	if !x.follower || epoch != x.leaderEpoch {
		if !errors.Is(err, ErrNotFollowerInEpoch) || errors.Is(err, ErrNotLeader) != !x.follower {
			pr.fatalf("%s: Follower(%d) in epoch %d, follower %v: %v", x.name(), epoch, x.leaderEpoch, x.follower, err)
		}
		pr.count("start over refused: not a follower in the epoch")
		return
	}
	if err != nil {
		pr.fatalf("%s: Follower(%d): %v", x.name(), epoch, err)
	}
	var j int // s.batches[:j] end at the new start
	var cands []int
	for i := 1; i <= len(s.batches); i++ {
		if s.batches[i-1].last+1 > x.leo() {
			cands = append(cands, i)
		}
	}
	off := x.leo() - r.Int64N(3) // refused
	if len(cands) > 0 && r.IntN(5) != 0 {
		j = cands[r.IntN(len(cands))]
		off = s.batches[j-1].last + 1
	}
	err = w.TruncateFullyAndStartAt(off)
	what := fmt.Sprintf("%s: TruncateFullyAndStartAt(%d) with start %d, hw %d, end %d", x.name(), off, x.start, x.hw, x.leo())
	if off <= x.leo() {
		if !errors.Is(err, ErrOffsetOutOfRange) {
			pr.fatalf("%s: %v, want ErrOffsetOutOfRange", what, err)
		}
		pr.count("start over refused: not past the end")
		return
	}
	if err != nil {
		pr.fatalf("%s: %v", what, err)
	}
	pr.tracef("%s: started over at %d", x.name(), off)
	pr.count("start over")
	for _, h := range pr.held {
		if h.x == x {
			pr.count("start over while a reader holds a chunk")
			pr.checkOne(h)
		}
	}
	x.batches = append([]rBatch(nil), s.batches[:j]...)
	x.start, x.tail = off, nil
	pr.hwMoved(x, off)
	if pr.managed {
		// The start over wrote the checkpoint: every replica's current
		// high watermark is a value the file may hold.
		for _, y := range pr.reps {
			if !slices.Contains(y.ckpt, y.hw) {
				y.ckpt = append(y.ckpt, y.hw)
			}
		}
	}
}

func (pr *replicaRun) setHW(x *replica) {
	pr.t.Helper()
	r := pr.r
	leo := x.leo()
	var to int64
	switch {
	case r.IntN(4) == 0:
		to = leo + r.Int64N(3)
	case r.IntN(2) == 0 && len(x.batches) > 0: // a batch boundary
		to = x.batches[r.IntN(len(x.batches))].base
	default: // anywhere: rounded down to a boundary

		to = r.Int64N(leo + 1)
	}
	got := pr.partition(x).SetHighWatermark(to)
	want := x.hw
	if pr.managed {
		want = max(x.hw, x.boundaryBelow(min(to, leo)))
	}
	if got != want {
		pr.fatalf("%s: SetHighWatermark(%d) = %d with hw %d, end %d; want %d", x.name(), to, got, x.hw, leo, want)
	}
	if want != x.hw {
		pr.tracef("%s: hw %d", x.name(), want)
		pr.hwMoved(x, want)
	}
}

func (pr *replicaRun) deleteRecords(x *replica) {
	pr.t.Helper()
	r := pr.r
	var before int64
	switch r.IntN(4) {
	case 0:
		before = -1
	case 1:
		before = x.hw + r.Int64N(3)
	default:
		before = x.start + r.Int64N(x.hw-x.start+1)
	}
	got, err := pr.partition(x).DeleteRecords(before)
	b := before
	if b == -1 {
		b = x.hw
	}
	what := fmt.Sprintf("%s: DeleteRecords(%d) with start %d, hw %d, end %d", x.name(), before, x.start, x.hw, x.leo())
	if b < 0 || b > x.hw {
		if !errors.Is(err, ErrOffsetOutOfRange) {
			pr.fatalf("%s: %d, %v; want ErrOffsetOutOfRange", what, got, err)
		}
		pr.count("delete records refused")
		return
	}
	if b > x.start {
		pr.count("delete records")
	}
	pre := x.entries()
	want := max(x.start, b)
	if err != nil || got != want {
		pr.fatalf("%s: %d, %v; want %d", what, got, err, want)
	}
	pr.tracef("%s: DeleteRecords(%d) = %d", x.name(), before, want)
	x.start = want
	if x.start == x.leo() && x.tail == nil && len(pre) > 0 {
		// The cache keeps its latest entry, moved up to the log start.
		x.tail = &mEpoch{pre[len(pre)-1].epoch, x.start}
	}
}

func (pr *replicaRun) changeRole(x *replica) {
	pr.t.Helper()
	r := pr.r
	switch r.IntN(4) {
	case 0, 1: // failover: x leads the next epoch, its peer follows
		e := x.pair.epoch + 1
		pr.becomeLeader(x, e)
		pr.becomeFollower(x.peer, e)
	case 2:
		pr.becomeLeader(x, r.Int32N(x.pair.epoch+2))
	default:
		pr.becomeFollower(x, r.Int32N(x.pair.epoch+2))
	}
}

func (pr *replicaRun) becomeLeader(x *replica, e int32) {
	pr.t.Helper()
	err := pr.partition(x).BecomeLeader(e)
	latest, ok := x.latestEpoch()
	what := fmt.Sprintf("%s: BecomeLeader(%d) in epoch %d, cache epoch %d", x.name(), e, x.leaderEpoch, latest)
	if e < x.leaderEpoch || (ok && e < latest) {
		if !errors.Is(err, ErrFencedLeaderEpoch) {
			pr.fatalf("%s: %v, want ErrFencedLeaderEpoch", what, err)
		}
		pr.count("become leader refused")
		return
	}
	if err != nil {
		pr.fatalf("%s: %v", what, err)
	}
	pr.tracef("%s: leader in %d", x.name(), e)
	x.leaderEpoch, x.follower = e, false
	x.pair.epoch = max(x.pair.epoch, e)
	if !ok || e > latest {
		x.tail = &mEpoch{e, x.leo()}
	}
}

func (pr *replicaRun) becomeFollower(x *replica, e int32) {
	pr.t.Helper()
	err := pr.partition(x).BecomeFollower(e)
	if e < x.leaderEpoch {
		if !errors.Is(err, ErrFencedLeaderEpoch) {
			pr.fatalf("%s: BecomeFollower(%d) in epoch %d: %v, want ErrFencedLeaderEpoch", x.name(), e, x.leaderEpoch, err)
		}
		return
	}
	if err != nil {
		pr.fatalf("%s: BecomeFollower(%d): %v", x.name(), e, err)
	}
	pr.tracef("%s: follower in %d", x.name(), e)
	x.leaderEpoch, x.follower = e, true
	x.pair.epoch = max(x.pair.epoch, e)
}

// hold takes a chunk of x and keeps it, with a copy of its bytes.
func (pr *replicaRun) hold(x *replica) {
	pr.t.Helper()
	r := pr.r
	if x.leo() == x.start {
		return
	}
	kind := []string{"Read", "ReadBatches", "ReadReplica"}[r.IntN(3)]
	off := x.start + r.Int64N(x.leo()-x.start)
	c, got := pr.checkRead(x, pr.partition(x), kind, off, 1+r.IntN(20000))
	if len(got) == 0 {
		c.Release()
		return
	}
	if len(pr.held) >= 8 {
		pr.checkOne(pr.held[0])
		pr.held[0].c.Release()
		pr.held = pr.held[1:]
	}
	pr.held = append(pr.held, rHeld{x: x, kind: kind, off: off, c: c, want: bytes.Clone(got)})
}

func (pr *replicaRun) checkOne(h rHeld) {
	pr.t.Helper()
	pr.count("held chunk checked")
	if got := pr.chunkBytes(h.c); !bytes.Equal(got, h.want) {
		pr.fatalf("%s: chunk of %s(%d) held since then changed: %d bytes (%s), were %d (%s)",
			h.x.name(), h.kind, h.off, len(got), describe(got), len(h.want), describe(h.want))
	}
}

// checkHeld checks every held chunk and releases some, or all.
func (pr *replicaRun) checkHeld(all bool) {
	pr.t.Helper()
	kept := pr.held[:0]
	for _, h := range pr.held {
		pr.checkOne(h)
		if all || pr.r.IntN(3) == 0 {
			h.c.Release()
			continue
		}
		kept = append(kept, h)
	}
	pr.held = kept
}

// reopen closes (or crashes) the engine and opens it again.
func (pr *replicaRun) reopen(crash bool) {
	pr.t.Helper()
	pr.checkHeld(true)
	pr.count(map[bool]string{false: "close", true: "crash"}[crash])
	var file map[TopicPartition]int64
	if crash {
		pr.e.crash()
		// The checkpoint loop has stopped: the file is what the next open
		// reads.
		b, err := os.ReadFile(filepath.Join(pr.dir, hwCheckpointFile))
		if err == nil {
			file, err = unmarshalHWCheckpoint(b)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			pr.fatalf("high watermark checkpoint: %v", err)
		}
	} else if err := pr.e.Close(); err != nil {
		pr.fatalf("close: %v", err)
	}
	pr.open()
	for _, x := range pr.reps {
		x.reopened()
		switch {
		case !pr.managed:
			x.hw = x.leo()
		case !crash:
			// Close checkpointed it; the log is as it was.
			x.ckpt = []int64{x.hw}
		default:
			// The file holds a value the high watermark had since the last
			// close (-1: not named), and the partition opens with it cut to
			// [log start, log end].
			v, ok := file[TopicPartition{Topic: x.topic, Partition: x.id}]
			if !ok {
				v = -1
			}
			if !slices.Contains(x.ckpt, v) {
				pr.fatalf("%s: the high watermark checkpoint holds %d, want one of %v", x.name(), v, x.ckpt)
			}
			x.hw = x.clampHW(v)
			x.ckpt = []int64{v}
			if pr.ckptEvery && x.hw != v {
				x.ckpt = append(x.ckpt, x.hw)
			}
		}
		pr.checkState(x)
	}
	pr.verifyAll()
}

func (pr *replicaRun) verifyAll() {
	pr.t.Helper()
	for _, x := range pr.reps {
		pr.verify(x)
	}
}

// verify checks every read path of x against the model.
func (pr *replicaRun) verify(x *replica) {
	pr.t.Helper()
	r := pr.r
	p := pr.partition(x)
	pr.checkState(x)
	leo := x.leo()
	bases := segBases(p)
	// The oldest segment begins at a batch boundary at or below the log start.
	if f := bases[0]; f > x.start || (f < leo && x.batches[x.index(f)].base != f) {
		pr.fatalf("%s: oldest segment at %d with start %d, end %d", x.name(), f, x.start, leo)
	}
	pr.checkRecords(x, p, x.start)
	pr.checkRecords(x, p, x.start+r.Int64N(x.hw-x.start+1))
	for i := x.index(x.start); i < len(x.batches); i++ {
		if r.IntN(3) != 0 && i != len(x.batches)-1 {
			continue
		}
		b := x.batches[i]
		lo := max(b.base, x.start)
		off := lo + r.Int64N(b.last-lo+1)
		maxBytes := 1 + r.IntN(3*len(b.stored)+64)
		for _, kind := range []string{"Read", "ReadBatches", "ReadReplica"} {
			c, _ := pr.checkRead(x, p, kind, off, maxBytes)
			c.Release()
		}
	}
	for _, off := range []int64{x.start - 1, x.hw, leo, leo + 1} {
		for _, kind := range []string{"Read", "ReadBatches", "ReadReplica"} {
			c, _ := pr.checkRead(x, p, kind, off, 100)
			c.Release()
		}
	}
	// Timestamps, over the batches the log still holds.
	first := x.index(bases[0])
	tss := []int64{math.MinInt64 / 2, 0, math.MaxInt64 / 2}
	for _, b := range x.batches[first:] {
		if r.IntN(4) == 0 {
			tss = append(tss, b.maxTS-1, b.maxTS, b.maxTS+1)
		}
	}
	for _, ts := range tss {
		off := leo
		for _, b := range x.batches[first:] {
			if b.maxTS >= ts {
				off = b.base
				break
			}
		}
		want := min(max(off, x.start), x.hw)
		if got, err := p.OffsetForTimestamp(ts); err != nil || got != want {
			pr.fatalf("%s: OffsetForTimestamp(%d) = %d, %v; want %d", x.name(), ts, got, err, want)
		}
	}
}

// checkRecords checks the record iterator from offset from: the records
// from there to the high watermark.
func (pr *replicaRun) checkRecords(x *replica, p *Partition, from int64) {
	pr.t.Helper()
	it := p.Records(from)
	defer it.Close()
	want := from
	i := x.index(from)
	for it.Next() {
		got := it.Record()
		for i < len(x.batches) && x.batches[i].last < want {
			i++
		}
		if want >= x.hw || i == len(x.batches) {
			pr.fatalf("%s: iterator from %d returned offset %d; hw %d, end %d", x.name(), from, got.Offset, x.hw, x.leo())
		}
		exp := x.batches[i].recs[want-x.batches[i].base]
		if err := sameRecord(got, &exp); err != nil {
			pr.fatalf("%s: iterator from %d, record %d: %v", x.name(), from, want, err)
		}
		want++
	}
	if err := it.Err(); err != nil {
		pr.fatalf("%s: iterator from %d: %v", x.name(), from, err)
	}
	if end := max(from, x.hw); want != end {
		pr.fatalf("%s: iterator from %d stopped at %d, want %d", x.name(), from, want, end)
	}
}

// Engine bugs the property test found, each reduced to a few calls and
// kept as a regression test.

// bugEngine opens an engine with one single-partition topic "t" holding
// batches of the given record counts.
func bugEngine(t *testing.T, managed bool, counts ...int) (*Engine, *Partition, string, Options) {
	t.Helper()
	dir := t.TempDir()
	opts := quietOpts()
	opts.ManagedHighWatermarks = managed
	opts.HWCheckpointInterval = -1
	e := mustOpen(t, dir, opts)
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	for _, n := range counts {
		if _, err := p.Append(simpleBatch(t, n, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	return e, p, dir, opts
}

// Found by the property test: TruncateTo at a log start inside a batch cuts that batch whole and
// leaves the log end below the log start.
func TestReplicaTruncateAtMidBatchLogStart(t *testing.T) {
	e, p, _, _ := bugEngine(t, false, 3, 5) // batches [0, 2] and [3, 7]
	defer e.Close()
	if _, err := p.DeleteRecords(5); err != nil {
		t.Fatal(err)
	}
	end, err := p.TruncateTo(5, true)
	if p.EndOffset() < p.StartOffset() {
		t.Fatalf("TruncateTo(5, unclean) = %d, %v: log start %d above the log end %d (then appends go to offset %d, below the start, and reads at the start fail)",
			end, err, p.StartOffset(), p.EndOffset(), p.EndOffset())
	}
}

// Found by the property test: a clean TruncateTo at or above a high
// watermark that lay inside the batch holding the offset cut that batch
// whole, taking committed records without unclean. Now the high watermark
// is never inside a batch, and the check is on where the cut falls.
func TestReplicaCleanTruncateBelowMidBatchHW(t *testing.T) {
	e, p, _, _ := bugEngine(t, true, 3, 5) // batches [0, 2] and [3, 7]
	defer e.Close()
	// A high watermark inside a batch is rounded down to its base: a batch
	// is never half committed.
	if hw := p.SetHighWatermark(5); hw != 3 {
		t.Fatalf("SetHighWatermark(5) = %d, want 3", hw)
	}
	end, err := p.TruncateTo(6, false) // cuts [3, 7] whole: at the hw, allowed
	if err != nil || end != 3 {
		t.Fatalf("TruncateTo(6, clean) = %d, %v", end, err)
	}
	p.Append(simpleBatch(t, 5, 10, 1)) // [3, 7] again
	p.SetHighWatermark(8)
	if _, err := p.TruncateTo(6, false); !errors.Is(err, ErrBelowHighWatermark) {
		t.Fatalf("TruncateTo(6, clean) with hw 8: %v, want ErrBelowHighWatermark", err)
	}
}

// Found by the property test: a follower whose epoch cache ends with an epoch that holds no batch
// (it was leader in that epoch and appended nothing) refuses the new
// leader's batches of an older epoch at its log end, and no truncation at
// the log end removes that entry: it cannot follow until it reopens or
// truncates below its log end. Kafka's assign drops entries starting at or
// after the new batch's base offset.
func TestReplicaReplicaAppendAfterEmptyEpoch(t *testing.T) {
	e, a, _, _ := bugEngine(t, false)
	defer e.Close()
	if err := e.CreateTopic("b", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	b, _ := e.Partition("b", 0)
	a.BecomeLeader(3)
	a.Append(simpleBatch(t, 2, 10, 1)) // [0, 1] epoch 3
	a.Append(simpleBatch(t, 2, 10, 1)) // [2, 3] epoch 3
	batches := readAllBatches(t, a)
	b.BecomeFollower(3)
	if _, err := b.AppendReplica(batches[0]); err != nil {
		t.Fatal(err)
	}
	b.BecomeLeader(5) // b leads epoch 5 and appends nothing
	a.BecomeLeader(6) // a leads again; b follows
	b.BecomeFollower(6)
	b.TruncateTo(2, false) // to the end b and a agree on: a no-op
	if _, err := b.AppendReplica(batches[1]); err != nil {
		t.Fatalf("follower append of a's epoch-3 batch at 2: %v", err)
	}
}

// Found by the property test: after an unclean truncation lowers a managed high watermark, a
// crash brings back the checkpointed (higher) one, which then covers
// records that were never committed.
func TestReplicaHWAfterUncleanTruncationAndCrash(t *testing.T) {
	e, p, dir, opts := bugEngine(t, true, 2, 2, 2, 2, 2)
	p.SetHighWatermark(10)
	if err := e.Close(); err != nil { // checkpoints hw 10
		t.Fatal(err)
	}
	e = mustOpen(t, dir, opts)
	p, _ = e.Partition("t", 0)
	if _, err := p.TruncateTo(4, true); err != nil {
		t.Fatal(err)
	}
	p.Append(simpleBatch(t, 4, 10, 1)) // [4, 7], not committed
	hw := p.HighWatermark()
	e.crash()
	e = mustOpen(t, dir, opts)
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if p.HighWatermark() > hw {
		t.Fatalf("hw %d before the crash, %d after: offsets [%d, %d) were never committed", hw, p.HighWatermark(), hw, p.HighWatermark())
	}
}

// Found by the property test: with a high watermark inside a batch, Read (file regions) at an
// offset below the high watermark in that batch fails with
// ErrOffsetOutOfRange on the disk store (a consumer would reset its
// position), while ReadBatches and the memory store return the batch; and
// Read from further back stops before it while ReadBatches includes it.
func TestReplicaReadBelowMidBatchHW(t *testing.T) {
	e, p, _, _ := bugEngine(t, true, 3, 5, 2) // [0, 2], [3, 7], [8, 9]
	defer e.Close()
	p.SetHighWatermark(5)
	for _, off := range []int64{0, 3, 4} {
		c, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("Read(%d) with hw 5: %v", off, err)
		}
		n := c.Size()
		c.Release()
		v, err := p.ReadBatches(off, 1<<20)
		if err != nil {
			t.Fatalf("ReadBatches(%d): %v", off, err)
		}
		if n != int64(len(v.Bytes)) {
			t.Errorf("Read(%d) returned %d bytes, ReadBatches %d", off, n, len(v.Bytes))
		}
		v.Release()
	}
}

// Found by the property test: when the newest producer snapshot ends below the log start (after
// DeleteRecords) and the producer's batches between the snapshot and the
// start are still in the log, opening the partition (here after a crash)
// takes the snapshot's state and replays only from the log start: the
// producer's later batches are forgotten and its next batch in sequence is
// refused as out of order (a fatal error for a Kafka idempotent producer).
// Kafka either keeps the state up to date or evicts the producer.
func TestReplicaProducerStateBelowLogStart(t *testing.T) {
	e, p, dir, opts := bugEngine(t, false)
	if _, err := p.Append(buildIdem(t, 7, 0, 0, 2)); err != nil { // [0, 1], seq 0-1
		t.Fatal(err)
	}
	if err := e.Close(); err != nil { // snapshot at 2
		t.Fatal(err)
	}
	e = mustOpen(t, dir, opts)
	p, _ = e.Partition("t", 0)
	if _, err := p.Append(buildIdem(t, 7, 0, 2, 2)); err != nil { // [2, 3], seq 2-3
		t.Fatal(err)
	}
	if _, err := p.DeleteRecords(4); err != nil {
		t.Fatal(err)
	}
	e.crash()
	e = mustOpen(t, dir, opts)
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if _, err := p.Append(buildIdem(t, 7, 0, 4, 2)); err != nil {
		t.Fatalf("the producer's next batch (seq 4): %v", err)
	}
}

// fdsUnder lists this process's descriptors of files under dir.
func fdsUnder(dir string) []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(l, dir+"/") {
			out = append(out, l)
		}
	}
	return out
}
