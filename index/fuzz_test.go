package index

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen opens arbitrary file contents as both index types, read-only and
// writable. Opening must not panic; when it succeeds, Lookup must agree with
// a linear scan, the entries must be strictly increasing, both modes must
// agree on the entries, and a writable index must close to a file that
// reopens with the same entries.
func FuzzOpen(f *testing.F) {
	for _, k := range kinds {
		f.Add(raw(k), uint16(0), uint32(0))
		f.Add(raw(k, [2]int64{0, 0}), uint16(100), uint32(0))
		f.Add(raw(k, [2]int64{0, 0}, [2]int64{0, 0}), uint16(100), uint32(5))
		f.Add(raw(k, [2]int64{1, 5}, [2]int64{2, 9}, [2]int64{30, 100}), uint16(64), uint32(1000))
		f.Add(raw(k, [2]int64{0, 0}, [2]int64{1, 5}, [2]int64{0, 0}), uint16(3), uint32(7))
		f.Add(raw(k, [2]int64{1, 5}, [2]int64{0, 0}, [2]int64{3, 9}), uint16(200), uint32(0))
		f.Add(raw(k, [2]int64{-9, 1}, [2]int64{-8, 2}, [2]int64{math.MaxInt64, 3}), uint16(40), uint32(math.MaxUint32))
		f.Add(append(raw(k, [2]int64{1, 5}), 1, 2, 3), uint16(24), uint32(0))
	}
	dir := f.TempDir() // one per fuzzing process; its runs are sequential
	f.Fuzz(func(t *testing.T, data []byte, maxBytes uint16, b uint32) {
		base := int64(b)
		for _, k := range kinds {
			path := filepath.Join(dir, k.name)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, rerr := k.open(path, base, 0)
			var ro []pair
			if rerr == nil {
				ro = entriesOf(r)
				checkScan(t, k, r, base)
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(rerr, ErrCorrupt) {
				t.Fatalf("%s read-only: unexpected error %v", k.name, rerr)
			}

			w, werr := k.open(path, base, int(maxBytes)+1)
			if (rerr == nil) != (werr == nil) {
				t.Fatalf("%s: read-only open: %v, writable open: %v", k.name, rerr, werr)
			}
			if werr != nil {
				if !errors.Is(werr, ErrCorrupt) {
					t.Fatalf("%s writable: unexpected error %v", k.name, werr)
				}
				continue
			}
			got := entriesOf(w)
			if len(got) != len(ro) {
				t.Fatalf("%s: writable open has %d entries, read-only %d", k.name, len(got), len(ro))
			}
			for i := range got {
				if got[i] != ro[i] {
					t.Fatalf("%s: entry %d: writable %v, read-only %v", k.name, i, got[i], ro[i])
				}
			}
			checkScan(t, k, w, base)
			// One more in-order entry fits unless the index is full.
			if l, ok := w.last(); ok && !w.Full() && l.a < math.MaxInt64 && l.b < math.MaxUint32 &&
				k.offsetOf(l) < base+math.MaxUint32 {
				if err := w.add(pair{l.a + 1, l.b + 1}); err != nil {
					t.Fatalf("%s: append after %v: %v", k.name, l, err)
				}
				got = append(got, pair{l.a + 1, l.b + 1})
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			again, err := k.open(path, base, 0)
			if err != nil {
				t.Fatalf("%s: reopen after Close: %v", k.name, err)
			}
			if n := again.Len(); n != len(got) {
				t.Fatalf("%s: reopened with %d entries, want %d", k.name, n, len(got))
			}
			again.Close()
		}
	})
}

// checkScan checks that x's entries are strictly increasing in both fields
// and that Lookup agrees with a linear scan around every key.
func checkScan(t *testing.T, k kind, x idx, base int64) {
	t.Helper()
	entries := entriesOf(x)
	for i := 1; i < len(entries); i++ {
		if entries[i].a <= entries[i-1].a || entries[i].b <= entries[i-1].b {
			t.Fatalf("%s: entry %d %v does not follow %v", k.name, i, entries[i], entries[i-1])
		}
	}
	targets := []int64{math.MinInt64, math.MaxInt64, base - 1, base, base + math.MaxUint32 + 1}
	// Every key and its neighbours in small indexes; in large ones a sample
	// that includes both ends and the hot section's boundary, so the linear
	// scans stay cheap.
	step := max(1, len(entries)/64)
	h := len(entries) - hotBytes/k.size
	for i, e := range entries {
		if i%step == 0 || i < 3 || i >= len(entries)-3 || (i >= h-2 && i <= h+2) {
			targets = append(targets, e.a, e.a-1, e.a+1)
		}
	}
	for _, target := range targets {
		got, ok := x.find(target)
		want, wok := floorScan(entries, target)
		if got != want || ok != wok {
			t.Fatalf("%s: Lookup(%d) = %v, %v, scan %v, %v", k.name, target, got, ok, want, wok)
		}
	}
	if l, ok := x.last(); ok != (len(entries) > 0) || (ok && l != entries[len(entries)-1]) {
		t.Fatalf("%s: Last = %v, %v", k.name, l, ok)
	}
}
