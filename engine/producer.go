package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/cespare/xxhash/v2"

	"github.com/easel-io/easel/record"
)

// producerWindow is how many recent batches per producer are remembered for
// deduplication; Kafka clients keep at most 5 requests in flight.
const producerWindow = 5

// producerSnapshotName is the state file holding a partition's idempotent
// producer state. Layout (big-endian), frozen:
//
//	"EPS1" | endOffset int64 | count uint32 |
//	count × [producerID int64 | epoch int16 | n uint8 | n × [firstSeq int32 | lastSeq int32 | baseOffset int64]] |
//	xxhash64 of all preceding bytes, uint64
//
// endOffset is the log end offset the state reflects; batches from there on
// are replayed from the log when the partition opens.
const producerSnapshotName = "producers.snapshot"

var snapshotMagic = [4]byte{'E', 'P', 'S', '1'}

type batchMeta struct {
	firstSeq, lastSeq int32
	offset            int64
}

type producerEntry struct {
	epoch  int16
	n      int // valid entries in recent, newest last
	recent [producerWindow]batchMeta
}

// producerState tracks, per producer id, its epoch and last batches.
type producerState struct {
	m map[int64]*producerEntry
}

// check decides what to do with an idempotent batch: a duplicate of a
// remembered batch (returns its original base offset and true), acceptable
// (false, nil), or an error.
func (s *producerState) check(h record.Header) (int64, bool, error) {
	e := s.m[h.ProducerID]
	if e == nil || e.n == 0 {
		return 0, false, nil // no state: accept any sequence
	}
	switch {
	case h.ProducerEpoch < e.epoch:
		return 0, false, fmt.Errorf("%w: %d < %d for producer %d", ErrInvalidProducerEpoch, h.ProducerEpoch, e.epoch, h.ProducerID)
	case h.ProducerEpoch > e.epoch:
		if h.BaseSequence != 0 {
			return 0, false, fmt.Errorf("%w: new epoch %d of producer %d starts at sequence %d, not 0", ErrOutOfOrderSequence, h.ProducerEpoch, h.ProducerID, h.BaseSequence)
		}
		return 0, false, nil
	}
	last := h.LastSequence()
	for _, b := range e.recent[:e.n] {
		if b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b.offset, true, nil
		}
	}
	prev := e.recent[e.n-1].lastSeq
	want := prev + 1
	if prev == math.MaxInt32 {
		want = 0
	}
	if h.BaseSequence != want {
		return 0, false, fmt.Errorf("%w: producer %d sent %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence, want)
	}
	return 0, false, nil
}

// update records an appended batch (BaseOffset already assigned).
func (s *producerState) update(h record.Header) {
	if s.m == nil {
		s.m = make(map[int64]*producerEntry)
	}
	e := s.m[h.ProducerID]
	if e == nil {
		e = &producerEntry{}
		s.m[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.epoch {
		e.epoch, e.n = h.ProducerEpoch, 0
	}
	if h.BaseSequence < 0 {
		return // not idempotent: only the epoch is tracked
	}
	if e.n == producerWindow {
		copy(e.recent[:], e.recent[1:])
		e.n--
	}
	e.recent[e.n] = batchMeta{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), offset: h.BaseOffset}
	e.n++
}

func (s *producerState) marshal(endOffset int64) []byte {
	ids := make([]int64, 0, len(s.m))
	for id := range s.m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := append([]byte(nil), snapshotMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(endOffset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := s.m[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = append(b, byte(e.n))
		for _, m := range e.recent[:e.n] {
			b = binary.BigEndian.AppendUint32(b, uint32(m.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.offset))
		}
	}
	return binary.BigEndian.AppendUint64(b, xxhash.Sum64(b))
}

var errBadSnapshot = errors.New("engine: corrupt producer snapshot")

func (s *producerState) unmarshal(b []byte) (int64, error) {
	if len(b) < 4+8+4+8 || [4]byte(b[:4]) != snapshotMagic {
		return 0, errBadSnapshot
	}
	body, sum := b[:len(b)-8], binary.BigEndian.Uint64(b[len(b)-8:])
	if xxhash.Sum64(body) != sum {
		return 0, errBadSnapshot
	}
	end := int64(binary.BigEndian.Uint64(body[4:]))
	count := binary.BigEndian.Uint32(body[12:])
	r := body[16:]
	s.m = make(map[int64]*producerEntry)
	for range count {
		if len(r) < 11 {
			return 0, errBadSnapshot
		}
		id := int64(binary.BigEndian.Uint64(r))
		e := &producerEntry{epoch: int16(binary.BigEndian.Uint16(r[8:])), n: int(r[10])}
		r = r[11:]
		if e.n > producerWindow || len(r) < 16*e.n {
			return 0, errBadSnapshot
		}
		for i := range e.n {
			e.recent[i] = batchMeta{
				firstSeq: int32(binary.BigEndian.Uint32(r)),
				lastSeq:  int32(binary.BigEndian.Uint32(r[4:])),
				offset:   int64(binary.BigEndian.Uint64(r[8:])),
			}
			r = r[16:]
		}
		s.m[id] = e
	}
	if len(r) != 0 {
		return 0, errBadSnapshot
	}
	return end, nil
}

// saveSnapshot writes data, the producer state as of end, unless a
// snapshot as new is already on disk. Without sync, the write is not
// fsynced: a snapshot lost in a machine crash only means a longer replay,
// and one that is torn fails its checksum.
func (p *Partition) saveSnapshot(data []byte, end int64, sync bool) error {
	p.snap.Lock()
	defer p.snap.Unlock()
	if p.snap.end >= end {
		return nil
	}
	if err := p.log.SaveState(producerSnapshotName, data, sync); err != nil {
		return err
	}
	p.snap.end = end
	return nil
}

// loadProducers restores producer state: the snapshot, then every batch
// header after it (all of the log when there is no usable snapshot).
func (p *Partition) loadProducers() error {
	start, next := p.log.StartOffset(), p.log.NextOffset()
	from := start
	b, err := p.log.LoadState(producerSnapshotName)
	if err != nil {
		return err
	}
	usable := false
	if b != nil {
		var st producerState
		end, uerr := st.unmarshal(b)
		switch {
		case uerr != nil:
			p.e.log.Warn("ignoring producer snapshot", "topic", p.topic, "partition", p.id, "err", uerr)
		case end > next:
			// The log lost its tail in a crash after the snapshot was
			// taken. The snapshot must go: once appends carry the log past
			// end again, it would describe batches that are not there.
			p.e.log.Warn("ignoring producer snapshot past the log end", "topic", p.topic, "partition", p.id, "snapshot_end", end, "log_end", next)
		case end < start:
			// Retention removed batches the snapshot already covers, and
			// the ones it does not cover: rebuild from what is left.
		default:
			p.mu.producers, from, usable = st, end, true
			p.snap.end = end
		}
	}
	err = p.eachBatch(from, next, func(h record.Header) error {
		if h.ProducerID >= 0 {
			p.mu.producers.update(h)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: rebuild producer state of %s/%d: %w", p.topic, p.id, err)
	}
	if !usable && next > start {
		// Replace a stale or missing snapshot at once (durably when a stale
		// one is on disk), so that neither a later open nor a later crash
		// finds it.
		if err := p.log.SaveState(producerSnapshotName, p.mu.producers.marshal(next), b != nil); err != nil {
			return fmt.Errorf("engine: producer snapshot of %s/%d: %w", p.topic, p.id, err)
		}
		p.snap.end = next
	}
	return nil
}
