package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/easel-io/easel/record"
)

// batch builds a batch of n records with timestamp ts and base offset off.
func batch(t testing.TB, off int64, n int, ts int64, size int) []byte {
	t.Helper()
	b := record.NewBuilder(record.BuilderOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	for i := range n {
		b.Add(record.Record{Key: []byte(fmt.Sprint(i)), Value: bytes.Repeat([]byte{byte(i)}, size), Timestamp: ts})
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(out, off)
	return out
}

// fill appends count batches of 3 records and returns them as stored.
func fill(t testing.TB, s *Segment, count int, size int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range count {
		b := batch(t, s.NextOffset(), 3, int64(100+i), size)
		h, err := record.Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Append(b, h); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func readLog(t testing.TB, dir string, base int64) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileName(base)+LogSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendReadLocate(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, 1000, Config{IndexInterval: 512, MaxIndexBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batches := fill(t, s, 50, 100)
	if s.NextOffset() != 1000+150 {
		t.Fatalf("next offset %d", s.NextOffset())
	}
	var pos int64
	for i, b := range batches {
		for d := range int64(3) {
			off := 1000 + int64(i)*3 + d
			p, h, err := s.Locate(off)
			if err != nil || p != pos || h.BaseOffset != 1000+int64(i)*3 {
				t.Fatalf("Locate(%d) = %d, %d, %v; want %d", off, p, h.BaseOffset, err, pos)
			}
			v, err := s.View(off, 1)
			if err != nil || !bytes.Equal(v, b) {
				t.Fatalf("View(%d): %v", off, err)
			}
		}
		r, err := s.Read(1000+int64(i)*3, 1<<20)
		if err != nil || r.Pos != pos || r.Len != s.Size()-pos {
			t.Fatalf("Read: %+v %v", r, err)
		}
		got := make([]byte, len(b))
		if _, err := r.File.ReadAt(got, r.Pos); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("region bytes differ: %v", err)
		}
		pos += int64(len(b))
	}
	// maxBytes smaller than the first batch still returns it whole.
	if r, _ := s.Read(1000, 1); r.Len != int64(len(batches[0])) {
		t.Fatalf("first batch cut: %d", r.Len)
	}
	if v, _ := s.View(1000, len(batches[0])*2+1); len(v) != 2*len(batches[0]) {
		t.Fatalf("view of two batches: %d bytes", len(v))
	}
	for _, off := range []int64{999, 1150, 5000} {
		if _, _, err := s.Locate(off); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("Locate(%d): %v", off, err)
		}
	}
	for _, tc := range []struct{ ts, want int64 }{{0, 1000}, {100, 1000}, {101, 1003}, {149, 1147}} {
		got, err := s.OffsetForTimestamp(tc.ts)
		if err != nil || got != tc.want {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %v; want %d", tc.ts, got, err, tc.want)
		}
	}
	if _, err := s.OffsetForTimestamp(150); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("timestamp past the end: %v", err)
	}
	// Append at the wrong offset is refused.
	b := batch(t, 7, 1, 1, 1)
	h, _ := record.Validate(b)
	if err := s.Append(b, h); err == nil {
		t.Fatal("append at a wrong offset accepted")
	}
}

func TestReopenClean(t *testing.T) {
	dir := t.TempDir()
	s, _ := Create(dir, 0, Config{IndexInterval: 256, MaxIndexBytes: 4096})
	batches := fill(t, s, 40, 50)
	size, next := s.Size(), s.NextOffset()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, active := range []bool{true, false} {
		s, err := Open(dir, 0, Config{IndexInterval: 256, MaxIndexBytes: 4096}, active)
		if err != nil {
			t.Fatal(err)
		}
		if s.Size() != size || s.NextOffset() != next {
			t.Fatalf("reopen: size %d next %d, want %d %d", s.Size(), s.NextOffset(), size, next)
		}
		if v, err := s.View(30, 1); err != nil || !bytes.Equal(v, batches[10]) {
			t.Fatalf("view after reopen: %v", err)
		}
		if active {
			more := fill(t, s, 1, 5)
			if v, _ := s.View(next, 1); !bytes.Equal(v, more[0]) {
				t.Fatal("append after reopen")
			}
			next = s.NextOffset()
			size = s.Size()
		}
		s.Close()
	}
}

// TestRecoverTruncatedEverywhere cuts the log at every byte position of its
// last three batches: recovery must keep exactly the whole batches before
// the cut.
func TestRecoverTruncatedEverywhere(t *testing.T) {
	src := t.TempDir()
	s, _ := Create(src, 0, Config{IndexInterval: 128, MaxIndexBytes: 4096})
	batches := fill(t, s, 12, 20)
	s.Close()
	full := readLog(t, src, 0)
	var ends []int64 // end position of each batch
	var pos int64
	for _, b := range batches {
		pos += int64(len(b))
		ends = append(ends, pos)
	}
	start := ends[len(ends)-4]
	for cut := start; cut <= int64(len(full)); cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName(0)+LogSuffix), full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenForRecovery(dir, 0, Config{IndexInterval: 128, MaxIndexBytes: 4096}, true)
		if err != nil {
			t.Fatal(err)
		}
		cutBytes, err := s.Recover()
		if err != nil {
			t.Fatal(err)
		}
		keep := 0
		for keep < len(ends) && ends[keep] <= cut {
			keep++
		}
		wantSize := int64(0)
		if keep > 0 {
			wantSize = ends[keep-1]
		}
		if s.Size() != wantSize || cutBytes != cut-wantSize || s.NextOffset() != int64(keep)*3 {
			t.Fatalf("cut at %d: size %d cut %d next %d; want size %d next %d", cut, s.Size(), cutBytes, s.NextOffset(), wantSize, keep*3)
		}
		if got := readLog(t, dir, 0); int64(len(got)) != wantSize {
			t.Fatalf("cut at %d: file is %d bytes, want %d", cut, len(got), wantSize)
		}
		// Appends continue where the valid prefix ends, and reads work.
		fill(t, s, 1, 20)
		if keep > 0 {
			if v, err := s.View(int64(keep-1)*3, 1); err != nil || !bytes.Equal(v, batches[keep-1]) {
				t.Fatalf("cut at %d: last kept batch unreadable: %v", cut, err)
			}
		}
		s.Close()
	}
}

// TestRecoverFlippedBytes flips every byte of the last batch: recovery keeps
// the batches before it.
func TestRecoverFlippedBytes(t *testing.T) {
	src := t.TempDir()
	s, _ := Create(src, 0, Config{IndexInterval: 128, MaxIndexBytes: 4096})
	batches := fill(t, s, 5, 10)
	s.Close()
	full := readLog(t, src, 0)
	last := len(full) - len(batches[4])
	for i := last; i < len(full); i++ {
		dir := t.TempDir()
		mod := bytes.Clone(full)
		mod[i] ^= 0x5a
		os.WriteFile(filepath.Join(dir, FileName(0)+LogSuffix), mod, 0o644)
		s, _ := OpenForRecovery(dir, 0, Config{IndexInterval: 128, MaxIndexBytes: 4096}, true)
		if _, err := s.Recover(); err != nil {
			t.Fatal(err)
		}
		// baseOffset and partitionLeaderEpoch lie outside the CRC (the broker
		// rewrites them): a flip there may leave a valid batch, if offsets
		// still grow. Everything else must cut.
		if s.Size() != int64(last) {
			h, err := record.Validate(mod[last:])
			unchecked := i < last+8 || (i >= last+12 && i < last+16)
			if !(unchecked && err == nil && h.BaseOffset >= 12 && s.Size() == int64(len(full))) {
				t.Fatalf("flip at %d: kept %d bytes, want %d", i, s.Size(), last)
			}
		}
		s.Close()
	}
}

func TestIndexesRebuilt(t *testing.T) {
	for _, damage := range []string{"delete", "garbage", "odd-size"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := Create(dir, 0, Config{IndexInterval: 64, MaxIndexBytes: 4096})
			batches := fill(t, s, 30, 20)
			s.Close()
			for _, suf := range []string{IndexSuffix, TimeIndexSuffix} {
				p := filepath.Join(dir, FileName(0)+suf)
				switch damage {
				case "delete":
					os.Remove(p)
				case "garbage":
					os.WriteFile(p, bytes.Repeat([]byte{0xff, 0, 0x13}, 8), 0o644)
				case "odd-size":
					os.WriteFile(p, []byte{1, 2, 3}, 0o644)
				}
			}
			for _, active := range []bool{false, true} {
				s, err := Open(dir, 0, Config{IndexInterval: 64, MaxIndexBytes: 4096}, active)
				if err != nil {
					t.Fatalf("open active=%v: %v", active, err)
				}
				for i, b := range batches {
					if v, err := s.View(int64(i)*3+1, 1); err != nil || !bytes.Equal(v, b) {
						t.Fatalf("batch %d after rebuild: %v", i, err)
					}
				}
				if off, err := s.OffsetForTimestamp(120); err != nil || off != 60 {
					t.Fatalf("timestamp lookup after rebuild: %d %v", off, err)
				}
				s.Close()
			}
		})
	}
}

func TestFitsAndLifetime(t *testing.T) {
	dir := t.TempDir()
	s, _ := Create(dir, 0, Config{MaxBytes: 300})
	b := batch(t, 0, 1, 1, 200)
	if !s.Fits(len(b), 0) {
		t.Fatal("an empty segment takes any batch")
	}
	h, _ := record.Validate(b)
	if err := s.Append(b, h); err != nil {
		t.Fatal(err)
	}
	if s.Fits(len(b), 1) {
		t.Fatal("segment over MaxBytes still fits")
	}
	if err := s.Append(batch(t, 1, 1, 1, 200), h); !errors.Is(err, ErrFull) && err == nil {
		t.Fatal("append past MaxBytes accepted")
	}
	if s.Fits(10, 1<<33) {
		t.Fatal("relative offset overflow fits")
	}
	// A reader's reference keeps a deleted segment's files readable.
	if !s.Acquire() {
		t.Fatal("acquire")
	}
	v, err := s.View(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v, b) {
		t.Fatal("view changed under a held reference")
	}
	if _, err := os.Stat(s.path(LogSuffix)); !os.IsNotExist(err) {
		t.Fatal("log not renamed by Delete")
	}
	if _, err := os.Stat(s.path(LogSuffix + DeletedSuffix)); err != nil {
		t.Fatal("files removed while referenced")
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path(LogSuffix + DeletedSuffix)); !os.IsNotExist(err) {
		t.Fatal("files not removed after the last release")
	}
	if s.Acquire() {
		t.Fatal("acquire after the last release")
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, base := range []int64{500, 0, 20} {
		s, _ := Create(dir, base, Config{})
		s.Close()
	}
	os.WriteFile(filepath.Join(dir, "junk.log"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, FileName(7)+IndexSuffix), nil, 0o644)
	got, err := List(dir)
	if err != nil || fmt.Sprint(got) != "[0 20 500]" {
		t.Fatalf("List = %v, %v", got, err)
	}
}

// FuzzRecover feeds arbitrary log bytes to recovery: it must not panic, and
// what it keeps must be a prefix of whole, valid batches with growing
// offsets.
func FuzzRecover(f *testing.F) {
	var seed []byte
	for i := range 3 {
		seed = append(seed, batch(f, int64(i), 2, 5, 4)...)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName(0)+LogSuffix), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenForRecovery(dir, 0, Config{IndexInterval: 32, MaxIndexBytes: 4096}, true)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Recover(); err != nil {
			t.Fatal(err)
		}
		kept := data[:s.Size()]
		next := int64(0)
		for len(kept) > 0 {
			b, rest, err := record.Split(kept)
			if err != nil {
				t.Fatalf("kept bytes do not split: %v", err)
			}
			h, err := record.Validate(b)
			if err != nil || h.BaseOffset < next {
				t.Fatalf("kept an invalid batch: %v", err)
			}
			next = h.LastOffset() + 1
			kept = rest
		}
		if s.NextOffset() != max(next, 0) && s.Size() > 0 {
			t.Fatalf("next offset %d, want %d", s.NextOffset(), next)
		}
		if s.Size() > 0 {
			if _, err := s.View(s.NextOffset()-1, 1); err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("last batch unreadable: %v", err)
			}
		}
	})
}

// TestSealLeavesFlushToSync: Seal, which runs in the append path at roll,
// flushes nothing; the next Sync flushes the log and both trimmed indexes,
// and later Syncs only the log. The indexes read back right afterwards.
func TestSealLeavesFlushToSync(t *testing.T) {
	var synced []string
	old := syncFile
	syncFile = func(f *os.File) error {
		synced = append(synced, filepath.Ext(f.Name()))
		return old(f)
	}
	t.Cleanup(func() { syncFile = old })

	dir := t.TempDir()
	cfg := Config{IndexInterval: 256, MaxIndexBytes: 4096}
	s, err := Create(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	batches := fill(t, s, 40, 50)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 0 {
		t.Fatalf("Seal flushed %v", synced)
	}
	for i, want := range [][]string{{LogSuffix, IndexSuffix, TimeIndexSuffix}, {LogSuffix}} {
		synced = nil
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(synced) != fmt.Sprint(want) {
			t.Fatalf("Sync %d flushed %v, want %v", i+1, synced, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suf := range []string{IndexSuffix, TimeIndexSuffix} {
		fi, err := os.Stat(filepath.Join(dir, FileName(0)+suf))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= 4096 {
			t.Fatalf("%s after seal: %d bytes, want it trimmed", suf, fi.Size())
		}
	}
	s, err = Open(dir, 0, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.View(30, 1); err != nil || !bytes.Equal(v, batches[10]) {
		t.Fatalf("view after reopen: %v", err)
	}
}
