package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/easel-io/easel/record"
)

// producerWindow is how many recent batches per producer are remembered for
// deduplication; Kafka clients keep at most 5 requests in flight.
const producerWindow = 5

// Producer snapshots are state files holding a partition's idempotent
// producer state as of an offset, named by it: "<20-digit endOffset>.snapshot"
// (as Kafka names them), one per segment roll and one at close, the newest
// keepSnapshots kept. Layout (big-endian), frozen:
//
//	"EPS1" | endOffset int64 | count uint32 |
//	count × [producerID int64 | epoch int16 | n uint8 | n × [firstSeq int32 | lastSeq int32 | baseOffset int64]] |
//	xxhash64 of all preceding bytes, uint64
//
// endOffset is the log end offset the state reflects; batches from there on
// are replayed from the log when the partition opens, and after a
// truncation from the newest snapshot at or below the new end.
const (
	snapshotSuffix = ".snapshot"
	keepSnapshots  = 20
	// legacySnapshotName is the single snapshot file of earlier versions,
	// read once and replaced.
	legacySnapshotName = "producers.snapshot"
)

func snapshotName(end int64) string { return fmt.Sprintf("%020d", end) + snapshotSuffix }

// snapshotEnds lists the offsets of the snapshots on disk, ascending.
func (p *Partition) snapshotEnds() ([]int64, error) {
	names, err := p.log.States(snapshotSuffix)
	if err != nil {
		return nil, err
	}
	var ends []int64
	for _, n := range names {
		stem := strings.TrimSuffix(n, snapshotSuffix)
		if v, err := strconv.ParseInt(stem, 10, 64); err == nil && len(stem) == 20 && v >= 0 {
			ends = append(ends, v)
		}
	}
	slices.Sort(ends)
	return ends, nil
}

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

// saveSnapshot writes data, the producer state as of end, unless the newest
// snapshot on disk is of end already, and prunes the oldest beyond
// keepSnapshots. Without sync, the write is not fsynced: a snapshot lost in
// a machine crash only means a longer replay, and one that is torn fails
// its checksum.
func (p *Partition) saveSnapshot(data []byte, end int64, sync bool) error {
	p.snap.Lock()
	defer p.snap.Unlock()
	if p.snap.end == end {
		return nil
	}
	// Roll snapshots are written in the background and may land out of
	// order: an older one is still written, for truncations below the
	// newer.
	if err := p.log.SaveState(snapshotName(end), data, sync); err != nil {
		return err
	}
	p.snap.end = max(p.snap.end, end)
	ends, err := p.snapshotEnds()
	for i := 0; err == nil && i+keepSnapshots < len(ends); i++ {
		err = p.log.RemoveState(snapshotName(ends[i]))
	}
	return err
}

// dropSnapshotsAfter removes the snapshots past end (the log was cut
// there), durably: one left behind would be taken as valid once appends
// carry the log past its end again.
func (p *Partition) dropSnapshotsAfter(end int64) error {
	p.snap.Lock()
	defer p.snap.Unlock()
	ends, err := p.snapshotEnds()
	if err != nil {
		return err
	}
	p.snap.end = -1
	for _, e := range ends {
		if e > end {
			if err := p.log.RemoveState(snapshotName(e)); err != nil {
				return err
			}
		} else {
			p.snap.end = e
		}
	}
	return nil
}

// loadProducers restores producer state: the newest usable snapshot at or
// below the log end, then every batch header after it (from the log start
// when there is none). Snapshots past the log end (the log lost its tail)
// are removed.
func (p *Partition) loadProducers() error {
	// Batches below the log start that are still in the log (DeleteRecords
	// moves the start inside a segment) still count for producer state.
	start, next := p.log.StartOffset(), p.log.NextOffset()
	if segs := p.log.Segments(); len(segs) > 0 {
		start = min(start, segs[0].BaseOffset)
	}
	if err := p.dropSnapshotsAfter(next); err != nil {
		return err
	}
	ends, err := p.snapshotEnds()
	if err != nil {
		return err
	}
	from, usable := start, false
	for i := len(ends) - 1; i >= 0 && !usable; i-- {
		b, err := p.log.LoadState(snapshotName(ends[i]))
		if err != nil {
			return err
		}
		var st producerState
		end, uerr := st.unmarshal(b)
		if uerr != nil || end != ends[i] {
			p.e.log.Warn("ignoring producer snapshot", "topic", p.topic, "partition", p.id, "end", ends[i], "err", uerr)
			continue
		}
		// A snapshot below the first batch still holds producers whose
		// batches retention removed; replay goes on from the first batch.
		p.mu.producers, from, usable = st, max(end, start), true
	}
	legacy, err := p.log.LoadState(legacySnapshotName)
	if err != nil {
		return err
	}
	if legacy != nil && !usable {
		var st producerState
		if end, uerr := st.unmarshal(legacy); uerr == nil && end <= next {
			p.mu.producers, from, usable = st, max(end, start), true
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
	if from < next || legacy != nil {
		// Save what the replay found, so the next open does not replay it.
		if err := p.saveSnapshot(p.mu.producers.marshal(next), next, legacy != nil); err != nil {
			return fmt.Errorf("engine: producer snapshot of %s/%d: %w", p.topic, p.id, err)
		}
	}
	if legacy != nil {
		if err := p.log.RemoveState(legacySnapshotName); err != nil {
			return fmt.Errorf("engine: producer snapshot of %s/%d: %w", p.topic, p.id, err)
		}
	}
	return nil
}
