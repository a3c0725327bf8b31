package segment

import (
	"fmt"
	"math"

	"github.com/easel-io/easel/record"
)

// Recover scans the whole log, checking every batch (sizes, magic, CRC,
// offsets increasing), rebuilds both indexes from scratch, and truncates the
// log at the first batch that is torn or corrupt. It returns the number of
// bytes cut. It must not run concurrently with appends or reads. It returns
// ErrClosed after Close or Delete and ErrRetired after TruncateTo replaced
// the segment's files.
//
// Recovery reads the log sequentially through a small buffer, so its memory
// use does not depend on the segment size.
func (s *Segment) Recover() (truncated int64, err error) {
	switch {
	case s.closed.Load():
		return 0, ErrClosed
	case s.retired.Load():
		return 0, ErrRetired
	}
	s.idx.Lock()
	if err := s.closeIndexesLocked(); err != nil {
		s.idx.Unlock()
		return 0, err
	}
	// Throw the old indexes away and build new ones while scanning.
	for _, suf := range []string{IndexSuffix, TimeIndexSuffix} {
		if err := removeIfExists(s.path(suf)); err != nil {
			s.idx.Unlock()
			return 0, err
		}
	}
	writable := s.idx.writable
	s.idx.writable = true
	err = s.openIndexesLocked()
	s.idx.Unlock()
	if err != nil {
		return 0, err
	}

	st, err := s.log.Stat()
	if err != nil {
		return 0, fmt.Errorf("segment %s: recover: %w", s.name(), err)
	}
	fileSize := st.Size()
	s.sinceIndex = 0
	s.maxTimestamp.Store(-1)
	next := s.base
	pos := int64(0)
	buf := make([]byte, 0, 64<<10)
	for pos < fileSize {
		n, ok := s.validBatchAt(&buf, pos, fileSize, next)
		if !ok {
			break
		}
		h, _ := record.ParseHeader(buf[:n])
		if err := s.indexBatch(h, pos); err != nil {
			return 0, err
		}
		next = h.LastOffset() + 1
		pos += int64(n)
	}
	if pos < fileSize {
		if err := s.log.Truncate(pos); err != nil {
			return 0, fmt.Errorf("segment %s: recover: truncate: %w", s.name(), err)
		}
		if err := s.log.Sync(); err != nil {
			return 0, fmt.Errorf("segment %s: recover: fsync: %w", s.name(), err)
		}
	}
	s.size.Store(pos)
	s.next.Store(next)
	if !writable {
		// Recovered indexes may soon lie below the recovery point: flush
		// them now (Seal leaves that to Sync).
		if err := s.Seal(); err != nil {
			return 0, err
		}
		if err := s.syncSealedIndexes(); err != nil {
			return 0, err
		}
	}
	return fileSize - pos, nil
}

// validBatchAt reads the batch at pos into *buf and reports its size if it is
// whole, valid, and starts at or after next (offsets only grow).
func (s *Segment) validBatchAt(buf *[]byte, pos, fileSize, next int64) (int, bool) {
	if fileSize-pos < record.HeaderSize {
		return 0, false
	}
	b := (*buf)[:record.HeaderSize]
	if _, err := s.log.ReadAt(b, pos); err != nil {
		return 0, false
	}
	h, err := record.ParseHeader(b)
	if err != nil || pos+int64(h.Size()) > fileSize || h.BaseOffset < next || h.LastOffset()-s.base > math.MaxUint32 {
		return 0, false
	}
	if cap(*buf) < h.Size() {
		*buf = make([]byte, 0, h.Size())
	}
	b = (*buf)[:h.Size()]
	if _, err := s.log.ReadAt(b, pos); err != nil {
		return 0, false
	}
	// A stored batch, not one as produced: compaction leaves batches with
	// fewer records than offsets, or none.
	if _, err := record.ValidateStored(b); err != nil {
		return 0, false
	}
	return h.Size(), true
}
