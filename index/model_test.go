package index

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestModel runs random appends, truncations, resets, lookups and reopens
// (clean, crashed and read-only) against a sorted-slice model.
func TestModel(t *testing.T) {
	for _, k := range kinds {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/seed%d", k.name, seed), func(t *testing.T) {
				runModel(t, k, seed)
			})
		}
	}
}

func runModel(t *testing.T, k kind, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x1d8e4))
	capacity := 1 + rng.IntN(1500) // spans the hot section size
	maxBytes := capacity*k.size + rng.IntN(k.size)
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	x, err := k.open(path, base, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { x.Close() }()
	var model []pair

	// next returns a valid next entry for the model.
	next := func() pair {
		if len(model) == 0 {
			if k.size == OffsetEntrySize {
				return pair{base + rng.Int64N(3), rng.Int64N(3)}
			}
			return pair{rng.Int64N(3) - 1, base + rng.Int64N(3)}
		}
		l := model[len(model)-1]
		return pair{l.a + 1 + rng.Int64N(40), l.b + 1 + rng.Int64N(40)}
	}
	reopen := func(p string, maxBytes int) {
		t.Helper()
		var err error
		if x, err = k.open(p, base, maxBytes); err != nil {
			t.Fatal(err)
		}
	}
	for step := range 3000 {
		switch r := rng.IntN(100); {
		case r < 55:
			p := next()
			want := error(nil)
			if len(model) > 0 && rng.IntN(8) == 0 {
				// Break the order of one field or both.
				l := model[len(model)-1]
				switch rng.IntN(3) {
				case 0:
					p.a = l.a - rng.Int64N(3)
				case 1:
					p.b = max(0, l.b-rng.Int64N(3)) // positions are uint32
				default:
					p = l
				}
				want = ErrOutOfOrder
			} else if len(model) == capacity {
				want = ErrFull
			}
			err := x.add(p)
			if !errors.Is(err, want) || (want == nil) != (err == nil) {
				t.Fatalf("step %d: append %v to %d entries: %v, want %v", step, p, len(model), err, want)
			}
			if err == nil {
				model = append(model, p)
			}
		case r < 62:
			var off int64 = base - 2
			if len(model) > 0 {
				off = base - 2 + rng.Int64N(k.offsetOf(model[len(model)-1])-base+5)
			}
			if err := x.TruncateTo(off); err != nil {
				t.Fatal(err)
			}
			keep := 0
			for keep < len(model) && k.offsetOf(model[keep]) < off {
				keep++
			}
			model = model[:keep]
		case r < 63:
			if err := x.Reset(); err != nil {
				t.Fatal(err)
			}
			model = model[:0]
		case r < 67: // clean close and reopen
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if got := fileSize(t, path); got != int64(len(model)*k.size) {
				t.Fatalf("step %d: closed size %d, want %d", step, got, len(model)*k.size)
			}
			reopen(path, maxBytes)
		case r < 71: // crash: reopen a copy of the file as it is now
			crash := crashCopy(t, path)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(crash, path); err != nil {
				t.Fatal(err)
			}
			if len(model) == 1 && capacity > 1 && isZeroEntry(k, model[0]) {
				model = model[:0] // the documented ambiguous case
			}
			reopen(path, maxBytes)
		case r < 73: // read-only view of a cleanly closed file
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			reopen(path, 0)
			check(t, step, x, model)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			reopen(path, maxBytes)
		default:
			var target int64
			if len(model) > 0 && rng.IntN(4) != 0 {
				target = model[rng.IntN(len(model))].a + rng.Int64N(3) - 1
			} else {
				target = rng.Int64N(1<<16) - 10
			}
			got, ok := x.find(target)
			want, wok := floorScan(model, target)
			if got != want || ok != wok {
				t.Fatalf("step %d: Lookup(%d) = %v, %v, want %v, %v", step, target, got, ok, want, wok)
			}
		}
		if x.Len() != len(model) {
			t.Fatalf("step %d: Len %d, want %d", step, x.Len(), len(model))
		}
		if x.Full() != (len(model) == capacity) {
			t.Fatalf("step %d: Full %v with %d of %d", step, x.Full(), len(model), capacity)
		}
	}
	check(t, -1, x, model)
}

// isZeroEntry reports whether p is stored as an all-zero entry.
func isZeroEntry(k kind, p pair) bool {
	if k.size == OffsetEntrySize {
		return p == pair{base, 0}
	}
	return p == pair{0, base}
}

// check compares every entry and Last with the model.
func check(t *testing.T, step int, x idx, model []pair) {
	t.Helper()
	got := entriesOf(x)
	if len(got) != len(model) {
		t.Fatalf("step %d: %d entries, want %d", step, len(got), len(model))
	}
	for i := range got {
		if got[i] != model[i] {
			t.Fatalf("step %d: entry %d = %v, want %v", step, i, got[i], model[i])
		}
		if f, ok := x.find(got[i].a); !ok || f != got[i] {
			t.Fatalf("step %d: Lookup(%d) = %v, %v", step, got[i].a, f, ok)
		}
	}
	l, ok := x.last()
	if ok != (len(model) > 0) || (ok && l != model[len(model)-1]) {
		t.Fatalf("step %d: Last = %v, %v", step, l, ok)
	}
}
