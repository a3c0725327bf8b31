package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/segment"
)

// Concurrency of reads, appends, close and retention.

// Retention persists the new log start before deleting files, so segments
// that a crash left behind (a reader held them, or the process died
// between two deletions) are removed at the next open instead of coming
// back below a hole.
func TestRetentionSurvivesCrashMidDelete(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 300, RetentionBytes: 700}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	for i := range 12 {
		if _, err := p.Append(simpleBatch(t, 1, 200, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	pdir := partDir(dir, "t", 0)
	saved := map[string][]byte{}
	for _, f := range segmentFiles(t, pdir)[:2] {
		for _, suf := range []string{segment.LogSuffix, segment.IndexSuffix, segment.TimeIndexSuffix} {
			name := strings.TrimSuffix(f, segment.LogSuffix) + suf
			if b, err := os.ReadFile(name); err == nil {
				saved[name] = b
			}
		}
	}
	if n, err := e.EnforceRetention(); err != nil || n < 2 {
		t.Fatalf("retention: %d, %v", n, err)
	}
	start := p.StartOffset()
	e.crash()
	// The oldest segment's files are still there, as if the crash came
	// before their removal.
	for name, b := range saved {
		if strings.Contains(name, segment.FileName(0)) {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	if p.StartOffset() != start {
		t.Fatalf("start offset %d after the crash, want %d", p.StartOffset(), start)
	}
	if _, err := os.Stat(filepath.Join(pdir, segment.FileName(0)+segment.LogSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment below the log start still there: %v", err)
	}
	if got := readAll(t, p, start); int64(len(got)) != p.EndOffset()-start {
		t.Fatalf("read %d records from %d to %d", len(got), start, p.EndOffset())
	}
}

// An iterator stops at the end offset of its creation, even when the
// batches it reads hold later records.
func TestRecordsStopsAtCreationEnd(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	if _, err := p.Append(simpleBatch(t, 3, 10, 1)); err != nil {
		t.Fatal(err)
	}
	it := p.Records(0)
	if _, err := p.Append(simpleBatch(t, 3, 10, 1)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.Next() {
		if it.Record().Offset >= 3 {
			t.Fatalf("iterator created at end 3 returned offset %d", it.Record().Offset)
		}
		n++
	}
	if err := it.Close(); err != nil || n != 3 {
		t.Fatalf("%d records, %v", n, err)
	}
}

// Every read of a closed partition fails with ErrClosed (it used to report
// ErrOffsetOutOfRange, or read a released segment).
func TestClosedPartitionReads(t *testing.T) {
	for _, store := range []string{"disk", "memory"} {
		t.Run(store, func(t *testing.T) {
			opts := quietOpts()
			if store == "memory" {
				opts.Store = NewMemoryStore()
			}
			e := mustOpen(t, t.TempDir(), opts)
			if err := e.CreateTopic("t", TopicConfig{}); err != nil {
				t.Fatal(err)
			}
			p, _ := e.Partition("t", 0)
			if _, err := p.Append(simpleBatch(t, 3, 10, 1)); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := p.Append(simpleBatch(t, 3, 10, 1)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append: %v", err)
			}
			if _, err := p.Read(0, 100); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read: %v", err)
			}
			if _, err := p.ReadBatches(0, 100); !errors.Is(err, ErrClosed) {
				t.Fatalf("ReadBatches: %v", err)
			}
			if _, err := p.OffsetForTimestamp(0); !errors.Is(err, ErrClosed) {
				t.Fatalf("OffsetForTimestamp: %v", err)
			}
			if err := p.Flush(); !errors.Is(err, ErrClosed) {
				t.Fatalf("Flush: %v", err)
			}
			if err := p.Wait(context.Background(), 10); !errors.Is(err, ErrClosed) {
				t.Fatalf("Wait: %v", err)
			}
			it := p.Records(0)
			if it.Next() || !errors.Is(it.Close(), ErrClosed) {
				t.Fatalf("Records: %v", it.Err())
			}
		})
	}
}

// A reader that sees an end offset can read every offset below it at once:
// the log end offset is published only after the batch is whole in the
// segment (the segment publishes its next offset before its size).
func TestEndOffsetIsReadable(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	batch := simpleBatch(t, 1, 50, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	var failMsg atomic.Value
	for range 2 {
		spin(&wg, stop, func() {
			end := p.EndOffset()
			if end == 0 {
				return
			}
			c, err := p.ReadBatches(end-1, 1)
			if err != nil || c.FirstOffset != end-1 {
				failures.Add(1)
				failMsg.Store(err)
			}
			c.Release()
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := p.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d reads at EndOffset()-1 failed, e.g. %v", n, failMsg.Load())
	}
}

// Appends racing with Close either succeed, and are then in the log after
// reopening, or fail with ErrClosed.
func TestCloseRacesAppends(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	if err := e.CreateTopic("t", TopicConfig{Partitions: 2, SegmentBytes: 2048}); err != nil {
		t.Fatal(err)
	}
	var acked [2]atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		part := int32(w % 2)
		p, _ := e.Partition("t", part)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := p.Append(simpleBatch(t, 1, 30, 1))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				acked[part].Add(1)
			}
		}()
	}
	// Close while appends are going on: wait until some were acknowledged.
	for deadline := time.Now().Add(10 * time.Second); acked[0].Load()+acked[1].Load() < 100; {
		if time.Now().After(deadline) {
			t.Fatal("no appends acknowledged")
		}
		runtime.Gosched()
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	if !e.clean {
		t.Fatal("not clean after Close")
	}
	for part := range int32(2) {
		p, _ := e.Partition("t", part)
		if p.EndOffset() != acked[part].Load() {
			t.Fatalf("partition %d: %d records, %d acknowledged", part, p.EndOffset(), acked[part].Load())
		}
		readAllBatches(t, p)
	}
}

// Retention running while readers hold chunks and iterate: the chunks stay
// valid (the segment files outlive the deletion until released) and every
// byte read validates.
func TestRetentionRacesReaders(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 1024, RetentionBytes: 3000}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	for i := range 20 {
		if _, err := p.Append(simpleBatch(t, 2, 100, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A chunk held across the deletion of its segment.
	held, err := p.ReadBatches(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(held.Bytes)
	region, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.EnforceRetention(); err != nil || n == 0 {
		t.Fatalf("retention: %d, %v", n, err)
	}
	if p.StartOffset() == 0 {
		t.Fatal("retention did not move the start offset")
	}
	if !bytes.Equal(held.Bytes, want) {
		t.Fatal("a held view changed when its segment was deleted")
	}
	got := make([]byte, region.Len)
	if _, err := region.File.ReadAt(got, region.Pos); err != nil || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("a held region is unreadable after its segment was deleted: %v", err)
	}
	held.Release()
	region.Release()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr atomic.Value
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := p.Append(simpleBatch(t, 2, 100, int64(100+i))); err != nil {
				writeErr.Store(err)
				return
			}
		}
	}()
	go func() { // retention
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.EnforceRetention(); err != nil {
				writeErr.Store(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	reads := 0
	for time.Now().Before(deadline) {
		c, err := p.ReadBatches(p.StartOffset(), 1<<20)
		if errors.Is(err, ErrOffsetOutOfRange) {
			continue // the start moved between the two calls
		}
		if err != nil {
			t.Fatal(err)
		}
		splitBatches(t, c.Bytes)
		c.Release()
		it := p.Records(p.StartOffset())
		for it.Next() {
		}
		if err := it.Close(); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("iterating during retention: %v", err)
		}
		reads++
	}
	close(stop)
	wg.Wait()
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	if reads == 0 {
		t.Fatal("no reads")
	}
}

// blockingPolicy is a cleanup policy that waits inside Clean until told.
type blockingPolicy struct {
	entered chan struct{}
	release chan struct{}
}

func (blockingPolicy) Name() string { return "test-blocking" }

func (b blockingPolicy) Clean(l Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	b.entered <- struct{}{}
	<-b.release
	return deletePolicy{}.Clean(l, cfg, now, hw)
}

// A retention pass does not hold the partition's writer lock: deleting
// segment files and fsyncing the log start took appends hostage for as
// long as they lasted.
func TestRetentionDoesNotBlockAppends(t *testing.T) {
	pol := blockingPolicy{entered: make(chan struct{}), release: make(chan struct{})}
	RegisterCleanupPolicy(pol)
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 300, RetentionBytes: 600, CleanupPolicy: pol.Name()}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	for i := range 6 {
		if _, err := p.Append(simpleBatch(t, 1, 200, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.EnforceRetention()
		done <- err
	}()
	<-pol.entered
	appended := make(chan error, 1)
	go func() {
		for i := range 4 { // rolls too
			if _, err := p.Append(simpleBatch(t, 1, 200, int64(10+i))); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(pol.release)
		t.Fatal("appends waited for the retention pass")
	}
	close(pol.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.StartOffset() == 0 {
		t.Fatal("retention deleted nothing")
	}
	if got := readAll(t, p, p.StartOffset()); int64(len(got)) != p.EndOffset()-p.StartOffset() {
		t.Fatalf("read %d records of [%d, %d)", len(got), p.StartOffset(), p.EndOffset())
	}
}
