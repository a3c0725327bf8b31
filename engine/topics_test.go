package engine

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func strays(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), straySuffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestTopicIDs(t *testing.T) {
	id := NewTopicID()
	if id.IsZero() || id.String()[0] == '-' || len(id.String()) != 22 {
		t.Fatalf("bad id %q", id)
	}
	back, err := ParseTopicID(id.String())
	if err != nil || back != id {
		t.Fatalf("parse: %v %v", back, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 23), "!!!!!!!!!!!!!!!!!!!!!!"} {
		if _, err := ParseTopicID(bad); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
	if m, err := parsePartitionMeta(partitionMeta(id)); err != nil || m != id {
		t.Fatalf("partition.metadata round trip: %v %v", m, err)
	}
}

// A log on disk that no metadata names is set aside with its data, never
// deleted; a log of an older topic of the same name too.
func TestLogsSetAsideNotDeleted(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	for _, n := range []string{"keep", "orphan", "recreated"} {
		if err := e.CreateTopic(n, TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		p, _ := e.Partition(n, 0)
		p.Append(simpleBatch(t, 2, 10, 1))
	}
	ti, _ := e.Topic("recreated")
	e.Close()
	os.Remove(filepath.Join(dir, metaDir, "orphan.json"))
	// The topic was deleted and recreated while this node was away: its
	// metadata has a new id, the partition directory the old one.
	var m topicMeta
	b, _ := os.ReadFile(filepath.Join(dir, metaDir, "recreated.json"))
	json.Unmarshal(b, &m)
	m.ID = NewTopicID()
	b, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(dir, metaDir, "recreated.json"), b, 0o644)

	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	if _, err := e.Topic("orphan"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("orphan: %v", err)
	}
	p, _ := e.Partition("recreated", 0)
	if p.EndOffset() != 0 {
		t.Fatalf("recreated topic serves the old topic's data (end %d)", p.EndOffset())
	}
	if k, _ := e.Partition("keep", 0); k.EndOffset() != 2 {
		t.Fatal("kept topic lost data")
	}
	got := strays(t, dir)
	if len(got) != 2 {
		t.Fatalf("set aside %v", got)
	}
	for _, s := range got {
		if strings.HasPrefix(s, "recreated-0.") && !strings.Contains(s, ti.ID.String()) {
			t.Errorf("stray %s does not name the old id %s", s, ti.ID)
		}
		if segs := segmentFiles(t, filepath.Join(dir, s)); len(segs) == 0 {
			t.Errorf("stray %s lost its segments", s)
		}
	}
}

// Metadata written before topics had ids gets one, kept across reopens.
func TestLegacyTopicGetsID(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, quietOpts())
	e.CreateTopic("t", TopicConfig{})
	p, _ := e.Partition("t", 0)
	p.Append(simpleBatch(t, 2, 10, 1))
	e.Close()
	b, _ := os.ReadFile(filepath.Join(dir, metaDir, "t.json"))
	var raw map[string]json.RawMessage
	json.Unmarshal(b, &raw)
	delete(raw, "id")
	b, _ = json.Marshal(raw)
	os.WriteFile(filepath.Join(dir, metaDir, "t.json"), b, 0o644)
	os.Remove(filepath.Join(partDir(dir, "t", 0), partitionMetaName))
	e = mustOpen(t, dir, quietOpts())
	ti, _ := e.Topic("t")
	if ti.ID.IsZero() {
		t.Fatal("no id assigned")
	}
	e.Close()
	e = mustOpen(t, dir, quietOpts())
	defer e.Close()
	ti2, _ := e.Topic("t")
	p, _ = e.Partition("t", 0)
	if ti2.ID != ti.ID || p.EndOffset() != 2 || len(strays(t, dir)) != 0 {
		t.Fatalf("id %s then %s, end %d, strays %v", ti.ID, ti2.ID, p.EndOffset(), strays(t, dir))
	}
}

func TestHostedPartitions(t *testing.T) {
	dir := t.TempDir()
	opts := quietOpts()
	opts.ExternalMetadata = true
	e := mustOpen(t, dir, opts)
	if err := e.CreateTopic("x", TopicConfig{}); !errors.Is(err, ErrExternalMetadata) {
		t.Fatalf("CreateTopic: %v", err)
	}
	info := TopicInfo{Name: "t", ID: NewTopicID(), Config: TopicConfig{Partitions: 4}}
	for _, part := range []int32{1, 3} {
		p, err := e.HostPartition(info, part)
		if err != nil {
			t.Fatal(err)
		}
		p.Append(simpleBatch(t, 1, 10, 1))
	}
	if _, err := e.Partition("t", 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("unhosted partition: %v", err)
	}
	if _, err := e.HostPartition(TopicInfo{Name: "t", ID: NewTopicID(), Config: info.Config}, 0); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("other id: %v", err)
	}
	if p, err := e.PartitionByID(info.ID, 3); err != nil || p.ID() != 3 {
		t.Fatalf("by id: %v", err)
	}
	if err := e.StopHosting("t", 3, false); err != nil {
		t.Fatal(err)
	}
	e.Close()
	// Reopen: nothing is hosted until the owner says so; unclaimed logs stay
	// until SetAsideUnhosted.
	e = mustOpen(t, dir, opts)
	defer e.Close()
	if len(e.Topics()) != 0 {
		t.Fatalf("topics at open: %v", e.Topics())
	}
	p, err := e.HostPartition(info, 1)
	if err != nil || p.EndOffset() != 1 {
		t.Fatalf("rehost: %v", err)
	}
	if n, err := e.SetAsideUnhosted(); err != nil || n != 1 {
		t.Fatalf("SetAsideUnhosted = %d, %v", n, err)
	}
	if p, _ := e.HostPartition(info, 3); p.EndOffset() != 0 {
		t.Fatal("set-aside log came back")
	}
	if err := e.StopHosting("t", 1, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partDir(dir, "t", 1)); !os.IsNotExist(err) {
		t.Fatalf("deleted log still there: %v", err)
	}
}

// Concurrent creates of one name: exactly one wins; lookups never wait for
// another topic's file I/O.
func TestConcurrentCreateDelete(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.CreateTopic("t", TopicConfig{Partitions: 20})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTopicExists), errors.Is(err, ErrTopicBusy):
		default:
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates succeeded", ok)
	}
	if err := e.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatalf("recreate after delete: %v", err)
	}
}
