package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const base = 1000

func TestLookup(t *testing.T) {
	const n = 5000
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			x, _ := fill(t, k, base, n, n*k.size)
			defer x.Close()
			h := n - hotBytes/k.size // first entry of the hot section
			e := func(i int) int64 { return k.entry(base, i).a }
			tests := []struct {
				name   string
				target int64
				want   int    // index of the expected entry, -1 for none
				only   string // run for this kind only, if set
			}{
				{"min int64", math.MinInt64, -1, ""},
				{"before first", e(0) - 1, -1, ""},
				{"first", e(0), 0, ""},
				{"between first and second", e(0) + 3, 0, ""},
				{"cold exact", e(2000), 2000, ""},
				{"cold between", e(2000) + 6, 2000, ""},
				{"before hot boundary", e(h) - 1, h - 1, ""},
				{"last cold entry", e(h - 1), h - 1, ""},
				{"hot boundary", e(h), h, ""},
				{"after hot boundary", e(h) + 1, h, ""},
				{"hot exact", e(n - 10), n - 10, ""},
				{"last", e(n - 1), n - 1, ""},
				{"after last", e(n-1) + 1, n - 1, ""},
				{"max int64", math.MaxInt64, n - 1, ""},
				{"below base", base - 1, -1, "offset"},
				{"base", base, -1, "offset"},
				{"beyond relative range", base + math.MaxUint32 + 1, n - 1, "offset"},
			}
			for _, tt := range tests {
				if tt.only != "" && tt.only != k.name {
					continue
				}
				got, ok := x.find(tt.target)
				if tt.want < 0 {
					if ok {
						t.Errorf("%s: Lookup(%d) = %v, want none", tt.name, tt.target, got)
					}
					continue
				}
				if want := k.entry(base, tt.want); !ok || got != want {
					t.Errorf("%s: Lookup(%d) = %v, %v, want %v (entry %d)", tt.name, tt.target, got, ok, want, tt.want)
				}
			}
		})
	}
}

// TestLookupSizes checks every key and its neighbours against a linear scan
// for indexes smaller than, equal to and larger than the hot section.
func TestLookupSizes(t *testing.T) {
	for _, k := range kinds {
		hot := hotBytes / k.size
		for _, n := range []int{0, 1, 2, 3, hot - 1, hot, hot + 1, 2*hot + 3} {
			x, _ := fill(t, k, base, n, (n+1)*k.size)
			want := entriesOf(x)
			for i := range n {
				e := k.entry(base, i)
				if want[i] != e {
					t.Fatalf("%s n=%d: entry %d = %v, want %v", k.name, n, i, want[i], e)
				}
				for d := int64(-1); d <= 1; d++ {
					got, ok := x.find(e.a + d)
					w, wok := floorScan(want, e.a+d)
					if got != w || ok != wok {
						t.Fatalf("%s n=%d: Lookup(%d) = %v, %v, want %v, %v", k.name, n, e.a+d, got, ok, w, wok)
					}
				}
			}
			if _, ok := x.find(math.MinInt64); ok {
				t.Errorf("%s n=%d: found an entry below every key", k.name, n)
			}
			x.Close()
		}
	}
}

func TestAppendOrder(t *testing.T) {
	type step struct {
		p    pair
		want error
	}
	tests := []struct {
		name  string
		kind  int
		steps []step
	}{
		{"offset below base", 0, []step{{pair{base - 1, 0}, ErrOutOfOrder}}},
		{"offset at base, position 0", 0, []step{{pair{base, 0}, nil}}},
		{"offset at relative max", 0, []step{{pair{base + math.MaxUint32, 7}, nil}}},
		{"relative offset overflow", 0, []step{{pair{base + math.MaxUint32 + 1, 7}, ErrOutOfOrder}}},
		{"offset overflow int64", 0, []step{{pair{math.MaxInt64, 7}, ErrOutOfOrder}}},
		{"equal offset", 0, []step{{pair{base + 5, 10}, nil}, {pair{base + 5, 20}, ErrOutOfOrder}}},
		{"smaller offset", 0, []step{{pair{base + 5, 10}, nil}, {pair{base + 4, 20}, ErrOutOfOrder}}},
		{"equal position", 0, []step{{pair{base + 5, 10}, nil}, {pair{base + 6, 10}, ErrOutOfOrder}}},
		{"smaller position", 0, []step{{pair{base + 5, 10}, nil}, {pair{base + 6, 9}, ErrOutOfOrder}}},
		{"offset increasing", 0, []step{{pair{base + 5, 10}, nil}, {pair{base + 6, 11}, nil}, {pair{base + 100, 4000}, nil}}},
		{"time offset below base", 1, []step{{pair{10, base - 1}, ErrOutOfOrder}}},
		{"time relative overflow", 1, []step{{pair{10, base + math.MaxUint32 + 1}, ErrOutOfOrder}}},
		{"time zero", 1, []step{{pair{0, base}, nil}}},
		{"time negative then positive", 1, []step{{pair{-5, base}, nil}, {pair{5, base + 1}, nil}}},
		{"equal timestamp", 1, []step{{pair{10, base + 1}, nil}, {pair{10, base + 2}, ErrOutOfOrder}}},
		{"smaller timestamp", 1, []step{{pair{10, base + 1}, nil}, {pair{9, base + 2}, ErrOutOfOrder}}},
		{"time equal offset", 1, []step{{pair{10, base + 1}, nil}, {pair{11, base + 1}, ErrOutOfOrder}}},
		{"time smaller offset", 1, []step{{pair{10, base + 1}, nil}, {pair{11, base}, ErrOutOfOrder}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := kinds[tt.kind]
			x, _ := fill(t, k, base, 0, 64*k.size)
			defer x.Close()
			var model []pair
			for i, s := range tt.steps {
				err := x.add(s.p)
				if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
					t.Fatalf("step %d: append %v = %v, want %v", i, s.p, err, s.want)
				}
				if err == nil {
					model = append(model, s.p)
				}
			}
			if got := entriesOf(x); len(got) != len(model) || (len(got) > 0 && got[len(got)-1] != model[len(model)-1]) {
				t.Fatalf("entries %v, want %v", got, model)
			}
		})
	}
}

func TestFull(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			x, path := fill(t, k, base, 0, 3*k.size+k.size-1) // rounds down to 3 entries
			if got := fileSize(t, path); got != int64(3*k.size) {
				t.Fatalf("preallocated size %d, want %d", got, 3*k.size)
			}
			for i := range 3 {
				if x.Full() {
					t.Fatalf("full after %d entries", i)
				}
				if err := x.add(k.entry(base, i)); err != nil {
					t.Fatal(err)
				}
			}
			if !x.Full() {
				t.Fatal("not full after 3 entries")
			}
			if err := x.add(k.entry(base, 3)); !errors.Is(err, ErrFull) {
				t.Fatalf("append to full index: %v, want ErrFull", err)
			}
			if err := x.TruncateTo(x.offsetOf(k.entry(base, 2))); err != nil {
				t.Fatal(err)
			}
			if x.Full() || x.Len() != 2 {
				t.Fatalf("after truncate: Full %v Len %d", x.Full(), x.Len())
			}
			if err := x.Trim(); err != nil {
				t.Fatal(err)
			}
			if got := fileSize(t, path); got != int64(2*k.size) {
				t.Fatalf("trimmed size %d, want %d", got, 2*k.size)
			}
			if !x.Full() {
				t.Fatal("trimmed index not full")
			}
			if err := x.add(k.entry(base, 2)); !errors.Is(err, ErrFull) {
				t.Fatalf("append after Trim: %v, want ErrFull", err)
			}
			if got, ok := x.find(k.entry(base, 1).a + 1); !ok || got != k.entry(base, 1) {
				t.Fatalf("Lookup after Trim = %v, %v", got, ok)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTinyAndEmpty(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			// maxBytes below one entry: writable, zero capacity, nil mapping.
			x, path := fill(t, k, base, 0, k.size-1)
			if !x.Full() {
				t.Error("zero-capacity index not full")
			}
			if err := x.add(k.entry(base, 0)); !errors.Is(err, ErrFull) {
				t.Errorf("append: %v, want ErrFull", err)
			}
			if _, ok := x.find(math.MaxInt64); ok {
				t.Error("found an entry in an empty index")
			}
			if err := x.Sync(); err != nil {
				t.Error(err)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			// The empty file opens read-only with a nil mapping.
			r, err := k.open(path, base, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != 0 || !r.Full() {
				t.Errorf("empty read-only: Len %d Full %v", r.Len(), r.Full())
			}
			if _, ok := r.last(); ok {
				t.Error("Last found an entry in an empty index")
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			missing := filepath.Join(dir, "missing")
			if _, err := k.open(missing, base, 0); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("read-only open of a missing file: %v, want fs.ErrNotExist", err)
			}
			if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
				t.Error("read-only open created the file")
			}
			if _, err := k.open(filepath.Join(dir, "neg"), -1, 100); !errors.Is(err, ErrInvalid) {
				t.Errorf("negative base: %v, want ErrInvalid", err)
			}
			if _, err := k.open(dir, base, 0); err == nil {
				t.Error("opened a directory")
			}
		})
	}
}

// raw builds an index file's bytes from (first field, second field) pairs.
func raw(k kind, entries ...[2]int64) []byte {
	var b []byte
	for _, e := range entries {
		if k.size == OffsetEntrySize {
			b = binary.BigEndian.AppendUint32(b, uint32(e[0]))
			b = binary.BigEndian.AppendUint32(b, uint32(e[1]))
		} else {
			b = binary.BigEndian.AppendUint64(b, uint64(e[0]))
			b = binary.BigEndian.AppendUint32(b, uint32(e[1]))
		}
	}
	return b
}

func TestOpenContents(t *testing.T) {
	z := [2]int64{0, 0}
	tests := []struct {
		name    string
		entries [][2]int64 // raw fields; for the time index (timestamp, relative offset)
		extra   int        // bytes appended after the entries
		want    int        // live entries, or -1 for ErrCorrupt
	}{
		{"empty", nil, 0, 0},
		{"one zero entry (trimmed)", [][2]int64{z}, 0, 1},
		{"zero entries only (preallocated)", [][2]int64{z, z, z, z}, 0, 0},
		{"zero first entry then data", [][2]int64{z, {1, 1}, {2, 2}}, 0, 3},
		{"zero first entry then data then zeros", [][2]int64{z, {1, 1}, z, z}, 0, 2},
		{"trimmed", [][2]int64{{1, 5}, {2, 9}, {30, 100}}, 0, 3},
		{"crash tail of zeros", [][2]int64{{1, 5}, {2, 9}, z, z, z}, 0, 2},
		{"odd size", [][2]int64{{1, 5}, {2, 9}}, 3, -1},
		{"one byte", nil, 1, -1},
		{"decreasing", [][2]int64{{1, 5}, {3, 9}, {2, 10}}, 0, -1},
		{"equal first field", [][2]int64{{1, 5}, {1, 9}}, 0, -1},
		{"equal second field", [][2]int64{{1, 5}, {2, 5}}, 0, -1},
		{"second field decreasing", [][2]int64{{1, 5}, {2, 4}}, 0, -1},
		{"data after zeros", [][2]int64{{1, 5}, z, {3, 9}}, 0, -1},
		{"data after zero first entry", [][2]int64{z, z, {3, 9}}, 0, -1},
		{"zero first entry, then entry not ordered", [][2]int64{z, {0, 9}}, 0, -1},
	}
	for _, k := range kinds {
		for _, tt := range tests {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				b := append(raw(k, tt.entries...), make([]byte, tt.extra)...)
				path := filepath.Join(t.TempDir(), "x")
				for _, maxBytes := range []int{0, 100 * k.size} {
					if err := os.WriteFile(path, b, 0o644); err != nil {
						t.Fatal(err)
					}
					x, err := k.open(path, base, maxBytes)
					if tt.want < 0 {
						if !errors.Is(err, ErrCorrupt) {
							t.Fatalf("maxBytes %d: open: %v, want ErrCorrupt", maxBytes, err)
						}
						if got := fileSize(t, path); got != int64(len(b)) {
							t.Fatalf("failed open resized the file to %d", got)
						}
						continue
					}
					if err != nil {
						t.Fatalf("maxBytes %d: %v", maxBytes, err)
					}
					if x.Len() != tt.want {
						t.Errorf("maxBytes %d: Len %d, want %d", maxBytes, x.Len(), tt.want)
					}
					if maxBytes > 0 {
						if got := fileSize(t, path); got != int64(maxBytes) {
							t.Errorf("preallocated to %d, want %d", got, maxBytes)
						}
					}
					if err := x.Close(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

func TestReopen(t *testing.T) {
	const n, capacity = 700, 1000
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			x, path := fill(t, k, base, n, capacity*k.size)
			want := entriesOf(x)
			crash := crashCopy(t, path) // preallocated size, trailing zeros
			if got := fileSize(t, crash); got != capacity*int64(k.size) {
				t.Fatalf("crash copy size %d", got)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if got := fileSize(t, path); got != int64(n*k.size) {
				t.Fatalf("closed size %d, want %d", got, n*k.size)
			}
			for _, p := range []string{path, crash} {
				for _, maxBytes := range []int{0, capacity * k.size} {
					r, err := k.open(p, base, maxBytes)
					if err != nil {
						t.Fatal(err)
					}
					got := entriesOf(r)
					if len(got) != len(want) {
						t.Fatalf("%s maxBytes %d: Len %d, want %d", filepath.Base(p), maxBytes, len(got), len(want))
					}
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("entry %d = %v, want %v", i, got[i], want[i])
						}
					}
					if l, ok := r.last(); !ok || l != want[n-1] {
						t.Fatalf("Last = %v, %v", l, ok)
					}
					if maxBytes > 0 {
						// Writable: appends continue where the file left off.
						if err := r.add(k.entry(base, n)); err != nil {
							t.Fatal(err)
						}
						if err := r.TruncateTo(r.offsetOf(k.entry(base, n))); err != nil {
							t.Fatal(err)
						}
					}
					if err := r.Close(); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestReopenSmallerMax keeps live entries when maxBytes is below their size.
func TestReopenSmallerMax(t *testing.T) {
	for _, k := range kinds {
		x, path := fill(t, k, base, 50, 100*k.size)
		x.Close()
		r, err := k.open(path, base, 10*k.size)
		if err != nil {
			t.Fatal(err)
		}
		if r.Len() != 50 || !r.Full() || fileSize(t, path) != int64(50*k.size) {
			t.Fatalf("%s: Len %d Full %v size %d", k.name, r.Len(), r.Full(), fileSize(t, path))
		}
		if err := r.add(k.entry(base, 50)); !errors.Is(err, ErrFull) {
			t.Fatalf("%s: append: %v, want ErrFull", k.name, err)
		}
		r.Close()
	}
}

// TestCrashSingleZeroEntry pins down the one ambiguous case: a lone all-zero
// first entry in a preallocated file is not live, in a trimmed file it is.
func TestCrashSingleZeroEntry(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			x, path := fill(t, k, base, 0, 10*k.size)
			zero := pair{0, base} // time: timestamp 0 at the base offset
			if k.name == "offset" {
				zero = pair{base, 0}
			}
			if err := x.add(zero); err != nil {
				t.Fatal(err)
			}
			crash := crashCopy(t, path)
			x.Close()
			for p, want := range map[string]int{path: 1, crash: 0} {
				r, err := k.open(p, base, 0)
				if err != nil {
					t.Fatal(err)
				}
				if r.Len() != want {
					t.Errorf("%s: Len %d, want %d", filepath.Base(p), r.Len(), want)
				}
				r.Close()
			}
		})
	}
}

func TestTruncateTo(t *testing.T) {
	const n = 2000
	for _, k := range kinds {
		e := func(i int) int64 { return k.offsetOf(k.entry(base, i)) }
		tests := []struct {
			name   string
			offset int64
			keep   int
		}{
			{"min int64", math.MinInt64, 0},
			{"below base", base - 1, 0},
			{"base", base, 0},
			{"first entry", e(0), 0},
			{"after first entry", e(0) + 1, 1},
			{"exact", e(1500), 1500},
			{"between", e(1500) + 3, 1501},
			{"last entry", e(n - 1), n - 1},
			{"after last", e(n-1) + 1, n},
			{"beyond relative range", base + math.MaxUint32 + 1, n},
			{"max int64", math.MaxInt64, n},
		}
		for _, tt := range tests {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				x, path := fill(t, k, base, n, 2*n*k.size)
				defer x.Close()
				if err := x.TruncateTo(tt.offset); err != nil {
					t.Fatal(err)
				}
				if x.Len() != tt.keep {
					t.Fatalf("Len %d, want %d", x.Len(), tt.keep)
				}
				l, ok := x.last()
				if ok != (tt.keep > 0) || (ok && l != k.entry(base, tt.keep-1)) {
					t.Fatalf("Last = %v, %v", l, ok)
				}
				// Dropped entries are zeroed: a crash now reopens to the same entries.
				r, err := k.open(crashCopy(t, path), base, 0)
				if err != nil {
					t.Fatal(err)
				}
				if r.Len() != tt.keep {
					t.Fatalf("crash reopen: Len %d, want %d", r.Len(), tt.keep)
				}
				r.Close()
				// Appending resumes after the kept entries.
				if err := x.add(k.entry(base, tt.keep)); err != nil && tt.keep < n {
					t.Fatalf("append after truncate: %v", err)
				}
			})
		}
	}
}

func TestReset(t *testing.T) {
	for _, k := range kinds {
		x, path := fill(t, k, base, 100, 100*k.size)
		if err := x.Reset(); err != nil {
			t.Fatal(err)
		}
		if x.Len() != 0 || x.Full() {
			t.Fatalf("%s: after Reset Len %d Full %v", k.name, x.Len(), x.Full())
		}
		r, err := k.open(crashCopy(t, path), base, 0)
		if err != nil || r.Len() != 0 {
			t.Fatalf("%s: crash reopen after Reset: %v, Len %v", k.name, err, r)
		}
		r.Close()
		if err := x.add(k.entry(base, 0)); err != nil {
			t.Fatal(err)
		}
		x.Close()
	}
}

func TestClosed(t *testing.T) {
	for _, k := range kinds {
		x, _ := fill(t, k, base, 10, 100*k.size)
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Append":     x.add(k.entry(base, 10)),
			"TruncateTo": x.TruncateTo(base),
			"Reset":      x.Reset(),
			"Sync":       x.Sync(),
			"Trim":       x.Trim(),
		} {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s: %s after Close: %v, want ErrClosed", k.name, name, err)
			}
		}
		if err := x.Close(); err != nil {
			t.Errorf("%s: second Close: %v", k.name, err)
		}
		if _, ok := x.find(math.MaxInt64); ok || x.Len() != 0 || !x.Full() {
			t.Errorf("%s: closed index still answers", k.name)
		}
		if _, ok := x.last(); ok {
			t.Errorf("%s: Last after Close", k.name)
		}
	}
}

func TestReadOnly(t *testing.T) {
	for _, k := range kinds {
		x, path := fill(t, k, base, 10, 100*k.size)
		x.Close()
		r, err := k.open(path, base, 0)
		if err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Append":     r.add(k.entry(base, 10)),
			"TruncateTo": r.TruncateTo(base),
			"Reset":      r.Reset(),
		} {
			if !errors.Is(err, ErrReadOnly) {
				t.Errorf("%s: %s: %v, want ErrReadOnly", k.name, name, err)
			}
		}
		if err := r.Sync(); err != nil {
			t.Error(err)
		}
		if err := r.Trim(); err != nil {
			t.Error(err)
		}
		if !r.Full() || r.Len() != 10 {
			t.Errorf("%s: read-only Full %v Len %d", k.name, r.Full(), r.Len())
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, path); got != int64(10*k.size) {
			t.Errorf("%s: read-only open changed the size to %d", k.name, got)
		}
	}
}

func TestSync(t *testing.T) {
	for _, k := range kinds {
		x, _ := fill(t, k, base, 10, 100*k.size)
		if err := x.Sync(); err != nil {
			t.Fatal(err)
		}
		x.Close()
	}
}

// TestGrowth checks that a writable index starts small, doubles as it fills
// (lookups stay right across remaps) and stops at its limit.
func TestGrowth(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			limit := 1 << 20
			limit -= limit % k.size
			n := limit / k.size
			x, path := fill(t, k, base, 0, limit)
			defer x.Close()
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != initialBytes-initialBytes%int64(k.size) {
				t.Fatalf("new index is %d bytes, want %d", st.Size(), initialBytes)
			}
			for i := range n {
				if err := x.add(k.entry(base, i)); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				if i%997 == 0 || i == n-1 {
					want := k.entry(base, i/2)
					if got, ok := x.find(want.a); !ok || got != want {
						t.Fatalf("after %d entries: find = %v, %v; want %v", i+1, got, ok, want)
					}
				}
			}
			if err := x.add(k.entry(base, n)); !errors.Is(err, ErrFull) {
				t.Fatalf("append past the limit: %v", err)
			}
			if st, _ := os.Stat(path); st.Size() != int64(limit) {
				t.Fatalf("full index is %d bytes, want %d", st.Size(), limit)
			}
		})
	}
}

func TestNoAllocs(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenOffset(filepath.Join(dir, "o"), base, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	tx, err := OpenTime(filepath.Join(dir, "t"), base, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var i int64
	if a := testing.AllocsPerRun(5000, func() {
		i++
		if err := o.Append(base+i, uint32(i)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Append(i, base+i); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("Append allocates %v times", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		if _, ok := o.Lookup(base + 77); !ok {
			t.Fatal("offset lookup failed")
		}
		if _, ok := tx.Lookup(4000); !ok {
			t.Fatal("time lookup failed")
		}
	}); a != 0 {
		t.Errorf("Lookup allocates %v times", a)
	}
}

// TestNoDescriptorHeld checks that an open index holds no file descriptor:
// engines with many partitions depend on it.
func TestNoDescriptorHeld(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	dir := t.TempDir()
	before := count()
	var xs []*OffsetIndex
	for i := range 20 {
		x, err := OpenOffset(filepath.Join(dir, fmt.Sprintf("%d.index", i)), 0, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Append(5, 10); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	if after := count(); after > before+2 {
		t.Fatalf("20 open indexes hold %d descriptors", after-before)
	}
	for _, x := range xs {
		if err := x.Trim(); err != nil {
			t.Fatal(err)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
