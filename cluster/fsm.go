package cluster

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// maxSnapshotBytes bounds what Restore reads (a snapshot of a million
// partitions is about 100 MB).
const maxSnapshotBytes = 1 << 30

// FSM is the raft state machine of the metadata log: thin wrappers that
// decode each committed entry and apply it to a State, and snapshot and
// restore the State. raft calls Apply, Snapshot and Restore from one
// goroutine; readers use View from any goroutine.
type FSM struct {
	// OnApply, if set, runs after each committed entry, on raft's FSM
	// goroutine with no lock held: index is the raft log index, recs the
	// entry's records, err nil when they applied and the *RejectError (or a
	// decoding error) when they did not. The broker acts on what concerns
	// it here (leadership, local logs). Set it before raft starts.
	OnApply func(index uint64, recs []Record, err error)
	// OnRestore, if set, runs after Restore replaced the state, likewise.
	OnRestore func()

	mu struct {
		sync.RWMutex
		state *State
	}
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM over s (NewState() for a new log).
func NewFSM(s *State) *FSM {
	f := &FSM{}
	f.mu.state = s
	return f
}

// View runs fn with the state under the read lock: fn must not keep s, nor
// modify it; the *Broker, *Topic and *Partition values it reads stay valid
// (they are immutable).
func (f *FSM) View(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.mu.state)
}

// Apply implements raft.FSM: it applies a LogCommand entry (AppendEntry's
// encoding) and returns nil or the error, which raft hands to the
// proposer's ApplyFuture.Response. Other log types are not the FSM's.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	recs, err := DecodeEntry(l.Data)
	if err == nil {
		f.mu.Lock()
		err = f.mu.state.Apply(recs)
		f.mu.Unlock()
	}
	if f.OnApply != nil {
		f.OnApply(l.Index, recs, err)
	}
	if err != nil {
		return err
	}
	return nil
}

// Snapshot implements raft.FSM: it encodes the state now (raft calls it
// between Applies; encoding 10,000 partitions takes milliseconds), and the
// returned snapshot writes those bytes.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	b := f.mu.state.Snapshot()
	f.mu.RUnlock()
	return fsmSnapshot(b), nil
}

// Restore implements raft.FSM: it replaces the state with the snapshot's,
// or leaves it and returns the error.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("cluster: reading snapshot: %w", err)
	}
	if len(b) > maxSnapshotBytes {
		return fmt.Errorf("%w: snapshot larger than %d bytes", ErrCorrupt, maxSnapshotBytes)
	}
	n := NewState()
	if err := n.Restore(b); err != nil {
		return err
	}
	f.mu.Lock()
	f.mu.state = n
	f.mu.Unlock()
	if f.OnRestore != nil {
		f.OnRestore()
	}
	return nil
}

// fsmSnapshot is an encoded State (State.Snapshot).
type fsmSnapshot []byte

// Persist implements raft.FSMSnapshot.
func (b fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return fmt.Errorf("cluster: writing snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (fsmSnapshot) Release() {}
