package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/easel-io/easel/index"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// Corruption tests damage a closed engine's files and check what the next
// Open makes of them. The data is small so that every byte position can be
// tried.

const corruptTopic = "c"

// corruptOpts keeps index files small and an index entry every few batches.
func corruptOpts() Options {
	o := quietOpts()
	o.Segment = segment.Config{IndexInterval: 150, MaxIndexBytes: 1024}
	return o
}

// corruptFixture is a closed engine directory with one partition of three
// segments, and the batches it holds.
type corruptFixture struct {
	dir     string
	batches [][]byte // as stored, in offset order
	logs    []string // segment .log files, oldest first
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	dir := t.TempDir()
	e := mustOpen(t, dir, corruptOpts())
	if err := e.CreateTopic(corruptTopic, TopicConfig{SegmentBytes: 700}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition(corruptTopic, 0)
	for i := range 18 {
		// Timestamps go up and down so the time index has work to do.
		ts := int64(1000 + 10*i + 37*(i%3))
		if _, err := p.Append(simpleBatch(t, 1+i%3, 20+i, ts)); err != nil {
			t.Fatal(err)
		}
	}
	f := &corruptFixture{dir: dir, batches: readAllBatches(t, p)}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	f.logs = segmentFiles(t, partDir(dir, corruptTopic, 0))
	if len(f.logs) < 3 {
		t.Fatalf("fixture has %d segments, want at least 3", len(f.logs))
	}
	return f
}

// copyTo copies the fixture's directory into dst, which is emptied first.
func (f *corruptFixture) copyTo(t *testing.T, dst string) {
	t.Helper()
	if err := f.copyDir(dst); err != nil {
		t.Fatal(err)
	}
}

func (f *corruptFixture) copyDir(dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.dir, path)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
}

// segmentOf returns the index of the batch where segment file i starts.
func (f *corruptFixture) firstBatchOf(t *testing.T, seg int) int {
	t.Helper()
	base := segmentBase(t, f.logs[seg])
	for i, b := range f.batches {
		h, _ := record.ParseHeader(b)
		if h.BaseOffset == base {
			return i
		}
	}
	t.Fatalf("no batch at base %d", base)
	return 0
}

func segmentBase(t *testing.T, logPath string) int64 {
	t.Helper()
	var base int64
	if _, err := fmt.Sscanf(filepath.Base(logPath), "%020d.log", &base); err != nil {
		t.Fatal(err)
	}
	return base
}

// relPath maps a fixture path into the copy at dst.
func (f *corruptFixture) relPath(dst, path string) string {
	rel, _ := filepath.Rel(f.dir, path)
	return filepath.Join(dst, rel)
}

// checkPartition opens dst and verifies that the partition holds exactly
// want (as stored, in order), that timestamp lookups agree, and that an
// append goes to the end. The engine is then dropped without a clean close.
func checkPartition(t *testing.T, dst string, want [][]byte, what string) {
	t.Helper()
	if err := verifyPartition(dst, want, simpleBatch(t, 2, 5, 5000)); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// verifyPartition is checkPartition returning an error, for use from many
// goroutines; extra is the batch to append.
func verifyPartition(dst string, want [][]byte, extra []byte) error {
	e, err := Open(dst, corruptOpts())
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer e.crash()
	p, err := e.Partition(corruptTopic, 0)
	if err != nil {
		return err
	}
	var end int64
	if len(want) > 0 {
		h, _ := record.ParseHeader(want[len(want)-1])
		end = h.LastOffset() + 1
	}
	if p.StartOffset() != 0 || p.EndOffset() != end {
		return fmt.Errorf("offsets [%d, %d), want [0, %d)", p.StartOffset(), p.EndOffset(), end)
	}
	// Whole batches from the start, then every offset on its own, and
	// every timestamp lookup finds the first batch whose maxTimestamp
	// reaches it.
	c, err := p.ReadBatches(0, 1<<20)
	if err != nil {
		return fmt.Errorf("ReadBatches(0): %w", err)
	}
	got := c.Bytes
	for i, w := range want {
		batch, rest, err := record.Split(got)
		if err != nil || !bytes.Equal(batch, w) {
			c.Release()
			return fmt.Errorf("batch %d: %s, want %s (%v)", i, describe(batch), describe(w), err)
		}
		got = rest
		h, _ := record.ParseHeader(w)
		if len(got) == 0 && h.LastOffset()+1 < end {
			// the rest is in later segments
			c.Release()
			if c, err = p.ReadBatches(h.LastOffset()+1, 1<<20); err != nil {
				return fmt.Errorf("ReadBatches(%d): %w", h.LastOffset()+1, err)
			}
			got = c.Bytes
		}
	}
	c.Release()
	if len(got) > 0 {
		return fmt.Errorf("%d bytes after the last batch", len(got))
	}
	for _, w := range want {
		h, _ := record.ParseHeader(w)
		for off := h.BaseOffset; off <= h.LastOffset(); off++ {
			c, err := p.ReadBatches(off, 1)
			if err != nil || !bytes.Equal(c.Bytes, w) {
				return fmt.Errorf("ReadBatches(%d): %s, %v; want %s", off, describe(c.Bytes), err, describe(w))
			}
			c.Release()
		}
		for _, ts := range []int64{h.MaxTimestamp - 1, h.MaxTimestamp, h.MaxTimestamp + 1} {
			wantOff := end
			for _, x := range want {
				xh, _ := record.ParseHeader(x)
				if xh.MaxTimestamp >= ts {
					wantOff = xh.BaseOffset
					break
				}
			}
			if got, err := p.OffsetForTimestamp(ts); err != nil || got != wantOff {
				return fmt.Errorf("OffsetForTimestamp(%d) = %d, %v; want %d", ts, got, err, wantOff)
			}
		}
	}
	res, err := p.Append(bytes.Clone(extra))
	if err != nil || res.BaseOffset != end {
		return fmt.Errorf("append after recovery: %+v, %v; want base %d", res, err, end)
	}
	c, err = p.ReadBatches(end, 1)
	if err != nil || len(c.Bytes) == 0 {
		return fmt.Errorf("read of the new batch: %v", err)
	}
	c.Release()
	return nil
}

// forEachParallel runs check(i, dst) for i in [from, to) on a few
// goroutines, each with its own scratch directory, and fails the test with
// the first error (recovery fsyncs; the file system serves several at once
// far faster than one after another).
func forEachParallel(t *testing.T, from, to int, check func(i int, dst string) error) {
	t.Helper()
	const workers = 8
	var (
		mu    sync.Mutex
		first error
		next  = from
		wg    sync.WaitGroup
	)
	root := t.TempDir()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := filepath.Join(root, strconv.Itoa(w))
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= to || stop {
					return
				}
				if err := check(i, dst); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// TestRecoverTruncatedTail cuts the last segment's log at every byte
// position of its last three batches: the next Open keeps exactly the whole
// batches before the cut.
func TestRecoverTruncatedTail(t *testing.T) {
	f := newCorruptFixture(t)
	last := f.logs[len(f.logs)-1]
	full, _ := os.ReadFile(last)
	first := f.firstBatchOf(t, len(f.logs)-1)
	segBatches := f.batches[first:]
	if len(segBatches) < 3 {
		t.Fatalf("last segment has %d batches", len(segBatches))
	}
	ends := make([]int, len(segBatches)) // end position of each batch in the file
	pos := 0
	for i, b := range segBatches {
		pos += len(b)
		ends[i] = pos
	}
	if pos != len(full) {
		t.Fatalf("last segment is %d bytes, batches %d", len(full), pos)
	}
	from := ends[len(ends)-4]
	extra := simpleBatch(t, 2, 5, 5000)
	forEachParallel(t, from, len(full), func(cut int, dst string) error {
		if err := f.copyDir(dst); err != nil {
			return err
		}
		if err := os.Truncate(f.relPath(dst, last), int64(cut)); err != nil {
			return err
		}
		os.Remove(filepath.Join(dst, cleanMarker))
		keep := first
		for _, end := range ends {
			if end <= cut {
				keep++
			}
		}
		if err := verifyPartition(dst, f.batches[:keep], extra); err != nil {
			return fmt.Errorf("cut at %d: %w", cut, err)
		}
		return nil
	})
}

// TestRecoverFlippedByte flips each byte of the last batch in turn: the
// next Open keeps the batches before it. Bytes outside the CRC
// (baseOffset and partitionLeaderEpoch, which the broker rewrites) cannot
// be checked; a flip there may leave the batch in place.
func TestRecoverFlippedByte(t *testing.T) {
	f := newCorruptFixture(t)
	last := f.logs[len(f.logs)-1]
	full, _ := os.ReadFile(last)
	lastBatch := f.batches[len(f.batches)-1]
	at := len(full) - len(lastBatch)
	extra := simpleBatch(t, 2, 5, 5000)
	prev, _ := record.ParseHeader(f.batches[len(f.batches)-2])
	lastBase := segmentBase(t, last)
	forEachParallel(t, 0, len(lastBatch), func(i int, dst string) error {
		if err := f.copyDir(dst); err != nil {
			return err
		}
		mod := bytes.Clone(full)
		mod[at+i] ^= 0x20
		if err := os.WriteFile(f.relPath(dst, last), mod, 0o644); err != nil {
			return err
		}
		os.Remove(filepath.Join(dst, cleanMarker))
		kept := f.batches[:len(f.batches)-1]
		var err error
		switch {
		case i >= record.PosPartitionLeaderEpoch && i < record.PosMagic:
			// Not covered by the CRC: the batch stays, epoch and all.
			err = verifyPartition(dst, append(slices.Clone(kept), mod[at:]), extra)
		case i < record.PosBatchLength:
			// A baseOffset below the previous batch's end is dropped;
			// one above it is kept (offsets may have holes, as after
			// compaction) and reads skip the hole.
			h, _ := record.ParseHeader(mod[at:])
			if h.BaseOffset <= prev.LastOffset() || h.LastOffset()-lastBase > 1<<32-1 {
				err = verifyPartition(dst, kept, extra)
			} else {
				err = verifyHole(dst, kept, mod[at:])
			}
		default:
			err = verifyPartition(dst, kept, extra)
		}
		if err != nil {
			return fmt.Errorf("flip at batch byte %d: %w", i, err)
		}
		return nil
	})
}

// verifyHole checks a log of want followed, after a hole in the offsets,
// by tail.
func verifyHole(dst string, want [][]byte, tail []byte) error {
	e, err := Open(dst, corruptOpts())
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer e.crash()
	p, _ := e.Partition(corruptTopic, 0)
	th, _ := record.ParseHeader(tail)
	if p.EndOffset() != th.LastOffset()+1 {
		return fmt.Errorf("end offset %d, want %d", p.EndOffset(), th.LastOffset()+1)
	}
	prev, _ := record.ParseHeader(want[len(want)-1])
	// Reading in the hole returns the batch after it.
	c, err := p.ReadBatches(prev.LastOffset()+1, 1)
	if err != nil || !bytes.Equal(c.Bytes, tail) {
		return fmt.Errorf("read in the hole: %s, %v", describe(c.Bytes), err)
	}
	c.Release()
	it := p.Records(0)
	n := int64(0)
	for it.Next() {
		n++
	}
	if err := it.Close(); err != nil || n != prev.LastOffset()+1+int64(th.RecordCount) {
		return fmt.Errorf("iterated %d records across the hole: %v", n, err)
	}
	return nil
}

// TestRebuildDamagedIndexes deletes or damages the offset and time indexes
// of a sealed and of the active segment; Open rebuilds them (with or without
// a clean-shutdown marker) and every read and timestamp lookup still works.
func TestRebuildDamagedIndexes(t *testing.T) {
	f := newCorruptFixture(t)
	dst := filepath.Join(t.TempDir(), "d")
	r := rand.New(rand.NewPCG(1, 2))
	damages := map[string]func(path string, logSize int64) error{
		"delete": func(p string, _ int64) error { return os.Remove(p) },
		"garbage": func(p string, _ int64) error {
			b := make([]byte, 96)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return os.WriteFile(p, b, 0o644)
		},
		"odd-size": func(p string, _ int64) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, append(b, 1, 2, 3), 0o644)
		},
		"empty": func(p string, _ int64) error { return os.WriteFile(p, nil, 0o644) },
		"zeros": func(p string, _ int64) error { return os.WriteFile(p, make([]byte, 240), 0o644) },
		"truncated": func(p string, _ int64) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n := len(b) / 2
			if filepath.Ext(p) == segment.IndexSuffix {
				n -= n % index.OffsetEntrySize
			} else {
				n -= n % index.TimeEntrySize
			}
			return os.WriteFile(p, b[:n], 0o644)
		},
		// Well-formed (increasing) entries that point past the end of the
		// log, as an index left over from a longer log would. (The time
		// index case is TestSegmentTimeIndexPastEnd.)
		"past-the-end": func(p string, logSize int64) error {
			if filepath.Ext(p) != segment.IndexSuffix {
				return nil
			}
			var b []byte
			b = binary.BigEndian.AppendUint32(b, 0)
			b = binary.BigEndian.AppendUint32(b, 0)
			b = binary.BigEndian.AppendUint32(b, 1000)
			b = binary.BigEndian.AppendUint32(b, uint32(logSize)+100)
			return os.WriteFile(p, b, 0o644)
		},
	}
	for name, damage := range damages {
		for _, seg := range []int{0, len(f.logs) - 1} {
			for _, suffix := range []string{segment.IndexSuffix, segment.TimeIndexSuffix, "both"} {
				for _, clean := range []bool{true, false} {
					what := fmt.Sprintf("%s %s of segment %d, clean=%v", name, suffix, seg, clean)
					t.Run(what, func(t *testing.T) {
						f.copyTo(t, dst)
						logPath := f.relPath(dst, f.logs[seg])
						st, err := os.Stat(logPath)
						if err != nil {
							t.Fatal(err)
						}
						stem := logPath[:len(logPath)-len(segment.LogSuffix)]
						sufs := []string{suffix}
						if suffix == "both" {
							sufs = []string{segment.IndexSuffix, segment.TimeIndexSuffix}
						}
						for _, s := range sufs {
							if err := damage(stem+s, st.Size()); err != nil && !errors.Is(err, fs.ErrNotExist) {
								t.Fatal(err)
							}
						}
						if !clean {
							os.Remove(filepath.Join(dst, cleanMarker))
						}
						checkPartition(t, dst, f.batches, what)
					})
				}
			}
		}
	}
}

// TestRecoveryDropsSegmentsAfterTornTail: when recovery cuts the tail of a
// segment that is not the last one (it was rolled but its fsync did not
// complete before a machine crash), the segments after it no longer follow
// on and are removed, as Kafka does; the log continues from the cut.
func TestRecoveryDropsSegmentsAfterTornTail(t *testing.T) {
	f := newCorruptFixture(t)
	dst := filepath.Join(t.TempDir(), "d")
	f.copyTo(t, dst)
	mid := f.logs[1]
	full, _ := os.ReadFile(mid)
	if err := os.Truncate(f.relPath(dst, mid), int64(len(full)-5)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dst, cleanMarker))
	// The segment was never recorded as durable.
	os.Remove(filepath.Join(partDir(dst, corruptTopic, 0), recoveryFile))
	keep := f.firstBatchOf(t, 2) - 1 // segment 1 loses its last batch
	checkPartition(t, dst, f.batches[:keep], "torn tail of segment 1")
	if n := len(segmentFiles(t, partDir(dst, corruptTopic, 0))); n != 2 {
		t.Fatalf("%d segment files left, want 2", n)
	}
}

// TestRecoveryKeepsHoleInDurableSegment: a sealed segment below the
// recovery point was durable before the crash, so a hole after it is not a
// torn tail; nothing after it is removed, and reads skip the hole.
func TestRecoveryKeepsHoleInDurableSegment(t *testing.T) {
	f := newCorruptFixture(t)
	dst := filepath.Join(t.TempDir(), "d")
	f.copyTo(t, dst)
	mid := f.logs[1]
	full, _ := os.ReadFile(mid)
	last := f.firstBatchOf(t, 2) - 1
	if err := os.Truncate(f.relPath(dst, mid), int64(len(full)-len(f.batches[last]))); err != nil {
		t.Fatal(err)
	}
	e, err := Open(dst, corruptOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p, _ := e.Partition(corruptTopic, 0)
	want := append(slices.Clone(f.batches[:last]), f.batches[last+1:]...)
	got := readAllBatches(t, p)
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d: %s, want %s", i, describe(got[i]), describe(want[i]))
		}
	}
	h, _ := record.ParseHeader(f.batches[last])
	c, err := p.ReadBatches(h.BaseOffset, 1)
	if err != nil || !bytes.Equal(c.Bytes, f.batches[last+1]) {
		t.Fatalf("read in the hole: %s, %v", describe(c.Bytes), err)
	}
	c.Release()
	n := 0
	it := p.Records(0)
	for it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatalf("iterating across the hole: %v", err)
	}
	if want := int(p.EndOffset()) - int(h.LastOffset()-h.BaseOffset+1); n != want {
		t.Fatalf("iterated %d records, want %d", n, want)
	}
}
