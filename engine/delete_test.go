package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/easel-io/easel/segment"
)

// Deleting a topic (DeleteTopic) or a hosted partition with its data
// (StopHosting, deleteData) fsyncs none of the data it removes, as Kafka
// renames and deletes without a flush; closing the same dirty data instead
// fsyncs it (the control: the hook does see the close path's fsyncs).
func TestDeleteDoesNotSyncData(t *testing.T) {
	var syncs atomic.Int64
	withSyncHook(t, func(s *segment.Segment) error {
		syncs.Add(1)
		return s.Sync()
	})
	info := TopicInfo{Name: "t", ID: NewTopicID(), Config: TopicConfig{Partitions: 1}}
	tests := []struct {
		name     string
		external bool // Options.ExternalMetadata: partitions hosted by the cluster
	}{
		{"DeleteTopic", false},
		{"StopHosting", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := quietOpts()
			opts.ExternalMetadata = tc.external
			e := mustOpen(t, dir, opts)
			defer e.Close()
			open := func(name string) *Partition {
				t.Helper()
				in := info
				in.Name, in.ID = name, NewTopicID()
				if tc.external {
					p, err := e.HostPartition(in, 0)
					if err != nil {
						t.Fatal(err)
					}
					return p
				}
				if err := e.CreateTopic(name, in.Config); err != nil {
					t.Fatal(err)
				}
				p, err := e.Partition(name, 0)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			fill := func(p *Partition) {
				t.Helper()
				for range 20 {
					if _, err := p.Append(simpleBatch(t, 10, 1000, 1)); err != nil {
						t.Fatal(err)
					}
				}
			}
			fill(open("t"))
			syncs.Store(0)
			var err error
			if tc.external {
				err = e.StopHosting("t", 0, true)
			} else {
				err = e.DeleteTopic("t")
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := syncs.Load(); n != 0 {
				t.Errorf("%s fsynced %d segments of the data it deleted", tc.name, n)
			}
			if _, err := os.Stat(partDir(dir, "t", 0)); !os.IsNotExist(err) {
				t.Errorf("deleted log still there: %v", err)
			}
			fill(open("u"))
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if syncs.Load() == 0 {
				t.Error("closing dirty data fsynced nothing: the hook does not see the close path")
			}
		})
	}
}

// A crash in the middle of a deletion leaves the partition directory
// renamed to "<name>.<nanos>-delete" with part of its files (RemoveLog
// renames first, durably, then removes), after the topic's metadata is
// gone: the next Open removes what is left, sets nothing aside, and serves
// the other topics. A crash before the rename leaves a log that no
// metadata names, which Open sets aside (TestLogsSetAsideNotDeleted).
func TestOpenAfterCrashMidDelete(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	for _, name := range []string{"gone", "keep"} {
		if err := e.CreateTopic(name, TopicConfig{Partitions: 2}); err != nil {
			t.Fatal(err)
		}
		for part := range int32(2) {
			p, _ := e.Partition(name, part)
			if _, err := p.Append(simpleBatch(t, 5, 100, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.crash() // unclean: no marker, nothing fsynced
	// Where DeleteTopic("gone") stood at the crash: metadata removed,
	// partition 0 renamed and half removed, partition 1 renamed only.
	if err := os.Remove(filepath.Join(dir, metaDir, "gone.json")); err != nil {
		t.Fatal(err)
	}
	for part := range int32(2) {
		half := fmt.Sprintf("%s.%d%s", partDir(dir, "gone", part), 1234+part, deleteSuffix)
		if err := os.Rename(partDir(dir, "gone", part), half); err != nil {
			t.Fatal(err)
		}
		if part == 0 {
			segs := segmentFiles(t, half)
			if len(segs) == 0 {
				t.Fatal("no segment to remove")
			}
			if err := os.Remove(segs[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	if _, err := e.Topic("gone"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("deleted topic: %v", err)
	}
	for part := range int32(2) {
		if p, err := e.Partition("keep", part); err != nil || p.EndOffset() != 5 {
			t.Errorf("keep/%d: %v", part, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if strings.HasSuffix(ent.Name(), deleteSuffix) {
			t.Errorf("left in the data directory: %s", ent.Name())
		}
	}
	if s := strays(t, dir); len(s) != 0 {
		t.Errorf("set aside %v", s)
	}
}

// BenchmarkDeleteTopic deletes a topic of one partition holding size bytes
// appended without a flush (dirty in the page cache). Deletion does not
// fsync them, so its time should not grow with size as a write-back would
// (about 1 GB/s on the build machine's disk).
func BenchmarkDeleteTopic(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("dirty=%dMiB", size>>20), func(b *testing.B) {
			e := mustOpen(b, b.TempDir(), quietOpts())
			defer e.Close()
			batch := simpleBatch(b, 64, 1000, 1) // ~64 KiB
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				name := fmt.Sprintf("t%d", i)
				if err := e.CreateTopic(name, TopicConfig{}); err != nil {
					b.Fatal(err)
				}
				p, _ := e.Partition(name, 0)
				for n := 0; n < size; n += len(batch) {
					if _, err := p.Append(batch); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if err := e.DeleteTopic(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
