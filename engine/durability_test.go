package engine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easel-io/easel/segment"
)

// Durability: fsyncs, the recovery point, group commit, the clean-shutdown
// marker and producer snapshots.

// withSyncHook replaces the segment fsync for one test.
func withSyncHook(t *testing.T, hook func(s *segment.Segment) error) {
	t.Helper()
	old := syncSegment
	syncSegment = hook
	t.Cleanup(func() { syncSegment = old })
}

func readRecoveryPoint(t *testing.T, pdir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pdir, recoveryFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The background fsyncs of rolled segments may finish out of order; the
// recovery point must not move past a segment whose fsync has not finished
// (it moved to the newest finished one, so a crash skipped recovery of an
// unsynced segment).
func TestRecoveryPointWaitsForEarlierRolls(t *testing.T) {
	dir := t.TempDir()
	block := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(block) }) }
	var mu sync.Mutex
	var seg0 *segment.Segment // partition t-0's first segment
	laterSynced := make(chan struct{}, 8)
	withSyncHook(t, func(s *segment.Segment) error {
		mu.Lock()
		slow := s == seg0
		mu.Unlock()
		if slow {
			<-block // the first rolled segment's fsync is slow
			return s.Sync()
		}
		defer func() { laterSynced <- struct{}{} }()
		return s.Sync()
	})
	e := mustOpen(t, dir, quietOpts())
	defer e.Close()
	defer unblock() // before Close, which waits for the fsyncs
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 100}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	l := p.log.(*diskLog)
	mu.Lock()
	seg0 = l.segments()[0]
	mu.Unlock()
	for i := range 4 { // every batch rolls: segments 0, 1, 2, 3
		if _, err := p.Append(simpleBatch(t, 1, 80, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	pdir := partDir(dir, "t", 0)
	// The fsyncs of rolled segments 1 and 2 finish while 0's waits. (The
	// short sleep after them gives a broken implementation the moment it
	// would need to move the point; the check below holds without it.)
	for range 2 {
		select {
		case <-laterSynced:
		case <-time.After(10 * time.Second):
			t.Fatal("the fsyncs of later segments did not run")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if rp := readRecoveryPoint(t, pdir); rp != 0 || l.recovery.Load() != 0 {
		t.Fatalf("recovery point %d (file %d) moved past segment 0, whose fsync has not finished", l.recovery.Load(), rp)
	}
	unblock()
	l.syncWG.Wait()
	if rp := readRecoveryPoint(t, pdir); rp != 3 {
		t.Fatalf("recovery point %d after every fsync finished, want 3", rp)
	}
}

// A rolled segment whose background fsync failed must be synced by Close
// before the recovery point moves past it.
func TestCloseSyncsSegmentsWhoseFsyncFailed(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var seg0 *segment.Segment // partition t-0's first segment
	synced, fail := 0, true
	withSyncHook(t, func(s *segment.Segment) error {
		mu.Lock()
		defer mu.Unlock()
		if s == seg0 {
			if fail {
				fail = false
				return errors.New("injected fsync failure")
			}
			synced++
		}
		return s.Sync()
	})
	e := mustOpen(t, dir, quietOpts())
	if err := e.CreateTopic("t", TopicConfig{SegmentBytes: 100}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	mu.Lock()
	seg0 = p.log.(*diskLog).segments()[0]
	mu.Unlock()
	for i := range 3 {
		if _, err := p.Append(simpleBatch(t, 1, 80, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	p.log.(*diskLog).syncWG.Wait()
	if rp := readRecoveryPoint(t, partDir(dir, "t", 0)); rp != 0 {
		t.Fatalf("recovery point %d after segment 0 failed to sync", rp)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fail || synced == 0 {
		t.Fatalf("Close moved the recovery point without syncing segment 0 (injected failure used: %v)", !fail)
	}
	if rp := readRecoveryPoint(t, partDir(dir, "t", 0)); rp != 2 {
		t.Fatalf("recovery point %d after Close, want 2", rp)
	}
}

// A failed fsync is sticky: the append that needed it fails, and so does
// every later append and flush, even if a later fsync would succeed.
func TestFsyncFailureIsSticky(t *testing.T) {
	store := &failingStore{MemoryStore: NewMemoryStore()}
	opts := quietOpts()
	opts.Store = store
	e := mustOpen(t, t.TempDir(), opts)
	if err := e.CreateTopic("t", TopicConfig{FlushMessages: 1}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	if _, err := p.Append(simpleBatch(t, 1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	store.fail.Store(true)
	if _, err := p.Append(simpleBatch(t, 1, 10, 1)); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append with a failing fsync: %v", err)
	}
	store.fail.Store(false)
	if _, err := p.Append(simpleBatch(t, 1, 10, 1)); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after a failed fsync: %v", err)
	}
	if err := p.Flush(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("flush after a failed fsync: %v", err)
	}
	// Reads go on.
	if c, err := p.ReadBatches(0, 1000); err != nil || len(c.Bytes) == 0 {
		t.Fatalf("read after a failed fsync: %v", err)
	}
	// Close reports it, so no clean-shutdown marker vouches for the files.
	if err := e.Close(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Close after a failed fsync: %v", err)
	}
}

type failingStore struct {
	*MemoryStore
	fail atomic.Bool
}

func (s *failingStore) OpenLog(name string, cfg LogConfig, clean bool) (Log, error) {
	l, err := s.MemoryStore.OpenLog(name, cfg, clean)
	return &failingLog{Log: l, fail: &s.fail}, err
}

type failingLog struct {
	Log
	fail *atomic.Bool
}

func (l *failingLog) Sync() error {
	if l.fail.Load() {
		return errors.New("injected fsync failure")
	}
	return l.Log.Sync()
}

// A producer snapshot taken before a crash that cost the log its tail
// describes batches that are gone. It was ignored once, but left on disk;
// after the log grew past its end again, a later open used it, and a retry
// of a lost batch was answered "duplicate" with the offset of another
// batch: silent data loss.
func TestStaleProducerSnapshotIsReplaced(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	var raws [][]byte
	for i := range 5 {
		raw := buildIdem(t, 7, 0, int32(2*i), 2)
		raws = append(raws, bytes.Clone(raw))
		if _, err := p.Append(raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil { // snapshot with end 10
		t.Fatal(err)
	}
	// A machine crash loses the last two batches (and the marker).
	logs := segmentFiles(t, partDir(dir, "t", 0))
	st, _ := os.Stat(logs[0])
	if err := os.Truncate(logs[0], st.Size()-int64(2*len(raws[0]))); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, cleanMarker))
	e = mustOpen(t, dir, quietOpts())
	p, _ = e.Partition("t", 0)
	if p.EndOffset() != 6 {
		t.Fatalf("end offset %d after losing the tail, want 6", p.EndOffset())
	}
	// Another producer carries the log past 10; then the process crashes.
	for i := range 4 {
		if _, err := p.Append(buildIdem(t, 8, 0, int32(2*i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	e.crash()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	p, _ = e.Partition("t", 0)
	// Producer 7 retries its lost fourth batch: it must be stored now.
	end := p.EndOffset()
	res, err := p.Append(raws[3])
	if err != nil || res.Duplicate || res.BaseOffset != end {
		t.Fatalf("retry of a lost batch: %+v, %v; want it appended at %d", res, err, end)
	}
}

// Concurrent appenders with flush.messages=1 share fsyncs, and each append
// returns only once an fsync covered it.
func TestGroupCommit(t *testing.T) {
	var syncs atomic.Int64
	withSyncHook(t, func(s *segment.Segment) error {
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond) // a disk, not a page cache
		return s.Sync()
	})
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{FlushMessages: 1}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("t", 0)
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				res, err := p.Append(simpleBatch(t, 1, 30, 1))
				if err != nil {
					t.Error(err)
					return
				}
				if f := p.flushed.Load(); f <= res.LastOffset {
					t.Errorf("append of %d returned with only %d flushed", res.LastOffset, f)
				}
			}
		}()
	}
	wg.Wait()
	if n := syncs.Load(); n > writers*each/2 {
		t.Fatalf("%d fsyncs for %d appends: no group commit", n, writers*each)
	} else {
		t.Logf("%d fsyncs for %d appends", n, writers*each)
	}
}

// The clean-shutdown marker is removed when an engine opens, so a crash of
// that engine is recovered, and written only by Close.
func TestCleanMarker(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	if _, err := os.Stat(filepath.Join(dir, cleanMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker present while open: %v", err)
	}
	e.Close()
	if _, err := os.Stat(filepath.Join(dir, cleanMarker)); err != nil {
		t.Fatalf("no marker after Close: %v", err)
	}
	e = mustOpen(t, dir, quietOpts())
	if !e.clean {
		t.Fatal("not clean")
	}
	e.crash()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	if e.clean {
		t.Fatal("clean after a crash")
	}
}
