package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/easel-io/easel/record"
)

// followerPair opens an engine with a leader partition "l" holding n
// idempotent batches of two records (epoch 1 from the fourth on) and a
// follower partition "f" in epoch 2 holding the first k of them.
func followerPair(t *testing.T, dir string, opts Options, n, k int) (*Engine, *Partition, *Partition) {
	t.Helper()
	e := mustOpen(t, dir, opts)
	for _, name := range []string{"l", "f"} {
		if err := e.CreateTopic(name, TopicConfig{SegmentBytes: 300}); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := e.Partition("l", 0)
	f, _ := e.Partition("f", 0)
	for i := range n {
		if i == 3 {
			l.BecomeLeader(1)
		}
		if _, err := l.Append(buildIdem(t, 9, 0, int32(i*2), 2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.BecomeFollower(2); err != nil {
		t.Fatal(err)
	}
	if k > 0 {
		if _, err := f.AppendReplica(bytes.Join(splitBatches(t, readAllBatchesTo(t, l))[:k], nil)); err != nil {
			t.Fatal(err)
		}
	}
	return e, l, f
}

// TestFollowerWriterFenced: a FollowerWriter writes only while the
// partition follows exactly its epoch; afterwards every method fails with
// ErrNotFollowerInEpoch (and ErrNotLeader or ErrFencedLeaderEpoch) and
// changes nothing.
func TestFollowerWriterFenced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *Partition) error
		also   error // wrapped besides ErrNotFollowerInEpoch; nil: none
	}{
		{"promoted", func(p *Partition) error { return p.BecomeLeader(2) }, ErrNotLeader},
		{"promoted later epoch", func(p *Partition) error { return p.BecomeLeader(3) }, ErrNotLeader},
		{"newer epoch", func(p *Partition) error { return p.BecomeFollower(3) }, ErrFencedLeaderEpoch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, l, f := followerPair(t, t.TempDir(), quietOpts(), 6, 2)
			defer e.Close()
			w, err := f.Follower(2)
			if err != nil {
				t.Fatal(err)
			}
			batches := splitBatches(t, readAllBatchesTo(t, l))
			if res, err := w.Append(batches[2]); err != nil || res.Batches != 1 {
				t.Fatalf("append in epoch: %+v %v", res, err)
			}
			if err := tc.change(f); err != nil {
				t.Fatal(err)
			}
			end, start := f.EndOffset(), f.StartOffset()
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrNotFollowerInEpoch) || (tc.also != nil && !errors.Is(err, tc.also)) {
					t.Errorf("%s: %v, want ErrNotFollowerInEpoch and %v", what, err, tc.also)
				}
			}
			_, err = w.Append(batches[3])
			check("Append", err)
			_, err = w.TruncateTo(0, true)
			check("TruncateTo", err)
			check("TruncateFullyAndStartAt", w.TruncateFullyAndStartAt(end+10))
			_, err = f.Follower(2)
			check("Follower", err)
			if f.EndOffset() != end || f.StartOffset() != start {
				t.Fatalf("log [%d, %d) changed to [%d, %d)", start, end, f.StartOffset(), f.EndOffset())
			}
		})
	}
	// A writer for an epoch the partition has not reached yet.
	e, _, f := followerPair(t, t.TempDir(), quietOpts(), 1, 0)
	defer e.Close()
	if _, err := f.Follower(3); !errors.Is(err, ErrNotFollowerInEpoch) || errors.Is(err, ErrFencedLeaderEpoch) || errors.Is(err, ErrNotLeader) {
		t.Fatalf("Follower(3) in epoch 2: %v", err)
	}
}

// TestTruncateFullyAndStartAt starts follower logs over, on both stores:
// offsets, high watermark, epoch cache and producer state afterwards, held
// chunks, the files left, refusals, and the same state after a close and
// after a crash.
func TestTruncateFullyAndStartAt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mem     bool
		managed bool
		k       int   // batches the follower holds
		at      int64 // start over at log end + at
		want    error
	}{
		{"empty log", false, false, 0, 10, nil},
		{"segments", false, false, 8, 1, nil},
		{"segments, managed", false, true, 8, 33, nil},
		{"memory", true, true, 8, 5, nil},
		{"at the log end", false, false, 8, 0, ErrOffsetOutOfRange},
		{"below the log end", false, true, 8, -3, ErrOffsetOutOfRange},
		{"memory, below", true, false, 8, -1, ErrOffsetOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := quietOpts()
			opts.ManagedHighWatermarks = tc.managed
			if tc.mem {
				opts.Store = NewMemoryStore()
			}
			e, l, f := followerPair(t, dir, opts, 10, tc.k)
			defer func() { e.Close() }()
			if tc.managed {
				f.SetHighWatermark(f.EndOffset() - 1)
			}
			var held Chunk
			var heldBytes []byte
			if tc.k > 0 {
				var err error
				if held, err = f.ReadReplica(0, 1<<20); err != nil {
					t.Fatal(err)
				}
				heldBytes = bytes.Clone(held.Bytes)
				if held.File != nil {
					heldBytes = make([]byte, held.Len)
					held.File.ReadAt(heldBytes, held.Pos)
				}
			}
			defer held.Release()
			w, err := f.Follower(2)
			if err != nil {
				t.Fatal(err)
			}
			before := [3]int64{f.StartOffset(), f.EndOffset(), f.HighWatermark()}
			off := f.EndOffset() + tc.at
			changed := f.Changed()
			err = w.TruncateFullyAndStartAt(off)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("start over at %d: %v, want %v", off, err, tc.want)
				}
				if now := [3]int64{f.StartOffset(), f.EndOffset(), f.HighWatermark()}; now != before {
					t.Fatalf("refused start over changed [start end hw] %v to %v", before, now)
				}
				if _, err := w.Append(splitBatches(t, readAllBatchesTo(t, l))[tc.k]); err != nil {
					t.Fatalf("append after a refused start over: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
			default:
				t.Fatal("long polls not woken")
			}
			if held.Size() > 0 {
				got := bytes.Clone(held.Bytes)
				if held.File != nil {
					got = make([]byte, held.Len)
					if _, err := held.File.ReadAt(got, held.Pos); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, heldBytes) {
					t.Fatal("a held chunk changed")
				}
			}
			checkEmptyAt(t, f, off)
			if !tc.mem {
				files := segmentFiles(t, partDir(dir, "f", 0))
				if len(files) != 1 || filepath.Base(files[0]) != segmentName(off) {
					t.Fatalf("segment files %v", files)
				}
				if s := mustStates(t, partDir(dir, "f", 0)); len(s) != 1 || s[0] != snapshotName(off) {
					t.Fatalf("producer snapshots %v", s)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, hwCheckpointFile)); !bytes.Contains(b, []byte("f 0 "+strconv.FormatInt(off, 10)+"\n")) {
					t.Fatalf("high watermark checkpoint:\n%s", b)
				}
			}
			// Batches of the leader's from where it starts: a leader of
			// epoch 5 whose log starts at off.
			lb := buildIdem(t, 9, 0, 100, 2)
			record.SetBaseOffset(lb, off)
			record.SetPartitionLeaderEpoch(lb, 5)
			if res, err := w.Append(lb); err != nil || res.FirstOffset != off {
				t.Fatalf("append at the new start: %+v %v", res, err)
			}
			if ep, end := f.EndOffsetForEpoch(5); ep != 5 || end != off+2 {
				t.Fatalf("EndOffsetForEpoch(5) = %d, %d", ep, end)
			}
			if tc.mem {
				return
			}
			for _, crash := range []bool{false, true} {
				if crash {
					e.crash()
				} else if err := e.Close(); err != nil {
					t.Fatal(err)
				}
				e = mustOpen(t, dir, opts)
				f, _ = e.Partition("f", 0)
				if f.StartOffset() != off || f.EndOffset() != off+2 {
					t.Fatalf("reopened (crash %v): [%d, %d)", crash, f.StartOffset(), f.EndOffset())
				}
				if got := readAllBatchesTo(t, f); !bytes.Equal(got, lb) {
					t.Fatalf("reopened (crash %v): log differs", crash)
				}
			}
		})
	}
}

// checkEmptyAt checks that p is an empty log at off with nothing left of
// its old epochs and producers.
func checkEmptyAt(t *testing.T, p *Partition, off int64) {
	t.Helper()
	if p.StartOffset() != off || p.EndOffset() != off || p.HighWatermark() != off {
		t.Fatalf("start %d end %d hw %d, want all %d", p.StartOffset(), p.EndOffset(), p.HighWatermark(), off)
	}
	for ep := int32(0); ep < 8; ep++ {
		if e, o := p.EndOffsetForEpoch(ep); e != UndefinedEpoch || o != UndefinedOffset {
			t.Fatalf("EndOffsetForEpoch(%d) = %d, %d on an empty log", ep, e, o)
		}
	}
	p.mu.Lock()
	n := len(p.mu.producers.m)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d producers remembered", n)
	}
	if _, err := p.Read(off, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(off-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v", err)
	}
}

// readAllBatchesTo is readAllBatches up to the log end, joined.
func readAllBatchesTo(t *testing.T, p *Partition) []byte {
	t.Helper()
	var out []byte
	for off := p.StartOffset(); off < p.EndOffset(); {
		c, err := p.ReadReplica(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b := c.Bytes
		if c.File != nil {
			b = make([]byte, c.Len)
			c.File.ReadAt(b, c.Pos)
		}
		bs := splitBatches(t, b)
		c.Release()
		for _, x := range bs {
			out = append(out, x...)
		}
		h, _ := record.ParseHeader(bs[len(bs)-1])
		off = h.LastOffset() + 1
	}
	return out
}

func segmentName(base int64) string { return fmt.Sprintf("%020d.log", base) }

// TestStartOverRecovery opens the two states a crash in the middle of
// TruncateFullyAndStartAt can leave, built by hand: before the commit (the
// state files prepared, the log start not written) the old log comes back
// exactly, epochs and producers included; after it (only the log start
// written past the end) the empty log at the new start.
func TestStartOverRecovery(t *testing.T) {
	dir := t.TempDir()
	e, _, f := followerPair(t, dir, quietOpts(), 10, 8)
	all := readAllBatchesTo(t, f)
	end := f.EndOffset()
	epochs := make(map[int32][2]int64)
	for ep := int32(0); ep < 4; ep++ {
		a, b := f.EndOffsetForEpoch(ep)
		epochs[ep] = [2]int64{int64(a), b}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	pdir := partDir(dir, "f", 0)
	off := end + 7

	// Before the commit.
	var empty producerState
	if err := os.WriteFile(filepath.Join(pdir, snapshotName(off)), empty.marshal(off), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(pdir, epochCheckpointName)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, cleanMarker))
	e = mustOpen(t, dir, quietOpts())
	f, _ = e.Partition("f", 0)
	if got := readAllBatchesTo(t, f); f.StartOffset() != 0 || f.EndOffset() != end || !bytes.Equal(got, all) {
		t.Fatalf("before the commit: [%d, %d), log equal %v", f.StartOffset(), f.EndOffset(), bytes.Equal(got, all))
	}
	for ep, want := range epochs {
		if a, b := f.EndOffsetForEpoch(ep); a != int32(want[0]) || b != want[1] {
			t.Fatalf("before the commit: EndOffsetForEpoch(%d) = %d, %d, want %v", ep, a, b, want)
		}
	}
	if res, err := f.Append(buildIdem(t, 9, 0, 14, 2)); err != nil || !res.Duplicate {
		t.Fatalf("before the commit: producer state lost: %+v %v", res, err)
	}
	if s := mustStates(t, pdir); len(s) > 0 && s[len(s)-1] == snapshotName(off) {
		t.Fatalf("snapshot past the end kept: %v", s)
	}
	e.crash()

	// After the commit: only the log start is written.
	if err := os.WriteFile(filepath.Join(pdir, logStartFile), []byte(strconv.FormatInt(off, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, snapshotName(off)), empty.marshal(off), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(pdir, epochCheckpointName))
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	f, _ = e.Partition("f", 0)
	checkEmptyAt(t, f, off)
	if files := segmentFiles(t, pdir); len(files) != 1 || filepath.Base(files[0]) != segmentName(off) {
		t.Fatalf("after the commit: segment files %v", files)
	}
}
