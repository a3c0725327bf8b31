package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// Tests of the compaction swap's crash safety: a swap stopped at each of
// its steps, then the process "crashed" (files released, nothing synced or
// written), must open as the old log before the commit and as the
// compacted one after it; and a fuzzed, damaged swap directory must open
// without a panic, and as the old log whenever the old segments are whole.

var errStopSwap = errors.New("test: swap stopped here")

// compactFixture writes a compacted topic of several segments with many
// duplicate keys and closes the engine.
func compactFixture(t testing.TB, dir string, segBytes int64) {
	t.Helper()
	e := mustOpen(t, dir, quietOpts())
	p := compactTopic(t, e, segBytes)
	for i := range 120 {
		recs := []record.Record{{Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(fmt.Sprintf("value-%d", i))}}
		if i%11 == 0 {
			recs[0].Value = nil
		}
		if _, err := p.Append(buildBatch(t, recs, int8(i%5), -1, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// readKeyed reads every record of c/0 as "offset key value" lines.
func readKeyed(t testing.TB, e *Engine) []string {
	t.Helper()
	p, err := e.Partition("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	it := p.Records(p.StartOffset())
	var out []string
	prev := int64(-1)
	for it.Next() {
		r := it.Record()
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		out = append(out, fmt.Sprintf("%d %s %q %v", r.Offset, r.Key, r.Value, r.Value == nil))
	}
	if err := it.Close(); err != nil {
		t.Fatalf("read: %v", err)
	}
	return out
}

func copyTree(t testing.TB, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

func TestCompactionSwapCrashPoints(t *testing.T) {
	base := t.TempDir()
	orig := filepath.Join(base, "orig")
	compactFixture(t, orig, 700)

	ref := filepath.Join(base, "ref")
	copyTree(t, orig, ref)
	e := mustOpen(t, ref, quietOpts())
	oldRecs := readKeyed(t, e)
	if _, err := e.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	newRecs := readKeyed(t, e)
	e.Close()
	if len(newRecs) >= len(oldRecs) {
		t.Fatalf("the fixture does not compact: %d records, then %d", len(oldRecs), len(newRecs))
	}

	for _, tc := range []struct {
		step      string
		committed bool
	}{
		{"built", false}, {"committed", true}, {"deleted-first", true}, {"deleted", true}, {"moved", true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := filepath.Join(base, tc.step)
			copyTree(t, orig, dir)
			e := mustOpen(t, dir, quietOpts())
			p, _ := e.Partition("c", 0)
			stops := 0
			p.log.(*diskLog).swapStep = func(s string) error {
				if s == tc.step {
					stops++
					return errStopSwap
				}
				return nil
			}
			if _, err := e.EnforceRetention(); !errors.Is(err, errStopSwap) || stops != 1 {
				t.Fatalf("compaction: %v after %d stops, want it stopped once at %s", err, stops, tc.step)
			}
			e.crash()
			e = mustOpen(t, dir, quietOpts())
			got := readKeyed(t, e)
			// The first group swapped (or not); later groups are as before.
			if !tc.committed && !slicesEqual(got, oldRecs) {
				t.Fatalf("before the commit the old log must come back: got %d records, want %d", len(got), len(oldRecs))
			}
			if tc.committed && slicesEqual(got, oldRecs) {
				t.Fatalf("after the commit the swap must be finished, got the old log")
			}
			for _, d := range []string{cleanerTmpDir, cleanerSwapDir} {
				if _, err := os.Stat(filepath.Join(partDir(dir, "c", 0), d)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s left after open: %v", d, err)
				}
			}
			checkLatest(t, got, oldRecs)
			if _, err := e.EnforceRetention(); err != nil {
				t.Fatal(err)
			}
			if got := readKeyed(t, e); !slicesEqual(got, newRecs) {
				t.Fatalf("after another pass:\n%v\nwant\n%v", got, newRecs)
			}
			e.Close()
		})
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkLatest checks that got holds the latest record of each key of old.
func checkLatest(t testing.TB, got, old []string) {
	t.Helper()
	latest := make(map[string]string)
	for _, l := range old {
		var off int64
		var key string
		fmt.Sscanf(l, "%d %s", &off, &key)
		latest[key] = l
	}
	have := make(map[string]bool)
	for _, l := range got {
		have[l] = true
	}
	for k, l := range latest {
		if !have[l] {
			t.Fatalf("latest record of %s lost: %s", k, l)
		}
	}
}

// FuzzSwapRecovery opens a partition whose compaction swap was stopped
// after its commit and then damaged by the fuzzer: the manifest replaced,
// the swapped log cut short or a byte flipped, the old first segment kept
// or deleted. Opening must not panic and what opens must read in
// increasing offsets; an undamaged swap is finished (as an undisturbed
// open finishes it); a damaged one is undone while the old segments are
// whole.
func FuzzSwapRecovery(f *testing.F) {
	f.Add([]byte(nil), uint16(0), uint16(0), byte(0), uint8(0))
	f.Add([]byte("0 5 10 ab cd\n"), uint16(100), uint16(7), byte(0xff), uint8(1))
	f.Add([]byte(nil), uint16(65535), uint16(300), byte(1), uint8(2))
	f.Add([]byte("garbage"), uint16(30), uint16(0), byte(0), uint8(3))
	f.Add([]byte(nil), uint16(0), uint16(12), byte(4), uint8(2))
	orig := filepath.Join(f.TempDir(), "d")
	compactFixture(f, orig, 2000)
	e := mustOpen(f, orig, quietOpts())
	oldRecs := readKeyed(f, e)
	e.Close()
	stopped := func(t testing.TB) string {
		dir := t.TempDir()
		copyTree(t, orig, dir)
		e := mustOpen(t, dir, quietOpts())
		p, _ := e.Partition("c", 0)
		p.log.(*diskLog).swapStep = func(s string) error {
			if s == "committed" {
				return errStopSwap
			}
			return nil
		}
		if _, err := e.EnforceRetention(); !errors.Is(err, errStopSwap) {
			t.Fatalf("compaction: %v", err)
		}
		e.crash()
		return dir
	}
	e = mustOpen(f, stopped(f), quietOpts())
	finished := readKeyed(f, e)
	e.Close()

	f.Fuzz(func(t *testing.T, manifest []byte, cut, flip uint16, xor byte, mode uint8) {
		dir := stopped(t)
		pdir := partDir(dir, "c", 0)
		swap := filepath.Join(pdir, cleanerSwapDir)
		bases, err := segment.List(swap)
		if err != nil || len(bases) != 1 {
			t.Fatalf("swap holds %v: %v", bases, err)
		}
		damaged := false
		if mode&1 != 0 {
			old, _ := os.ReadFile(filepath.Join(swap, swapManifest))
			if err := os.WriteFile(filepath.Join(swap, swapManifest), manifest, 0o644); err != nil {
				t.Fatal(err)
			}
			damaged = !bytes.Equal(old, manifest)
		}
		logPath := filepath.Join(swap, segment.FileName(bases[0])+segment.LogSuffix)
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if n := int(cut) % (len(b) + 1); n > 0 {
			b, damaged = b[:len(b)-n], true
		}
		if xor != 0 && len(b) > 0 {
			b[int(flip)%len(b)] ^= xor
			damaged = true
		}
		if err := os.WriteFile(logPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		oldThere := mode&2 == 0
		if !oldThere {
			// The old first segment went, as Delete renames it.
			from := filepath.Join(pdir, segment.FileName(bases[0])+segment.LogSuffix)
			if err := os.Rename(from, from+segment.DeletedSuffix); err != nil {
				t.Fatal(err)
			}
		}
		e, err := Open(dir, quietOpts())
		if err != nil {
			if !damaged {
				t.Fatalf("an undamaged swap must open: %v", err)
			}
			return // damage without the old data: a clear error is fine
		}
		defer e.Close()
		got := readKeyed(t, e) // fails on a read error or offsets going back
		switch {
		case !damaged && !slicesEqual(got, finished):
			t.Fatalf("an undamaged swap must be finished:\n%v\nwant\n%v", got, finished)
		case damaged && oldThere && !slicesEqual(got, oldRecs):
			t.Fatalf("a damaged swap with the old segments whole must be undone:\n%v\nwant\n%v", got, oldRecs)
		}
	})
}

// FuzzCleanerCheckpoint runs compaction with whatever bytes the cleaner
// checkpoint holds (it is a hint written without fsync): no panic, no
// error, and every key keeps its latest value.
func FuzzCleanerCheckpoint(f *testing.F) {
	f.Add([]byte("0 -1\n"))
	f.Add([]byte("57 1700000000000\n"))
	f.Add([]byte("999999 -1\n"))
	f.Add([]byte("-5 -5\n"))
	f.Add([]byte("12"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ckpt []byte) {
		opts := quietOpts()
		opts.Store = NewMemoryStore()
		e := mustOpen(t, t.TempDir(), opts)
		defer e.Close()
		p := compactTopic(t, e, 300)
		want := map[string]string{}
		for i := range 60 {
			k, v := "k"+strconv.Itoa(i%7), "v"+strconv.Itoa(i)
			appendKV(t, p, 0, k, v)
			want[k] = v
		}
		if err := p.log.SaveState(cleanerCheckpoint, ckpt, false); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			compactNow(t, e)
		}
		got, _ := latestOf(t, p)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("checkpoint %q: %s = %q, want %q", ckpt, k, got[k], v)
			}
		}
	})
}
