package cluster

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// TestFSM drives the raft wrappers by hand (no raft running): committed
// entries apply or are rejected with the error as the response, other log
// types are ignored, and a snapshot persisted to raft's in-memory store
// restores an equal state into a new FSM.
func TestFSM(t *testing.T) {
	f := NewFSM(NewState())
	var applied []uint64
	var rejected int
	f.OnApply = func(index uint64, recs []Record, err error) {
		applied = append(applied, index)
		if err != nil {
			rejected++
		}
	}
	var p Policy
	index := uint64(0)
	commit := func(recs []Record) any {
		index++
		return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: AppendEntry(nil, recs)})
	}
	decide := func(recs []Record, err error) []Record {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	var s *State
	view := func() *State { f.View(func(st *State) { s = st }); return s }
	for id := int32(1); id <= 3; id++ {
		info := BrokerInfo{ID: id, Host: "h", Port: 9092}
		if r := commit(decide(p.BrokerJoined(view(), info))); r != nil {
			t.Fatalf("apply: %v", r)
		}
		if r := commit(decide(p.BrokerCaughtUp(view(), id, 1))); r != nil {
			t.Fatalf("apply: %v", r)
		}
	}
	if r := commit(decide(p.CreateTopic(view(), CreateTopicRequest{Name: "t", ID: testID, Partitions: 4, ReplicationFactor: 3}))); r != nil {
		t.Fatalf("apply: %v", r)
	}
	// A rejected entry is the response, and changes nothing.
	before := view().Snapshot()
	r := commit([]Record{FenceBrokerRecord{Broker: 1, Epoch: 5}})
	if err, ok := r.(error); !ok || !errors.Is(err, ErrRejected) {
		t.Fatalf("response %v", r)
	}
	index++
	if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: []byte{9}}); !errors.Is(r.(error), ErrUnsupportedVersion) {
		t.Fatalf("undecodable entry: %v", r)
	}
	index++
	if r := f.Apply(&raft.Log{Index: index, Type: raft.LogNoop}); r != nil {
		t.Fatalf("noop: %v", r)
	}
	if !bytes.Equal(view().Snapshot(), before) {
		t.Fatal("rejected entries changed the state")
	}
	if len(applied) != 9 || rejected != 2 {
		t.Fatalf("OnApply saw %v, %d rejected", applied, rejected)
	}

	// Snapshot, persisted to raft's in-memory store, restores elsewhere.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Apply goes on while the snapshot persists.
	commit(decide(p.BrokerFailed(view(), 2)))
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	g := NewFSM(NewState())
	restored := false
	g.OnRestore = func() { restored = true }
	if err := g.Restore(rc); err != nil {
		t.Fatal(err)
	}
	var got []byte
	g.View(func(s *State) { got = s.Snapshot() })
	if !bytes.Equal(got, before) || !restored {
		t.Fatal("restored state differs from the snapshot's")
	}
	// A corrupt snapshot leaves the FSM as it was.
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("junk")))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt snapshot: %v", err)
	}
	g.View(func(s *State) { got = s.Snapshot() })
	if !bytes.Equal(got, before) {
		t.Fatal("a failed restore changed the state")
	}
}

// failingSink fails its writes.
type failingSink struct{ canceled bool }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }
func (s *failingSink) Close() error              { return nil }
func (s *failingSink) ID() string                { return "x" }
func (s *failingSink) Cancel() error             { s.canceled = true; return nil }

func TestFSMSnapshotPersistFails(t *testing.T) {
	snap, _ := NewFSM(NewState()).Snapshot()
	sink := &failingSink{}
	if err := snap.Persist(sink); err == nil || !sink.canceled {
		t.Fatalf("persist: %v, canceled %v", err, sink.canceled)
	}
}
