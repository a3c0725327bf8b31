package engine

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/easel-io/easel/record"
)

// OffsetForLeaderEpoch answers follow Kafka's LeaderEpochFileCache.endOffsetFor.
func TestEndOffsetForEpoch(t *testing.T) {
	c := epochCache{entries: []epochEntry{{epoch: 2, start: 10}, {epoch: 4, start: 25}, {epoch: 7, start: 40}}}
	const leo = 55
	cases := []struct {
		name      string
		epoch     int32
		wantEpoch int32
		wantOff   int64
	}{
		{"undefined", UndefinedEpoch, UndefinedEpoch, UndefinedOffset},
		{"below the first", 1, 1, 10},
		{"first", 2, 2, 25},
		{"between", 3, 2, 25},
		{"middle", 4, 4, 40},
		{"between later", 6, 4, 40},
		{"current", 7, 7, leo},
		{"above current", 8, UndefinedEpoch, UndefinedOffset},
	}
	for _, tc := range cases {
		e, off := c.endOffsetFor(tc.epoch, leo)
		if e != tc.wantEpoch || off != tc.wantOff {
			t.Errorf("%s: endOffsetFor(%d) = (%d, %d), want (%d, %d)", tc.name, tc.epoch, e, off, tc.wantEpoch, tc.wantOff)
		}
	}
	// After truncation to 30 the epoch 7 entry is gone and 4 is the latest.
	c.truncateFromEnd(30)
	if e, off := c.endOffsetFor(4, 30); e != 4 || off != 30 {
		t.Errorf("after truncation: endOffsetFor(4) = (%d, %d), want (4, 30)", e, off)
	}
	if e, off := c.endOffsetFor(7, 30); e != UndefinedEpoch || off != UndefinedOffset {
		t.Errorf("after truncation: endOffsetFor(7) = (%d, %d), want undefined", e, off)
	}
	var empty epochCache
	if e, off := empty.endOffsetFor(0, 0); e != UndefinedEpoch || off != UndefinedOffset {
		t.Errorf("empty cache: (%d, %d)", e, off)
	}
}

func TestEpochCacheAssignAndCheckpoint(t *testing.T) {
	var c epochCache
	for _, a := range []struct {
		epoch   int32
		start   int64
		changed bool
		err     bool
	}{
		{0, 0, true, false},
		{0, 5, false, false}, // same epoch: nothing
		{3, 5, true, false},
		{2, 9, false, true}, // older epoch
		{5, 5, true, false}, // same start: replaces epoch 3 (it holds nothing)
		{-2, 9, false, true},
	} {
		changed, err := c.assign(a.epoch, a.start)
		if changed != a.changed || (err != nil) != a.err {
			t.Fatalf("assign(%d, %d) = %v, %v", a.epoch, a.start, changed, err)
		}
	}
	want := []epochEntry{{0, 0}, {5, 5}}
	if len(c.entries) != len(want) || c.entries[0] != want[0] || c.entries[1] != want[1] {
		t.Fatalf("entries %v, want %v", c.entries, want)
	}
	var d epochCache
	if err := d.unmarshal(c.marshal()); err != nil || len(d.entries) != 2 || d.entries[1] != want[1] {
		t.Fatalf("round trip: %v %v", d.entries, err)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\n1 0\n", "0\n2\n3 5\n2 9\n", "0\n1\nx 1\n", "0\n1\n1 -4\n"} {
		if err := d.unmarshal([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	c.truncateFromStart(7)
	if c.entries[0] != (epochEntry{5, 7}) || len(c.entries) != 1 {
		t.Fatalf("truncateFromStart: %v", c.entries)
	}
}

func TestLeaderEpochsStampedAndPersisted(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	mustAppend := func(n int) {
		t.Helper()
		if _, err := p.Append(simpleBatch(t, n, 10, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(3) // epoch 0 at 0
	if err := p.BecomeLeader(4); err != nil {
		t.Fatal(err)
	}
	mustAppend(2) // epoch 4 at 3
	if err := p.BecomeLeader(2); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("older epoch: %v", err)
	}
	batches := readAllBatches(t, p)
	for i, wantEpoch := range []int32{0, 4} {
		h, _ := record.ParseHeader(batches[i])
		if h.PartitionLeaderEpoch != wantEpoch {
			t.Fatalf("batch %d has epoch %d, want %d", i, h.PartitionLeaderEpoch, wantEpoch)
		}
	}
	if ep, off := p.EndOffsetForEpoch(0); ep != 0 || off != 3 {
		t.Fatalf("EndOffsetForEpoch(0) = %d, %d", ep, off)
	}
	e.crash()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if p.LeaderEpoch() != 4 {
		t.Fatalf("leader epoch after reopen %d", p.LeaderEpoch())
	}
	if ep, off := p.EndOffsetForEpoch(4); ep != 4 || off != 5 {
		t.Fatalf("EndOffsetForEpoch(4) after reopen = %d, %d", ep, off)
	}
	if ep, off := p.EndOffsetForEpoch(1); ep != 0 || off != 3 {
		t.Fatalf("EndOffsetForEpoch(1) after reopen = %d, %d", ep, off)
	}
}

// A log written before epochs were checkpointed gets its cache rebuilt from
// the batch headers.
func TestEpochCacheRebuiltWithoutCheckpoint(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	e.CreateTopic("t", TopicConfig{})
	p, _ := e.Partition("t", 0)
	p.Append(simpleBatch(t, 2, 10, 1))
	p.BecomeLeader(3)
	p.Append(simpleBatch(t, 2, 10, 1))
	e.Close()
	if err := os.Remove(filepath.Join(partDir(dir, "t", 0), epochCheckpointName)); err != nil {
		t.Fatal(err)
	}
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if ep, off := p.EndOffsetForEpoch(0); ep != 0 || off != 2 {
		t.Fatalf("rebuilt EndOffsetForEpoch(0) = %d, %d", ep, off)
	}
	if p.LeaderEpoch() != 3 {
		t.Fatalf("leader epoch %d", p.LeaderEpoch())
	}
}

// The high watermark bounds consumer reads; replicas read to the log end.
func TestManagedHighWatermark(t *testing.T) {
	dir := t.TempDir()
	opts := quietOpts()
	opts.ManagedHighWatermarks = true
	e := mustOpen(t, dir, opts)
	e.CreateTopic("t", TopicConfig{})
	p, _ := e.Partition("t", 0)
	for range 3 {
		if _, err := p.Append(simpleBatch(t, 2, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if p.HighWatermark() != 0 || p.EndOffset() != 6 {
		t.Fatalf("hw %d leo %d", p.HighWatermark(), p.EndOffset())
	}
	c, err := p.Read(0, 1<<20)
	if err != nil || c.Size() != 0 {
		t.Fatalf("consumer read below hw 0: %d bytes, %v", c.Size(), err)
	}
	c.Release()
	if c, err = p.ReadReplica(0, 1<<20); err != nil || c.Size() == 0 {
		t.Fatalf("replica read: %d bytes, %v", c.Size(), err)
	}
	c.Release()
	if got := p.SetHighWatermark(4); got != 4 {
		t.Fatalf("SetHighWatermark(4) = %d", got)
	}
	if got := p.SetHighWatermark(2); got != 4 {
		t.Fatalf("HW moved back: %d", got)
	}
	if got := p.SetHighWatermark(100); got != 6 {
		t.Fatalf("HW past the log end: %d", got)
	}
	p.SetHighWatermark(4)
	e.Close() // hw 6 (it never moved back) is checkpointed
	e = mustOpen(t, dir, opts)
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if p.HighWatermark() != 6 {
		t.Fatalf("checkpointed hw %d", p.HighWatermark())
	}
	// Consumer reads stop at the hw, views too.
	p.AppendReplica(nil)
	p.Append(simpleBatch(t, 2, 10, 1))
	v, err := p.ReadBatches(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	if got := len(splitBatches(t, v.Bytes)); got != 3 {
		t.Fatalf("view below hw returned %d batches, want 3", got)
	}
	if _, err := p.Read(9, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the log end: %v", err)
	}
}

// Records stops at the high watermark, RecordsToEnd at the log end; the
// leader's DurableEnd is the log end (the fsynced end under flush.messages=1).
func TestRecordsToEnd(t *testing.T) {
	for _, flush1 := range []bool{false, true} {
		opts := quietOpts()
		opts.ManagedHighWatermarks = true
		e := mustOpen(t, t.TempDir(), opts)
		var cfg TopicConfig
		if flush1 {
			cfg.FlushMessages = 1
		}
		e.CreateTopic("t", cfg)
		p, _ := e.Partition("t", 0)
		for range 3 {
			if _, err := p.Append(simpleBatch(t, 2, 10, 1)); err != nil {
				t.Fatal(err)
			}
		}
		p.SetHighWatermark(2)
		count := func(it *RecordIterator) int {
			n := 0
			for it.Next() {
				n++
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(p.Records(0)); n != 2 {
			t.Fatalf("Records read %d, want 2 (the high watermark)", n)
		}
		if n := count(p.RecordsToEnd(1)); n != 5 {
			t.Fatalf("RecordsToEnd(1) read %d, want 5", n)
		}
		if got := p.DurableEnd(); got != 6 {
			t.Fatalf("flush.messages=1 %v: DurableEnd %d, want 6", flush1, got)
		}
		e.Close()
	}
}

// With flush.messages=1 the high watermark moves only after the fsync.
func TestHighWatermarkFollowsLogEnd(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	e.CreateTopic("t", TopicConfig{})
	p, _ := e.Partition("t", 0)
	p.Append(simpleBatch(t, 3, 10, 1))
	if p.HighWatermark() != 3 {
		t.Fatalf("hw %d", p.HighWatermark())
	}
	var slow TopicConfig
	if err := slow.Set("flush.messages", "1"); err != nil {
		t.Fatal(err)
	}
	e.CreateTopic("d", slow)
	d, _ := e.Partition("d", 0)
	d.Append(simpleBatch(t, 3, 10, 1))
	if d.HighWatermark() != 3 || d.flushed.Load() != 3 {
		t.Fatalf("durable topic: hw %d flushed %d", d.HighWatermark(), d.flushed.Load())
	}
}

func TestAppendReplica(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	e.CreateTopic("leader", TopicConfig{SegmentBytes: 400})
	e.CreateTopic("follower", TopicConfig{SegmentBytes: 400})
	l, _ := e.Partition("leader", 0)
	f, _ := e.Partition("follower", 0)
	for i := range 6 {
		if i == 3 {
			l.BecomeLeader(2)
		}
		if _, err := l.Append(buildIdem(t, 9, 0, int32(i*2), 2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.BecomeFollower(2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(simpleBatch(t, 1, 10, 1)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("leader append on a follower: %v", err)
	}
	all := bytes.Join(readAllBatches(t, l), nil)
	// A fetch response cut in the middle of a batch: the partial one is ignored.
	cut := all[:len(all)-7]
	res, err := f.AppendReplica(cut)
	if err != nil || res.FirstOffset != 0 || res.LastOffset != 9 || res.Batches != 5 {
		t.Fatalf("first append: %+v %v", res, err)
	}
	last := splitBatches(t, all)[5]
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"gap", splitBatches(t, all)[4], ErrNotContiguous},
		{"crc", flip(last, 70), record.ErrCorrupt},
	} {
		if _, err := f.AppendReplica(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if res, err := f.AppendReplica(last); err != nil || res.Batches != 1 {
		t.Fatalf("last batch: %+v %v", res, err)
	}
	got := bytes.Join(readAllBatches(t, f), nil)
	if !bytes.Equal(got, all) {
		t.Fatal("follower log differs from the leader's")
	}
	if ep, off := f.EndOffsetForEpoch(0); ep != 0 || off != 6 {
		t.Fatalf("follower EndOffsetForEpoch(0) = %d, %d", ep, off)
	}
	// Epochs may not go back.
	old := buildIdem(t, 9, 0, 12, 2)
	record.SetBaseOffset(old, f.EndOffset())
	record.SetPartitionLeaderEpoch(old, 1)
	if _, err := f.AppendReplica(old); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("epoch going back: %v", err)
	}
	e.crash()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	f, _ = e.Partition("follower", 0)
	if got := bytes.Join(readAllBatches(t, f), nil); !bytes.Equal(got, all) {
		t.Fatal("follower log differs after a crash")
	}
	// Producer state came with the batches: the leader's retry is a duplicate.
	res2, err := f.Append(buildIdem(t, 9, 0, 10, 2))
	if err != nil || !res2.Duplicate {
		t.Fatalf("retry on the former follower: %+v %v", res2, err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

func TestDeleteRecords(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	e.CreateTopic("t", TopicConfig{SegmentBytes: 300})
	p, _ := e.Partition("t", 0)
	for range 10 {
		p.Append(simpleBatch(t, 2, 50, 1))
	}
	segs := len(p.log.Segments())
	if _, err := p.DeleteRecords(21); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past the hw: %v", err)
	}
	start, err := p.DeleteRecords(9)
	if err != nil || start != 9 || p.StartOffset() != 9 {
		t.Fatalf("DeleteRecords(9) = %d, %v; start %d", start, err, p.StartOffset())
	}
	if len(p.log.Segments()) >= segs {
		t.Fatalf("no segment removed (%d)", segs)
	}
	if _, err := p.Read(8, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	c, err := p.Read(9, 100)
	if err != nil || c.Size() == 0 {
		t.Fatalf("read at the start: %v", err)
	}
	c.Release()
	if start, err := p.DeleteRecords(3); err != nil || start != 9 {
		t.Fatalf("moving back: %d %v", start, err)
	}
	e.crash()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if p.StartOffset() != 9 {
		t.Fatalf("start after a crash %d", p.StartOffset())
	}
	if start, err := p.DeleteRecords(-1); err != nil || start != 20 {
		t.Fatalf("DeleteRecords(-1) = %d %v", start, err)
	}
}

// Retention never removes a segment holding offsets at or above the hw.
func TestRetentionStopsAtHighWatermark(t *testing.T) {
	opts := quietOpts()
	opts.ManagedHighWatermarks = true
	e := mustOpen(t, t.TempDir(), opts)
	defer e.Close()
	e.CreateTopic("t", TopicConfig{SegmentBytes: 300, RetentionBytes: 1})
	p, _ := e.Partition("t", 0)
	for range 10 {
		p.Append(simpleBatch(t, 2, 50, 1))
	}
	if n, err := e.EnforceRetention(); err != nil || n != 0 {
		t.Fatalf("retention with hw 0 removed %d segments: %v", n, err)
	}
	p.SetHighWatermark(8)
	if _, err := e.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	// Everything below the segment holding offset 8 went; that one stays.
	segs := p.log.Segments()
	if segs[0].BaseOffset > 8 || len(segs) > 1 && segs[1].BaseOffset <= 8 {
		t.Fatalf("retention with hw 8 left segments %+v", segs)
	}
}

// An explicit zero or false given by name is kept over the defaults.
func TestExplicitZeroSettings(t *testing.T) {
	opts := quietOpts()
	opts.Defaults = TopicConfig{RetentionBytes: 5000, FlushMs: 1000, LogAppendTime: true}
	e := mustOpen(t, t.TempDir(), opts)
	var c TopicConfig
	for k, v := range map[string]string{"retention.bytes": "0", "flush.ms": "0", "message.timestamp.type": "CreateTime", "retention.ms": "0"} {
		if err := c.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateTopic("t", c); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateTopic("d", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		ti, _ := e.Topic("t")
		if ti.Config.RetentionBytes != 0 || ti.Config.FlushMs != 0 || ti.Config.LogAppendTime || ti.Config.RetentionMs != 0 {
			t.Fatalf("explicit zeros lost: %+v", ti.Config)
		}
		if !ti.Config.IsSet("flush.ms") || ti.Config.IsSet("segment.bytes") {
			t.Fatalf("IsSet wrong: %v", ti.Config.Explicit())
		}
		di, _ := e.Topic("d")
		if di.Config.RetentionBytes != 5000 || di.Config.FlushMs != 1000 || !di.Config.LogAppendTime || di.Config.SegmentMs == 0 {
			t.Fatalf("defaults not applied: %+v", di.Config)
		}
		if di.Config.FlushMessages != math.MaxInt64 {
			t.Fatalf("flush.messages %d", di.Config.FlushMessages)
		}
	}
	check()
	dir := e.dir
	e.Close()
	e = mustOpen(t, dir, opts)
	defer e.Close()
	check()
}

// Truncation restores producer state from the newest snapshot at or below
// the cut, and a snapshot from before the single-file layout is read once.
func TestProducerSnapshotsAcrossTruncation(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	e.CreateTopic("t", TopicConfig{SegmentBytes: 300})
	p, _ := e.Partition("t", 0)
	for i := range 12 { // rolls every few batches: one snapshot per roll
		if _, err := p.Append(buildIdem(t, 5, 0, int32(i*2), 2)); err != nil {
			t.Fatal(err)
		}
	}
	p.snapWG.Wait() // roll snapshots are written in the background
	ends, _ := p.snapshotEnds()
	if len(ends) < 3 {
		t.Fatalf("snapshots %v", ends)
	}
	if _, err := p.TruncateTo(9, true); err != nil { // keeps batches 0..3 (offsets 0..7)
		t.Fatal(err)
	}
	ends, _ = p.snapshotEnds()
	if ends[len(ends)-1] > 8 {
		t.Fatalf("snapshot past the new end survived: %v", ends)
	}
	// Sequence 8 comes next; a retry of the last kept batch is a duplicate.
	if res, err := p.Append(buildIdem(t, 5, 0, 6, 2)); err != nil || !res.Duplicate || res.BaseOffset != 6 {
		t.Fatalf("retry after truncation: %+v %v", res, err)
	}
	if _, err := p.Append(buildIdem(t, 5, 0, 12, 2)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence of a cut batch: %v", err)
	}
	if _, err := p.Append(buildIdem(t, 5, 0, 8, 2)); err != nil {
		t.Fatal(err)
	}
	// The old single-file layout: replaced at open.
	p.log.SaveState(legacySnapshotName, p.mu.producers.marshal(p.EndOffset()), true)
	e.Close()
	for _, n := range mustStates(t, partDir(dir, "t", 0)) {
		os.Remove(filepath.Join(partDir(dir, "t", 0), n))
	}
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if res, err := p.Append(buildIdem(t, 5, 0, 8, 2)); err != nil || !res.Duplicate {
		t.Fatalf("retry after reading the legacy snapshot: %+v %v", res, err)
	}
	if b, _ := p.log.LoadState(legacySnapshotName); b != nil {
		t.Fatal("legacy snapshot not replaced")
	}
}

func mustStates(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if filepath.Ext(e.Name()) == snapshotSuffix {
			out = append(out, e.Name())
		}
	}
	return out
}

// A managed high watermark of a sole replica follows the log end (the
// fsynced end under flush.messages=1) until it is not sole, or changes role.
func TestSoleReplica(t *testing.T) {
	opts := quietOpts()
	opts.ManagedHighWatermarks = true
	e := mustOpen(t, t.TempDir(), opts)
	defer e.Close()
	e.CreateTopic("t", TopicConfig{})
	p, _ := e.Partition("t", 0)
	p.Append(simpleBatch(t, 2, 10, 1))
	if p.HighWatermark() != 0 {
		t.Fatalf("managed hw moved by itself: %d", p.HighWatermark())
	}
	p.SetSoleReplica(true)
	if p.HighWatermark() != 2 {
		t.Fatalf("sole: hw %d, want the log end 2", p.HighWatermark())
	}
	p.Append(simpleBatch(t, 2, 10, 1))
	if p.HighWatermark() != 4 {
		t.Fatalf("sole: hw %d after an append, want 4", p.HighWatermark())
	}
	p.SetSoleReplica(false)
	p.Append(simpleBatch(t, 2, 10, 1))
	if p.HighWatermark() != 4 {
		t.Fatalf("not sole: hw %d moved by an append", p.HighWatermark())
	}
	p.SetSoleReplica(true)
	if err := p.BecomeLeader(1); err != nil {
		t.Fatal(err)
	}
	p.Append(simpleBatch(t, 2, 10, 1))
	if p.HighWatermark() != 6 {
		t.Fatalf("after BecomeLeader: hw %d, want 6 (not sole any more)", p.HighWatermark())
	}
}
