package record

import (
	"fmt"

	"github.com/easel-io/easel/codec"
)

// attrDeleteHorizon is attributes bit 6: baseTimestamp holds the batch's
// delete horizon (KIP-534), set by log compaction on batches that keep
// tombstones. Frozen: part of the format.
const attrDeleteHorizon = 1 << 6

// DeleteHorizon returns the delete horizon log compaction stored in the
// batch (attributes bit 6; the time in ms after which its tombstones may be
// removed, held in baseTimestamp) and whether there is one.
func (h Header) DeleteHorizon() (int64, bool) {
	if h.Attributes&attrDeleteHorizon == 0 {
		return 0, false
	}
	return h.BaseTimestamp, true
}

// AppendCompacted appends to dst the batch that log compaction leaves of
// the batch whose header is orig when only recs are kept, as Kafka's
// cleaner writes it: the same baseOffset, lastOffsetDelta (so the batch
// still spans its original offsets, holes and all), partitionLeaderEpoch,
// producer id, epoch and baseSequence (so producer state rebuilt from the
// log is unchanged), the same attributes and codec; recs keep their offsets
// and timestamps (Record.Offset and Record.Timestamp are absolute, in
// increasing offset order within orig's range). With horizon >= 0 the batch
// gets the delete horizon horizon (see DeleteHorizon): it becomes
// baseTimestamp and record timestamps are written relative to it, so that
// readers still compute each record's own timestamp. maxTimestamp is that of
// the kept records (orig's for a LogAppendTime batch).
//
// With no recs the batch is empty (recordCount 0, no records, uncompressed,
// orig's timestamps): Kafka keeps such batches so that offsets and producer
// state survive. The result passes ValidateStored.
func AppendCompacted(dst []byte, orig Header, recs []Record, horizon int64) ([]byte, error) {
	h := orig
	h.RecordCount = int32(len(recs))
	h.Attributes &^= attrDeleteHorizon
	if len(recs) == 0 {
		h.Attributes &^= attrCodecMask
		start := len(dst)
		dst = append(dst, make([]byte, HeaderSize)...)
		putHeader(dst[start:], h)
		return dst, nil
	}
	if int64(len(recs)) > int64(orig.LastOffsetDelta)+1 {
		return dst, fmt.Errorf("%w: %d records kept of a batch spanning %d offsets", ErrInvalid, len(recs), int64(orig.LastOffsetDelta)+1)
	}
	h.BaseTimestamp = recs[0].Timestamp
	if horizon >= 0 {
		h.BaseTimestamp = horizon
		h.Attributes |= attrDeleteHorizon
	}
	if !orig.LogAppendTime() {
		h.MaxTimestamp = recs[0].Timestamp
	}
	var raw []byte
	prev := orig.BaseOffset - 1
	for i := range recs {
		r := &recs[i]
		if r.Offset <= prev || r.Offset > orig.LastOffset() {
			return dst, fmt.Errorf("%w: kept record offset %d after %d, batch [%d, %d]", ErrInvalid, r.Offset, prev, orig.BaseOffset, orig.LastOffset())
		}
		prev = r.Offset
		if !orig.LogAppendTime() {
			h.MaxTimestamp = max(h.MaxTimestamp, r.Timestamp)
		}
		var err error
		if raw, err = appendRecord(raw, r, r.Timestamp-h.BaseTimestamp, r.Offset-orig.BaseOffset); err != nil {
			return dst, err
		}
	}
	c, err := codec.ByID(orig.Codec())
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	start := len(dst)
	out := append(dst, make([]byte, HeaderSize)...)
	out, err = c.AppendEncode(out, raw)
	if err != nil {
		return dst[:start], fmt.Errorf("record: compress %s: %w", c.Name(), err)
	}
	if len(out)-start-LogOverhead > maxBatchLength {
		return dst[:start], fmt.Errorf("%w: batch of %d bytes", ErrInvalid, len(out)-start)
	}
	putHeader(out[start:], h)
	return out, nil
}
