package segment

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// spec describes one batch of a test log.
type spec struct {
	records   int
	valueSize int
	ts        int64 // timestamp of the first record; record i has ts+i
	codec     int8
}

// makeBatch builds the batch sp describes at base offset off. Values are
// pseudo-random (seeded by seed) so compressed sizes vary.
func makeBatch(t testing.TB, off int64, sp spec, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, uint64(off)))
	b := record.NewBuilder(record.BuilderOptions{Codec: sp.codec})
	for i := range sp.records {
		v := make([]byte, sp.valueSize)
		for j := range v {
			v[j] = byte('a' + r.IntN(4)) // compressible, not trivially
		}
		b.Add(record.Record{Key: []byte(fmt.Sprint(i)), Value: v, Timestamp: sp.ts + int64(i)})
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(out, off)
	return out
}

// appendSpecs appends one batch per spec at s's next offset and returns
// the batches as stored.
func appendSpecs(t testing.TB, s *Segment, specs []spec, seed uint64) [][]byte {
	t.Helper()
	var out [][]byte
	for _, sp := range specs {
		b := makeBatch(t, s.NextOffset(), sp, seed)
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

// testSpecs is a log of batches of different sizes, record counts and
// codecs, whose timestamps go up and down (so only some batches get time
// index entries).
var testSpecs = []spec{
	{1, 10, 100, codec.None},
	{3, 200, 90, codec.None},
	{5, 40, 150, codec.Gzip},
	{1, 700, 150, codec.None},
	{2, 300, 120, codec.Zstd},
	{4, 10, 200, codec.LZ4},
	{1, 1, 50, codec.None},
	{7, 90, 210, codec.Snappy},
	{2, 500, 211, codec.None},
	{3, 60, 205, codec.Gzip},
	{1, 1200, 400, codec.None},
	{6, 30, 390, codec.Zstd},
}

// tsProbes are the timestamps OffsetForTimestamp is asked about.
var tsProbes = []int64{math.MinInt64, -1, 0, 49, 50, 90, 100, 101, 120, 150, 152, 154, 155, 199, 200, 203, 210, 211, 212, 216, 217, 400, 401, 405, 406, 1000}

// transcript describes everything a reader can observe of s, for
// comparing two segments.
func transcript(t testing.TB, s *Segment) string {
	t.Helper()
	if !s.Acquire() {
		t.Fatal("acquire")
	}
	defer s.Release()
	var w strings.Builder
	ts, _ := s.LargestTimestamp()
	next := s.NextOffset()
	fmt.Fprintf(&w, "base %d next %d size %d maxts %d\n", s.BaseOffset(), next, s.Size(), ts)
	for off := s.BaseOffset() - 1; off <= next+1; off++ {
		pos, h, err := s.Locate(off)
		fmt.Fprintf(&w, "%d: locate %d %d %v;", off, pos, h.BaseOffset, errClass(err))
		v, err := s.View(off, 1)
		fmt.Fprintf(&w, " view %d %08x %v;", len(v), crc32.ChecksumIEEE(v), errClass(err))
		v, err = s.View(off, 1<<30)
		fmt.Fprintf(&w, " viewall %d %08x %v;", len(v), crc32.ChecksumIEEE(v), errClass(err))
		r, err := s.Read(off, 1500)
		fmt.Fprintf(&w, " read %d %d %d %v", r.Pos, r.Len, r.FirstOffset, errClass(err))
		if err == nil {
			b := make([]byte, r.Len)
			if _, err := r.File.ReadAt(b, r.Pos); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&w, " %08x", crc32.ChecksumIEEE(b))
		}
		for _, end := range []int64{off, off + 2, next - 1} {
			v, err := s.ViewTo(off, 1<<30, end)
			fmt.Fprintf(&w, "; viewto(%d) %d %08x %v", end, len(v), crc32.ChecksumIEEE(v), errClass(err))
			r, err := s.ReadTo(off, 1<<30, end)
			fmt.Fprintf(&w, " readto %d %d %v", r.Pos, r.Len, errClass(err))
		}
		w.WriteString("\n")
	}
	for _, p := range tsProbes {
		off, err := s.OffsetForTimestamp(p)
		fmt.Fprintf(&w, "ts %d: %d %v\n", p, off, errClass(err))
	}
	return w.String()
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrOutOfRange):
		return "range"
	}
	return "ERR(" + err.Error() + ")"
}

// indexState describes the writer's index state of s.
func indexState(s *Segment) string {
	s.idx.Lock()
	defer s.idx.Unlock()
	var w strings.Builder
	fmt.Fprintf(&w, "since %d writable %v", s.sinceIndex, s.idx.writable)
	if s.idx.offsets != nil {
		lo, okO := s.idx.offsets.Last()
		lt, okT := s.idx.times.Last()
		fmt.Fprintf(&w, " offsets %d %v %v times %d %v %v", s.idx.offsets.Len(), lo, okO, s.idx.times.Len(), lt, okT)
	}
	return w.String()
}

// buildSegment creates a segment at base in dir holding batches for specs.
func buildSegment(t testing.TB, dir string, base int64, cfg Config, specs []spec, seed uint64) (*Segment, [][]byte) {
	t.Helper()
	s, err := Create(dir, base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, appendSpecs(t, s, specs, seed)
}

// keptSpecs returns the prefix of specs whose batches (appended from base)
// all end below offset.
func keptSpecs(base, offset int64, specs []spec) []spec {
	next := base
	for i, sp := range specs {
		if next+int64(sp.records)-1 >= offset {
			return specs[:i]
		}
		next += int64(sp.records)
	}
	return specs
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(al), len(bl))
}

func assertSame(t testing.TB, what string, got, want *Segment) {
	t.Helper()
	g, w := transcript(t, got), transcript(t, want)
	if g != w {
		t.Fatalf("%s: transcripts differ: %s", what, diff(g, w))
	}
	if g, w := indexState(got), indexState(want); g != w {
		t.Fatalf("%s: index state %s, want %s", what, g, w)
	}
}

func noLeftovers(t testing.TB, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tmpSuffix) || strings.HasSuffix(e.Name(), DeletedSuffix) {
			t.Fatalf("leftover %s", e.Name())
		}
	}
}

var moreSpecs = []spec{{2, 33, 300, codec.None}, {1, 900, 500, codec.Gzip}, {4, 20, 450, codec.None}}

// TestTruncateTo cuts a multi-batch segment at every offset (every batch
// boundary and inside every batch), in place and by copy, from an active
// and from a sealed segment, and compares the result with a segment built
// from the kept batches alone: reads, lookups, index state, appends after
// the cut, and a clean reopen.
func TestTruncateTo(t *testing.T) {
	const base = 1000
	var total int64
	for _, sp := range testSpecs {
		total += int64(sp.records)
	}
	for _, cfg := range []Config{{IndexInterval: 700, MaxIndexBytes: 4096}, {IndexInterval: 1, MaxIndexBytes: 4096}, {}} {
		for _, mode := range []string{"in-place", "copy", "sealed-in-place", "sealed-copy"} {
			t.Run(fmt.Sprintf("interval=%d/%s", cfg.IndexInterval, mode), func(t *testing.T) {
				for offset := int64(base - 1); offset <= base+total+1; offset++ {
					truncateCase(t, cfg, mode, base, offset)
				}
			})
		}
	}
}

func truncateCase(t *testing.T, cfg Config, mode string, base, offset int64) {
	t.Helper()
	dir, refDir := t.TempDir(), t.TempDir()
	s, _ := buildSegment(t, dir, base, cfg, testSpecs, 1)
	kept := keptSpecs(base, offset, testSpecs)
	ref, _ := buildSegment(t, refDir, base, cfg, kept, 1)
	defer ref.Close()
	oldNext := s.NextOffset()
	if strings.HasPrefix(mode, "sealed") {
		if err := s.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	byCopy := strings.HasSuffix(mode, "copy")
	if byCopy && !s.Acquire() { // a reader forces the copy
		t.Fatal("acquire")
	}
	r, err := s.TruncateTo(offset)
	if err != nil {
		t.Fatalf("TruncateTo(%d): %v", offset, err)
	}
	what := fmt.Sprintf("TruncateTo(%d)", offset)
	switch {
	case offset >= oldNext:
		if r != s {
			t.Fatalf("%s: nothing to cut, yet a new segment", what)
		}
	case byCopy:
		if r == s || !s.retired.Load() {
			t.Fatalf("%s: copy expected", what)
		}
		if err := s.Append(makeBatch(t, s.NextOffset(), moreSpecs[0], 1), record.Header{}); !errors.Is(err, ErrRetired) {
			t.Fatalf("%s: append to the retired segment: %v", what, err)
		}
		// The retired segment serves what the replacement holds.
		if g, w := transcript(t, s), transcript(t, ref); g != w {
			t.Fatalf("%s: retired segment: %s", what, diff(g, w))
		}
	default:
		if r != s {
			t.Fatalf("%s: in place expected", what)
		}
	}
	if r.NextOffset() > offset && offset >= base {
		t.Fatalf("%s: next offset %d", what, r.NextOffset())
	}
	if strings.HasPrefix(mode, "sealed") && offset >= oldNext {
		// Not cut: still sealed, unlike the active reference.
		if err := ref.Seal(); err != nil {
			t.Fatal(err)
		}
		assertSame(t, what, r, ref)
		if byCopy {
			s.Release()
		}
		r.Close()
		return
	}
	assertSame(t, what, r, ref)
	if r.Created() != s.Created() {
		t.Fatalf("%s: created changed", what)
	}
	appendSpecs(t, r, moreSpecs, 2)
	appendSpecs(t, ref, moreSpecs, 2)
	assertSame(t, what+" and appends", r, ref)
	if byCopy {
		if r != s {
			s.Close()
		}
		s.Release()
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ref.Close(); err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, dir)
	for _, suf := range suffixes {
		got, _ := os.ReadFile(filepath.Join(dir, FileName(base)+suf))
		want, _ := os.ReadFile(filepath.Join(refDir, FileName(base)+suf))
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %s files differ after close: %d vs %d bytes", what, suf, len(got), len(want))
		}
	}
	for _, active := range []bool{true, false} {
		r, err := Open(dir, base, cfg, active)
		if err != nil {
			t.Fatal(err)
		}
		ref, err = Open(refDir, base, cfg, active)
		if err != nil {
			t.Fatal(err)
		}
		assertSame(t, what+" reopened", r, ref)
		r.Close()
		ref.Close()
	}
}

// TestTruncateReadersKeepOldBytes holds View slices and Regions of a
// segment across TruncateTo and across appends of different bytes at the
// same offsets: what they were given never changes, and readers running
// throughout never fault.
func TestTruncateReadersKeepOldBytes(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{IndexInterval: 256, MaxIndexBytes: 4096, MaxBytes: 1 << 20}
			var specs []spec
			for i := range 60 {
				specs = append(specs, spec{1 + i%4, 50 + 37*i%400, int64(1000 + i), int8(i % 5)})
			}
			s, batches := buildSegment(t, dir, 0, cfg, specs, 3)
			if sealed {
				s.Seal()
			}
			var starts []int64
			next := int64(0)
			for _, sp := range specs {
				starts = append(starts, next)
				next += int64(sp.records)
			}
			if !s.Acquire() {
				t.Fatal("acquire")
			}
			// Views and regions of every batch, cut ones included.
			views := make([][]byte, len(batches))
			regions := make([]Region, len(batches))
			for i := range batches {
				v, err := s.View(starts[i], 1)
				if err != nil || !bytes.Equal(v, batches[i]) {
					t.Fatalf("view %d: %v", i, err)
				}
				views[i] = v
				if regions[i], err = s.Read(starts[i], 1); err != nil {
					t.Fatal(err)
				}
			}
			whole, err := s.View(0, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			wholeCopy := bytes.Clone(whole)
			// Readers that acquire and read while the writer works.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var cur sync.Mutex
			current := s
			for g := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					for {
						select {
						case <-stop:
							return
						default:
						}
						cur.Lock()
						seg := current
						cur.Unlock()
						if !seg.Acquire() {
							continue
						}
						off := rng.Int64N(max(seg.NextOffset(), 1))
						if v, err := seg.View(off, 4096); err == nil {
							for len(v) > 0 {
								b, rest, err := record.Split(v)
								if err == nil {
									_, err = record.Validate(b)
								}
								if err != nil {
									t.Errorf("view at %d: %v", off, err)
									break
								}
								v = rest
							}
						}
						if r, err := seg.Read(off, 4096); err == nil {
							b := make([]byte, r.Len)
							r.File.ReadAt(b, r.Pos)
						}
						seg.Release()
					}
				}()
			}
			cut := starts[21] + 1 // inside batch 21 (2 records): batches 21.. are cut
			r, err := s.TruncateTo(cut)
			if err != nil {
				t.Fatal(err)
			}
			if r == s {
				t.Fatal("truncated in place while a reader holds views")
			}
			cur.Lock()
			current = r
			cur.Unlock()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if r.NextOffset() != starts[21] {
				t.Fatalf("next %d, want %d", r.NextOffset(), starts[21])
			}
			// Different bytes at the cut offsets.
			var other []spec
			for i := range 40 {
				other = append(other, spec{1 + (i+1)%4, 80 + 13*i%500, int64(5000 + i), int8((i + 2) % 5)})
			}
			newBatches := appendSpecs(t, r, other, 77)
			close(stop)
			wg.Wait()
			for i := range batches {
				if !bytes.Equal(views[i], batches[i]) {
					t.Fatalf("view of batch %d changed", i)
				}
				b := make([]byte, regions[i].Len)
				if _, err := regions[i].File.ReadAt(b, regions[i].Pos); err != nil {
					t.Fatalf("region of batch %d: %v", i, err)
				}
				if !bytes.Equal(b, batches[i][:len(b)]) {
					t.Fatalf("region of batch %d changed", i)
				}
			}
			if !bytes.Equal(whole, wholeCopy) {
				t.Fatal("whole view changed")
			}
			// The replacement serves the new bytes at the cut offsets.
			if v, err := r.View(starts[21], 1); err != nil || !bytes.Equal(v, newBatches[0]) {
				t.Fatalf("new batch at %d: %v", starts[21], err)
			}
			if err := s.Release(); err != nil {
				t.Fatal(err)
			}
			// The retired segment's last release removed nothing.
			for _, suf := range suffixes {
				if _, err := os.Stat(filepath.Join(dir, FileName(0)+suf)); err != nil {
					t.Fatalf("%s gone after the retired segment's last release: %v", suf, err)
				}
			}
			if v, err := r.View(starts[21], 1); err != nil || !bytes.Equal(v, newBatches[0]) {
				t.Fatalf("new batch after release: %v", err)
			}
			r.Close()
			noLeftovers(t, dir)
		})
	}
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// checkOldOrNew opens the segment in dir as after a crash, three ways
// (after RemoveLeftovers), and checks that each yields the old or the
// truncated segment. It returns which ("old", "new") Open gave.
func checkOldOrNew(t *testing.T, what, dir string, base int64, cfg Config, oldT, newT string) string {
	t.Helper()
	var got []string
	for _, how := range []string{"open-active", "open-sealed", "recover"} {
		d := copyDir(t, dir)
		if _, err := RemoveLeftovers(d); err != nil {
			t.Fatal(err)
		}
		var s *Segment
		var err error
		if how == "recover" {
			if s, err = OpenForRecovery(d, base, cfg, true); err == nil {
				_, err = s.Recover()
			}
		} else {
			s, err = Open(d, base, cfg, how == "open-active")
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", what, how, err)
		}
		tr := transcript(t, s)
		switch tr {
		case oldT:
			got = append(got, "old")
		case newT:
			got = append(got, "new")
		default:
			t.Fatalf("%s: %s gives neither the old nor the new segment:\nvs old: %s\nvs new: %s", what, how, diff(tr, oldT), diff(tr, newT))
		}
		if how == "open-active" {
			// And it takes appends.
			appendSpecs(t, s, moreSpecs[:1], 5)
		}
		s.Close()
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if _, suffix, ok := parseName(e.Name()); ok && strings.Count(suffix, ".") > 1 {
				t.Fatalf("%s: leftover %s after RemoveLeftovers", what, e.Name())
			}
		}
	}
	if got[0] != got[1] || got[1] != got[2] {
		t.Logf("%s: %v", what, got) // allowed: recovery may find the old log where Open trusted it
	}
	return got[0]
}

// TestTruncateCrash stops TruncateTo at every step (snapshotting the
// directory as a crash would leave it) and also builds every mix of old and
// truncated files; each must reopen as the old or the truncated segment.
func TestTruncateCrash(t *testing.T) {
	const base = 500
	cfg := Config{IndexInterval: 300, MaxIndexBytes: 4096}
	cuts := map[string]int64{}
	{
		next := int64(base)
		for i, sp := range testSpecs {
			if i == 4 {
				cuts["inside, cut batches raise the max timestamp"] = next + 1
			}
			if i == 9 {
				cuts["at a boundary, cut batches do not raise it"] = next
			}
			next += int64(sp.records)
		}
		cuts["everything"] = base
	}
	for name, cut := range cuts {
		for _, byCopy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/copy=%v", name, byCopy), func(t *testing.T) {
				oldDir, newDir := t.TempDir(), t.TempDir()
				old, _ := buildSegment(t, oldDir, base, cfg, testSpecs, 4)
				oldT := transcript(t, old)
				old.Close()
				n, _ := buildSegment(t, newDir, base, cfg, keptSpecs(base, cut, testSpecs), 4)
				newT := transcript(t, n)
				n.Close()

				dir := t.TempDir()
				s, _ := buildSegment(t, dir, base, cfg, testSpecs, 4)
				before := copyDir(t, dir) // the old files as a crash leaves them: untrimmed indexes
				snaps := map[string]string{}
				testHook = func(step string) error {
					snaps[step] = copyDir(t, dir)
					return nil
				}
				defer func() { testHook = nil }()
				if byCopy {
					s.Acquire()
				}
				r, err := s.TruncateTo(cut)
				if err != nil {
					t.Fatal(err)
				}
				testHook = nil
				after := copyDir(t, dir)
				if byCopy {
					s.Close()
					s.Release()
				}
				r.Close()
				afterClose := copyDir(t, dir)
				want := []string{stepIndexesCut, stepLogCut}
				if byCopy {
					want = []string{stepCopied, stepRenamedLog, stepRenamedIndex, stepRenamedTime}
				}
				for _, step := range want {
					if snaps[step] == "" {
						t.Fatalf("step %q not reached", step)
					}
					got := checkOldOrNew(t, step, snaps[step], base, cfg, oldT, newT)
					wantState := "new"
					if step == stepIndexesCut || step == stepCopied {
						wantState = "old"
					}
					if got != wantState {
						t.Fatalf("%s: reopened as the %s segment, want %s", step, got, wantState)
					}
				}
				if checkOldOrNew(t, "after", after, base, cfg, oldT, newT) != "new" {
					t.Fatal("after TruncateTo: old segment")
				}
				if checkOldOrNew(t, "after close", afterClose, base, cfg, oldT, newT) != "new" {
					t.Fatal("after close: old segment")
				}
				// Every mix of old and truncated files, with the .tmp files of
				// the copy that a crash leaves in place or not.
				for mask := range 8 {
					d := t.TempDir()
					for i, suf := range suffixes {
						from := before
						if mask&(1<<i) != 0 {
							from = afterClose
						}
						b, err := os.ReadFile(filepath.Join(from, FileName(base)+suf))
						if err != nil {
							t.Fatal(err)
						}
						os.WriteFile(filepath.Join(d, FileName(base)+suf), b, 0o644)
						if mask&(1<<i) == 0 {
							os.WriteFile(filepath.Join(d, FileName(base)+suf+tmpSuffix), b[:len(b)/2], 0o644)
						}
					}
					got := checkOldOrNew(t, fmt.Sprintf("mix %03b", mask), d, base, cfg, oldT, newT)
					if (mask&1 != 0) != (got == "new") {
						t.Fatalf("mix %03b: the %s segment, but the log is the other", mask, got)
					}
				}
			})
		}
	}
}

// TestTruncateFailures makes each step of TruncateTo fail: before the
// commit the segment is unchanged and usable; after it the error wraps
// ErrRetired and reopening gives the truncated segment.
func TestTruncateFailures(t *testing.T) {
	const base = 0
	cfg := Config{IndexInterval: 300, MaxIndexBytes: 4096}
	cut := int64(11) // inside batch 4 (offsets 10, 11)
	kept := keptSpecs(base, cut, testSpecs)
	steps := []struct {
		step    string
		byCopy  bool
		retired bool
	}{
		{stepIndexesCut, false, false},
		{stepLogCut, false, true},
		{stepCopied, true, false},
		{stepRenamedLog, true, true},
		{stepRenamedIndex, true, true},
		{stepRenamedTime, true, true},
	}
	for _, tc := range steps {
		t.Run(tc.step, func(t *testing.T) {
			refDir := t.TempDir()
			ref, _ := buildSegment(t, refDir, base, cfg, testSpecs, 6)
			fullT := transcript(t, ref)
			ref.Close()
			ref, _ = buildSegment(t, t.TempDir(), base, cfg, kept, 6)
			keptT := transcript(t, ref)
			ref.Close()

			dir := t.TempDir()
			s, _ := buildSegment(t, dir, base, cfg, testSpecs, 6)
			injected := errors.New("injected")
			testHook = func(step string) error {
				if step == tc.step {
					return injected
				}
				return nil
			}
			defer func() { testHook = nil }()
			if tc.byCopy {
				s.Acquire()
			}
			r, err := s.TruncateTo(cut)
			testHook = nil
			if !errors.Is(err, injected) || r != nil {
				t.Fatalf("TruncateTo: %v, %v", r, err)
			}
			if errors.Is(err, ErrRetired) != tc.retired {
				t.Fatalf("retired: %v", err)
			}
			if tc.byCopy {
				s.Release()
			}
			if !tc.retired {
				if got := transcript(t, s); got != fullT {
					t.Fatalf("after a failed truncation: %s", diff(got, fullT))
				}
				noLeftovers(t, dir)
				appendSpecs(t, s, moreSpecs, 1)
				s.Close()
				s, err = Open(dir, base, cfg, true)
				if err != nil {
					t.Fatal(err)
				}
				if s.NextOffset() != base+total(testSpecs)+total(moreSpecs) {
					t.Fatalf("after failure, append, reopen: next %d", s.NextOffset())
				}
				s.Close()
				return
			}
			if _, err := s.TruncateTo(cut); !errors.Is(err, ErrRetired) {
				t.Fatalf("TruncateTo of a retired segment: %v", err)
			}
			s.Close()
			if _, err := RemoveLeftovers(dir); err != nil {
				t.Fatal(err)
			}
			r, err = Open(dir, base, cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := transcript(t, r); got != keptT {
				t.Fatalf("reopened after a failure past the commit: %s", diff(got, keptT))
			}
			r.Close()
		})
	}
}

// TestTruncateCopyFallback copies through user space when copy_file_range
// is missing or stops early.
func TestTruncateCopyFallback(t *testing.T) {
	defer func(f func(int, *int64, int, *int64, int, int) (int, error)) { copyFileRange = f }(copyFileRange)
	for name, fake := range map[string]func(int, *int64, int, *int64, int, int) (int, error){
		"enosys": func(int, *int64, int, *int64, int, int) (int, error) { return 0, unix.ENOSYS },
		"partial then zero": func(r int, ro *int64, w int, wo *int64, n, fl int) (int, error) {
			if *ro > 0 {
				return 0, nil
			}
			return unix.CopyFileRange(r, ro, w, wo, min(n, 100), fl)
		},
	} {
		t.Run(name, func(t *testing.T) {
			copyFileRange = fake
			cfg := Config{IndexInterval: 300, MaxIndexBytes: 4096}
			cut := int64(20)
			ref, _ := buildSegment(t, t.TempDir(), 0, cfg, keptSpecs(0, cut, testSpecs), 8)
			defer ref.Close()
			s, _ := buildSegment(t, t.TempDir(), 0, cfg, testSpecs, 8)
			s.Acquire()
			r, err := s.TruncateTo(cut)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			s.Release()
			defer r.Close()
			assertSame(t, name, r, ref)
		})
	}
}

// TestDeleteThenCreate deletes a segment a reader holds, creates a new one
// at the same base, and checks both.
func TestDeleteThenCreate(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{IndexInterval: 200, MaxIndexBytes: 4096}
			s, batches := buildSegment(t, dir, 7, cfg, testSpecs, 10)
			if sealed {
				s.Seal()
				s.ReleaseIndexes()
			}
			if !s.Acquire() {
				t.Fatal("acquire")
			}
			v, _ := s.View(7, 1<<30)
			reg, _ := s.Read(7, 1<<30)
			oldT := transcript(t, s)
			if err := s.Delete(); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Delete: %v", err)
			}
			if got, _ := List(dir); len(got) != 0 {
				t.Fatalf("List after Delete: %v", got)
			}
			for _, suf := range suffixes {
				if _, err := os.Stat(filepath.Join(dir, FileName(7)+suf)); !os.IsNotExist(err) {
					t.Fatalf("%s still under its name", suf)
				}
				if _, err := os.Stat(filepath.Join(dir, FileName(7)+suf+DeletedSuffix)); err != nil {
					t.Fatalf("%s.deleted: %v", suf, err)
				}
			}
			n, err := Create(dir, 7, cfg)
			if err != nil {
				t.Fatal(err)
			}
			newBatches := appendSpecs(t, n, moreSpecs, 11)
			// The deleted segment still reads its old bytes, lookups included.
			if got := transcript(t, s); got != oldT {
				t.Fatalf("deleted segment: %s", diff(got, oldT))
			}
			all := bytes.Join(batches, nil)
			b := make([]byte, reg.Len)
			reg.File.ReadAt(b, reg.Pos)
			if !bytes.Equal(v, all) || !bytes.Equal(b, all) {
				t.Fatal("old bytes changed")
			}
			if got, _ := n.View(7, 1); !bytes.Equal(got, newBatches[0]) {
				t.Fatal("new segment")
			}
			if err := s.Release(); err != nil {
				t.Fatal(err)
			}
			noLeftovers(t, dir)
			if got, _ := List(dir); fmt.Sprint(got) != "[7]" {
				t.Fatalf("List: %v", got)
			}
			n.Close()
			n, err = Open(dir, 7, cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := n.View(7, 1); !bytes.Equal(got, newBatches[0]) {
				t.Fatal("new segment after reopen")
			}
			n.Close()
		})
	}
}

func TestRemoveLeftovers(t *testing.T) {
	dir := t.TempDir()
	files := map[string]bool{ // name: removed
		FileName(1) + LogSuffix:                       false,
		FileName(1) + IndexSuffix:                     false,
		FileName(1) + TimeIndexSuffix:                 false,
		FileName(1) + LogSuffix + tmpSuffix:           true,
		FileName(1) + IndexSuffix + tmpSuffix:         true,
		FileName(1) + TimeIndexSuffix + DeletedSuffix: true,
		FileName(2) + LogSuffix + DeletedSuffix:       true,
		FileName(2) + IndexSuffix:                     true, // no log
		FileName(2) + TimeIndexSuffix:                 true,
		FileName(3) + LogSuffix:                       false,
		"recovery-point":                              false,
		"recovery-point.tmp":                          false,
		"leader-epoch-checkpoint":                     false,
		"123.log.deleted":                             false,
		FileName(4) + ".snapshot":                     false,
		FileName(4) + ".log.swap":                     false,
	}
	for name := range files {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	n, err := RemoveLeftovers(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if removed != os.IsNotExist(err) {
			t.Errorf("%s: removed %v, want %v", name, os.IsNotExist(err), removed)
		}
		if removed {
			want++
		}
	}
	if n != want {
		t.Fatalf("removed %d, want %d", n, want)
	}
	if got, _ := List(dir); fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("List: %v", got)
	}
}

func TestViewTo(t *testing.T) {
	s, batches := buildSegment(t, t.TempDir(), 10, Config{IndexInterval: 100}, testSpecs[:4], 12)
	defer s.Close()
	s.Acquire()
	defer s.Release()
	// Batches: [10], [11,13], [14,18], [19].
	for _, tc := range []struct {
		offset, end int64
		max         int
		want        []int // batches returned
		err         error
	}{
		{10, 11, 1 << 20, []int{0}, nil},
		{10, 12, 1 << 20, []int{0}, nil}, // 12 is inside batch 1: it is left out
		{10, 14, 1 << 20, []int{0, 1}, nil},
		{10, 19, 1 << 20, []int{0, 1, 2}, nil},
		{10, 20, 1 << 20, []int{0, 1, 2, 3}, nil},
		{10, math.MaxInt64, 1 << 20, []int{0, 1, 2, 3}, nil},
		{12, 20, 1, []int{1}, nil},
		{12, 14, 1 << 20, []int{1}, nil},
		{12, 13, 1 << 20, nil, ErrOutOfRange}, // the batch holding 12 also holds 13
		{14, 14, 1 << 20, nil, ErrOutOfRange},
		{15, 14, 1 << 20, nil, ErrOutOfRange},
		{20, 30, 1 << 20, nil, ErrOutOfRange},
		{9, 30, 1 << 20, nil, ErrOutOfRange},
	} {
		got, err := s.ViewTo(tc.offset, tc.max, tc.end)
		var want []byte
		for _, i := range tc.want {
			want = append(want, batches[i]...)
		}
		if !errors.Is(err, tc.err) || !bytes.Equal(got, want) {
			t.Errorf("ViewTo(%d, %d, %d) = %d bytes, %v; want %d bytes, %v", tc.offset, tc.max, tc.end, len(got), err, len(want), tc.err)
		}
		r, rerr := s.ReadTo(tc.offset, tc.max, tc.end)
		if !errors.Is(rerr, tc.err) || (err == nil && r.Len != int64(len(want))) {
			t.Errorf("ReadTo(%d, %d, %d) = %d bytes, %v: disagrees with ViewTo", tc.offset, tc.max, tc.end, r.Len, rerr)
		}
	}
}

func TestClock(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := Create(dir, 0, Config{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created().Equal(at) {
		t.Fatalf("created %v", s.Created())
	}
	appendSpecs(t, s, testSpecs[:2], 1)
	s.Close()
	mtime := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, FileName(0)+LogSuffix), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, 0, Config{Now: func() time.Time { return at }}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Created().Equal(mtime) {
		t.Fatalf("opened: created %v, want the mtime %v", s.Created(), mtime)
	}
}

// FuzzTruncate builds a segment from fuzzed batch shapes, truncates it at a
// fuzzed offset, in place or by copy, and checks it against a segment built
// from the kept batches, that held views keep their bytes, and that a
// reopen gives the same.
func FuzzTruncate(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint16(5), false, uint16(64))
	f.Add([]byte{9, 200, 3, 0, 0, 0, 1, 50, 7}, uint16(0), true, uint16(1))
	f.Add([]byte{255, 255, 255, 255}, uint16(1000), true, uint16(4096))
	f.Fuzz(func(t *testing.T, shape []byte, cut uint16, hold bool, interval uint16) {
		if len(shape) > 40 {
			shape = shape[:40]
		}
		var specs []spec
		for i := 0; i+1 < len(shape); i += 2 {
			a, b := shape[i], shape[i+1]
			specs = append(specs, spec{records: 1 + int(a%8), valueSize: int(b) * 3, ts: int64(b) - int64(a), codec: int8(a>>3) % 5})
		}
		cfg := Config{IndexInterval: int(interval), MaxIndexBytes: 4096}
		const base = 100
		offset := base - 2 + int64(cut%200)
		s, batches := buildSegment(t, t.TempDir(), base, cfg, specs, 13)
		ref, _ := buildSegment(t, t.TempDir(), base, cfg, keptSpecs(base, offset, specs), 13)
		defer ref.Close()
		var views [][]byte
		if hold {
			s.Acquire()
			for off := int64(base); off < s.NextOffset(); off++ {
				v, err := s.View(off, 1)
				if err != nil {
					t.Fatal(err)
				}
				views = append(views, v)
			}
		}
		r, err := s.TruncateTo(offset)
		if err != nil {
			t.Fatal(err)
		}
		assertSame(t, "truncated", r, ref)
		appendSpecs(t, r, moreSpecs, 14)
		appendSpecs(t, ref, moreSpecs, 14)
		assertSame(t, "appended", r, ref)
		if hold {
			i := 0
			for _, b := range batches {
				h, _ := record.ParseHeader(b)
				for range h.LastOffsetDelta + 1 {
					if !bytes.Equal(views[i], b) {
						t.Fatal("held view changed")
					}
					i++
				}
			}
			if r != s {
				s.Close()
			}
			s.Release()
		}
		dir := r.directory()
		r.Close()
		r, err = Open(dir, base, cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		assertSame(t, "reopened", r, ref)
	})
}

// BenchmarkTruncateTo cuts a 64 MiB segment of 16 KiB batches in the
// middle, in place (no reader) and by copy (a reader holds a reference),
// starting from files already on disk. SetBytes is the kept half: what the
// copy copies and fsyncs.
func BenchmarkTruncateTo(b *testing.B) {
	const size, batchBytes = 64 << 20, 16 << 10
	tmpl := b.TempDir()
	s, err := Create(tmpl, 0, Config{})
	if err != nil {
		b.Fatal(err)
	}
	for s.Size() < size {
		appendSpecs(b, s, []spec{{16, batchBytes / 16, 1, codec.None}}, 1)
	}
	s.Close()
	var files [][]byte
	for _, suf := range suffixes {
		f, _ := os.ReadFile(filepath.Join(tmpl, FileName(0)+suf))
		files = append(files, f)
	}
	for _, byCopy := range []bool{false, true} {
		b.Run(map[bool]string{false: "in-place", true: "copy"}[byCopy], func(b *testing.B) {
			b.SetBytes(size / 2)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				for i, suf := range suffixes {
					p := filepath.Join(dir, FileName(0)+suf)
					os.WriteFile(p, files[i], 0o644)
					// Durable before the clock starts, as a log that was
					// flushed: the timed fsyncs then write only what
					// TruncateTo itself wrote.
					if err := syncPath(p); err != nil {
						b.Fatal(err)
					}
				}
				s, err := Open(dir, 0, Config{}, true)
				if err != nil {
					b.Fatal(err)
				}
				cut := s.NextOffset() / 2
				if byCopy {
					s.Acquire()
				}
				b.StartTimer()
				r, err := s.TruncateTo(cut)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if r != s {
					s.Close()
				}
				if byCopy {
					s.Release()
				}
				r.Close()
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}

func total(specs []spec) int64 {
	var n int64
	for _, sp := range specs {
		n += int64(sp.records)
	}
	return n
}

// TestTruncateConcurrentReaders runs readers against a writer that appends,
// truncates at random offsets (in place when no reader happens to hold the
// segment, by copy otherwise) and appends different bytes at the cut
// offsets, over and over. Each reader checks that what it was given does
// not change while it holds its reference, and that every batch it reads is
// one the writer appended at that offset in some generation.
func TestTruncateConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{IndexInterval: 200, MaxIndexBytes: 1 << 16, MaxBytes: 4 << 20}
	s, err := Create(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	current := s
	written := map[uint32]bool{} // crc of every batch appended
	var gen uint64
	appendSome := func(n int) {
		gen++
		var specs []spec
		for i := range n {
			specs = append(specs, spec{1 + i%3, 20 + int(gen*7+uint64(i)*13)%300, int64(gen*10 + uint64(i)), int8(i % 2)})
		}
		for _, sp := range specs {
			b := makeBatch(t, current.NextOffset(), sp, gen)
			h, err := record.Validate(b)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock() // recorded before any reader can see it
			written[crc32.ChecksumIEEE(b)] = true
			mu.Unlock()
			if err := current.Append(b, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendSome(30) // the writer's: current changes only in this goroutine
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var inPlace, copied int
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				seg := current
				mu.Unlock()
				if !seg.Acquire() {
					continue
				}
				off := rng.Int64N(max(seg.NextOffset(), 1))
				v, verr := seg.View(off, 2048)
				r, rerr := seg.Read(off, 2048)
				vc := bytes.Clone(v)
				var rc []byte
				if rerr == nil {
					rc = make([]byte, r.Len)
					r.File.ReadAt(rc, r.Pos)
				}
				for range rng.IntN(3) {
					time.Sleep(50 * time.Microsecond) // hold across the writer's work
				}
				if verr == nil {
					if !bytes.Equal(v, vc) {
						t.Errorf("view at %d changed under a reference", off)
					}
					for b := vc; len(b) > 0; {
						one, rest, err := record.Split(b)
						mu.Lock()
						ok := err == nil && written[crc32.ChecksumIEEE(one)]
						mu.Unlock()
						if !ok {
							t.Errorf("view at %d holds a batch never written: %v", off, err)
							break
						}
						b = rest
					}
				}
				if rerr == nil {
					again := make([]byte, r.Len)
					r.File.ReadAt(again, r.Pos)
					if !bytes.Equal(again, rc) {
						t.Errorf("region at %d changed under a reference", off)
					}
				}
				seg.Release()
			}
		}()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 150 {
		mu.Lock()
		cur := current
		mu.Unlock()
		cut := rng.Int64N(cur.NextOffset() + 1)
		r, err := cur.TruncateTo(cut)
		if err != nil {
			t.Fatal(err)
		}
		if r != cur {
			copied++
			mu.Lock()
			current = r
			mu.Unlock()
			cur.Close()
		} else {
			inPlace++
		}
		if r.NextOffset() > cut {
			t.Fatalf("next %d after TruncateTo(%d)", r.NextOffset(), cut)
		}
		appendSome(1 + rng.IntN(8))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d in place, %d by copy", inPlace, copied)
	mu.Lock()
	current.Close()
	mu.Unlock()
	noLeftovers(t, dir)
}
