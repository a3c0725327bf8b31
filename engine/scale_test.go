package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestTenThousandPartitions creates 100 topics of 100 partitions, appends
// one batch to each, closes, reopens and reads everything back, logging the
// time of each step and what the open engine holds (descriptors and
// mappings, counted by the engine and by /proc).
func TestTenThousandPartitions(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("10,000 partitions: skipped with -short and -race")
	}
	const topics, parts = 100, 100
	dir := t.TempDir()
	fds0 := openFDs(t)
	t0 := time.Now()
	e := mustOpen(t, dir, quietOpts())
	for i := range topics {
		if err := e.CreateTopic(fmt.Sprintf("t%03d", i), TopicConfig{Partitions: parts}); err != nil {
			t.Fatalf("create topic %d: %v", i, err)
		}
	}
	create := time.Since(t0)
	t0 = time.Now()
	// Appends come from many goroutines, as from a broker's connections.
	tps := make([]TopicPartition, 0, topics*parts)
	for i := range topics {
		for j := range int32(parts) {
			tps = append(tps, TopicPartition{fmt.Sprintf("t%03d", i), j})
		}
	}
	stored := make([][]byte, len(tps))
	for i := range stored {
		stored[i] = simpleBatch(t, 1, 100, int64(1000+i))
	}
	err := parallel(len(tps), func(i int) error {
		p, err := e.Partition(tps[i].Topic, tps[i].Partition)
		if err == nil {
			_, err = p.Append(stored[i]) // stored[i] becomes the stored bytes
		}
		return err
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	appendTook := time.Since(t0)
	batches := make(map[TopicPartition][]byte, len(tps))
	for i, tp := range tps {
		batches[tp] = stored[i]
	}
	st := e.Stats()
	t.Logf("created %d partitions in %v, appended in %v; open engine: %+v, /proc: %d fds, %d mappings of data files",
		st.Partitions, create.Round(time.Millisecond), appendTook.Round(time.Millisecond), st, openFDs(t)-fds0, countMappings(t, dir))
	t0 = time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	closeTook := time.Since(t0)
	if n := openFDs(t); n > fds0 {
		t.Fatalf("%d descriptors left open after Close", n-fds0)
	}

	t0 = time.Now()
	e = mustOpen(t, dir, quietOpts())
	reopen := time.Since(t0)
	st = e.Stats()
	fds, maps := openFDs(t)-fds0, countMappings(t, dir)
	t.Logf("closed in %v; reopened in %v: %+v, /proc: %d fds, %d mappings of data files",
		closeTook.Round(time.Millisecond), reopen.Round(time.Millisecond), st, fds, maps)
	if st.Partitions != topics*parts {
		t.Fatalf("%d partitions after reopen", st.Partitions)
	}
	// One descriptor per segment and nothing else of note: well under the
	// 20,000 the build machine allows.
	if fds > st.Segments+50 || st.OpenFiles != st.Segments {
		t.Fatalf("%d descriptors (engine counts %d) for %d segments", fds, st.OpenFiles, st.Segments)
	}
	if maps != st.MappedFiles {
		t.Errorf("engine counts %d mappings, /proc shows %d", st.MappedFiles, maps)
	}

	t0 = time.Now()
	for tp, want := range batches {
		p, err := e.Partition(tp.Topic, tp.Partition)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.ReadBatches(0, 1<<20)
		if err != nil || !bytes.Equal(c.Bytes, want) {
			t.Fatalf("%v: read %d bytes, %v", tp, len(c.Bytes), err)
		}
		c.Release()
	}
	readTook := time.Since(t0)
	t.Logf("read back in %v; /proc: %d fds, %d mappings of data files", readTook.Round(time.Millisecond), openFDs(t)-fds0, countMappings(t, dir))

	// A crash, and recovery of every partition.
	e.crash()
	if n := openFDs(t); n > fds0 {
		t.Fatalf("%d descriptors left open after a crash", n-fds0)
	}
	t0 = time.Now()
	e = mustOpen(t, dir, quietOpts())
	st = e.Stats()
	t.Logf("reopened after a crash in %v: %+v", time.Since(t0).Round(time.Millisecond), st)
	if st.Recovered != st.Segments {
		t.Fatalf("%d of %d segments recovered after a crash", st.Recovered, st.Segments)
	}
	for tp, want := range batches {
		p, _ := e.Partition(tp.Topic, tp.Partition)
		c, err := p.ReadBatches(0, 1<<20)
		if err != nil || !bytes.Equal(c.Bytes, want) {
			t.Fatalf("%v after recovery: read %d bytes, %v", tp, len(c.Bytes), err)
		}
		c.Release()
	}
	t0 = time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed again in %v", time.Since(t0).Round(time.Millisecond))
	if n := openFDs(t); n > fds0 {
		t.Fatalf("%d descriptors left open after Close", n-fds0)
	}
}
