package segment

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

// diskUse returns a file's size and the bytes of disk it holds (what du
// reports).
func diskUse(t testing.TB, path string) (size, used int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks * 512
}

// checkTrimmed fails unless the file holds no more disk than its size
// rounded up to pages (plus the slack reserved allows).
func checkTrimmed(t testing.TB, path string) {
	t.Helper()
	size, used := diskUse(t, path)
	if used > (size+4095)&^4095+64<<10 {
		t.Fatalf("%s: %d bytes on disk for %d bytes of data", filepath.Base(path), used, size)
	}
}

// checkReserved fails unless the file holds at least want bytes of disk;
// it skips the test where the file system cannot preallocate.
func checkReserved(t testing.TB, path string, want int64) {
	t.Helper()
	if _, used := diskUse(t, path); used < want {
		t.Fatalf("%s: %d bytes on disk, want a reserve of %d", filepath.Base(path), used, want)
	}
}

// skipWithoutFallocate skips where dir's file system has no fallocate.
func skipWithoutFallocate(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 1 /* FALLOC_FL_KEEP_SIZE */, 0, 1<<20); err != nil {
		t.Skipf("no fallocate here: %v", err)
	}
}

func TestPreallocateDiskUse(t *testing.T) {
	dir := t.TempDir()
	skipWithoutFallocate(t, dir)
	const max = 8 << 20
	cfg := Config{MaxBytes: max, Preallocate: true}
	logPath := filepath.Join(dir, FileName(0)+LogSuffix)

	s, err := Create(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkReserved(t, logPath, max)
	batches := fill(t, s, 20, 1000)
	if size, _ := diskUse(t, logPath); size != s.Size() {
		t.Fatalf("file size %d, segment size %d: the reserve must not show in the size", size, s.Size())
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	checkTrimmed(t, logPath)
	if got := readLog(t, dir, 0); !bytes.Equal(got, bytes.Join(batches, nil)) {
		t.Fatal("log bytes changed by the trim")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Close without Seal (a clean shutdown) gives the reserve back too, and
	// keeps the modification time that dates the reopened segment.
	s, err = Create(dir, 60, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 5, 1000)
	logPath = filepath.Join(dir, FileName(60)+LogSuffix)
	checkReserved(t, logPath, max)
	before, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkTrimmed(t, logPath)
	after, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("trim moved the modification time from %v to %v", before.ModTime(), after.ModTime())
	}

	// Reopened active, the segment is preallocated again; sealed, not.
	s, err = Open(dir, 60, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	checkReserved(t, logPath, max)
	fill(t, s, 2, 1000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkTrimmed(t, logPath)
	s, err = Open(dir, 0, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	checkTrimmed(t, filepath.Join(dir, FileName(0)+LogSuffix))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A deleted segment's reserve goes with its files.
	s, err = Create(dir, 1000, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 2, 100)
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName(1000)+LogSuffix+DeletedSuffix)); !os.IsNotExist(err) {
		t.Fatalf("deleted log still there: %v", err)
	}
}

// TestPreallocateTruncateTo: a cut in place frees the reserve past the cut,
// a cut by copy gives a replacement that is preallocated again.
func TestPreallocateTruncateTo(t *testing.T) {
	dir := t.TempDir()
	skipWithoutFallocate(t, dir)
	cfg := Config{MaxBytes: 4 << 20, Preallocate: true}
	s, err := Create(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 10, 500)
	logPath := filepath.Join(dir, FileName(0)+LogSuffix)
	if s, err = s.TruncateTo(15); err != nil { // in place: no reader
		t.Fatal(err)
	}
	checkTrimmed(t, logPath)
	fill(t, s, 4, 500)
	if !s.Acquire() {
		t.Fatal("acquire")
	}
	r, err := s.TruncateTo(9) // by copy: a reader holds a reference
	if err != nil {
		t.Fatal(err)
	}
	if r == s {
		t.Fatal("cut in place with a reader holding a reference")
	}
	checkReserved(t, logPath, cfg.MaxBytes)
	s.Close()
	s.Release()
	fill(t, r, 1, 500)
	if r.NextOffset() != 12 {
		t.Fatalf("next offset %d, want 12", r.NextOffset())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	checkTrimmed(t, logPath)
}

// crashEnv makes the test binary the child of TestPreallocateCrash.
const crashEnv = "SEGMENT_PREALLOCATE_CRASH_DIR"

// TestPreallocateCrash kills a process (SIGKILL) that appends to a
// preallocated segment and recovers the files it left: every batch it had
// appended is there, a torn last write is cut, the reserve it left is given
// back, and appends go on.
func TestPreallocateCrash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	skipWithoutFallocate(t, dir)
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) {
			dir := filepath.Join(dir, strconv.FormatBool(torn))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestPreallocateCrash$")
			cmd.Env = append(os.Environ(), crashEnv+"="+dir, "SEGMENT_CRASH_TORN="+strconv.FormatBool(torn))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			var next int64
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "appended to "); ok {
					next, _ = strconv.ParseInt(v, 10, 64)
					break
				}
			}
			if next == 0 {
				cmd.Process.Kill()
				t.Fatalf("child did not report: %v", sc.Err())
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()

			logPath := filepath.Join(dir, FileName(0)+LogSuffix)
			checkReserved(t, logPath, crashMax) // the dead process's reserve
			cfg := Config{MaxBytes: crashMax, Preallocate: true}
			s, err := OpenForRecovery(dir, 0, cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			cut, err := s.Recover()
			if err != nil {
				t.Fatal(err)
			}
			if torn != (cut > 0) || s.NextOffset() != next {
				t.Fatalf("recovered to offset %d cutting %d bytes; want offset %d, a cut: %v", s.NextOffset(), cut, next, torn)
			}
			for off := int64(0); off < next; off += 3 {
				if _, err := s.View(off, 1); err != nil {
					t.Fatalf("offset %d after recovery: %v", off, err)
				}
			}
			fill(t, s, 3, 1000)
			if err := s.Seal(); err != nil {
				t.Fatal(err)
			}
			checkTrimmed(t, logPath)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			// The same crash found by a process that opens the segment as
			// sealed (a later segment exists): Open trims the reserve.
			if err := exec.Command("fallocate", "-n", "-l", strconv.Itoa(crashMax), logPath).Run(); err != nil {
				t.Skipf("fallocate(1): %v", err)
			}
			checkReserved(t, logPath, crashMax)
			if s, err = Open(dir, 0, cfg, false); err != nil {
				t.Fatal(err)
			}
			checkTrimmed(t, logPath)
			if s.NextOffset() != next+9 {
				t.Fatalf("next offset %d, want %d", s.NextOffset(), next+9)
			}
			s.Close()
		})
	}
}

const crashMax = 16 << 20

// crashChild appends to a preallocated segment in dir, optionally writes
// half a batch past its end (a torn write), reports the next offset and
// waits to be killed.
func crashChild(t *testing.T, dir string) {
	s, err := Create(dir, 0, Config{MaxBytes: crashMax, Preallocate: true})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 200, 1000)
	if os.Getenv("SEGMENT_CRASH_TORN") == "true" {
		b := batch(t, s.NextOffset(), 3, 1, 1000)
		if _, err := s.log.WriteAt(b[:len(b)/2], s.Size()); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("appended to %d\n", s.NextOffset())
	time.Sleep(time.Hour) // until killed
}

// BenchmarkPreallocate appends 64 KiB batches of 1 KiB records to 64 MiB
// segments, rolling (Create, Seal, Close, Delete of the full one) when a
// segment is full, with and without Preallocate; the roll costs are in the
// per-batch time. With sync=false each full segment is deleted before its
// pages are written back, so this compares page-cache writes into a fresh
// file and into a preallocated one (where ext4 has no delayed allocation to
// reserve), plus fallocate and trim at each roll. With sync=true each
// segment is fdatasynced when it rolls, as the engine does in the
// background, so the writeback is timed too, including ext4's conversion of
// the preallocated (unwritten) extents to written ones.
func BenchmarkPreallocate(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, pre := range []bool{false, true} {
			b.Run(fmt.Sprintf("sync=%v/preallocate=%v", sync, pre), func(b *testing.B) {
				benchAppendRoll(b, sync, pre)
			})
		}
	}
}

func benchAppendRoll(b *testing.B, sync, pre bool) {
	dir := b.TempDir()
	cfg := Config{MaxBytes: 64 << 20, Preallocate: pre}
	tmpl := batch(b, 0, 62, 1, 1024)
	h, err := record.Validate(tmpl)
	if err != nil {
		b.Fatal(err)
	}
	s, err := Create(dir, 0, cfg)
	if err != nil {
		b.Fatal(err)
	}
	rolls := 0
	b.SetBytes(int64(len(tmpl)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		record.SetBaseOffset(tmpl, s.NextOffset())
		h.BaseOffset = s.NextOffset()
		err := s.Append(tmpl, h)
		if errors.Is(err, ErrFull) {
			next, cerr := Create(dir, s.NextOffset(), cfg)
			if cerr != nil {
				b.Fatal(cerr)
			}
			if sync {
				if err := s.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Seal(); err != nil {
				b.Fatal(err)
			}
			if err := s.Delete(); err != nil {
				b.Fatal(err)
			}
			s, rolls = next, rolls+1
			err = s.Append(tmpl, h)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rolls), "rolls")
	s.Close()
}

// BenchmarkRecoverPreallocated times recovery of a 64 MiB active segment
// left by a crash (OpenForRecovery and Recover: every batch read and
// checked, the indexes rebuilt), with and without the reserve a
// preallocating writer leaves past the end. With Preallocate the open
// fallocates again, as a restarted broker would. The log is in the page
// cache, so this is the scan's CPU cost, not the disk's.
func BenchmarkRecoverPreallocated(b *testing.B) {
	for _, pre := range []bool{false, true} {
		b.Run(fmt.Sprintf("preallocate=%v", pre), func(b *testing.B) {
			dir := b.TempDir()
			cfg := Config{MaxBytes: 128 << 20, Preallocate: pre}
			s, err := Create(dir, 0, cfg)
			if err != nil {
				b.Fatal(err)
			}
			tmpl := batch(b, 0, 62, 1, 1024)
			h, err := record.Validate(tmpl)
			if err != nil {
				b.Fatal(err)
			}
			for s.Size() < 64<<20 {
				record.SetBaseOffset(tmpl, s.NextOffset())
				h.BaseOffset = s.NextOffset()
				if err := s.Append(tmpl, h); err != nil {
					b.Fatal(err)
				}
			}
			next, size := s.NextOffset(), s.Size()
			s.Release() // the files closed as a crash leaves them: no trim
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				r, err := OpenForRecovery(dir, 0, cfg, true)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Recover(); err != nil || r.NextOffset() != next {
					b.Fatalf("recovered to %d (%v), want %d", r.NextOffset(), err, next)
				}
				r.Release()
			}
		})
	}
}
