package engine

import (
	"fmt"
	"math"
	"sync"

	"github.com/easel-io/easel/record"
)

// What Append does to a valid batch because of the topic's settings, before
// it is stored: the timestamp bounds of KIP-937 and compression.type. Both
// cost nothing with Kafka's defaults (no bounds, "producer"): the batch is
// stored byte for byte as produced. With a bound set, the records of every
// CreateTime batch are decoded (decompressed) to check each timestamp; with
// a codec set, a batch in another codec is rebuilt in it.

// iterPool holds record iterators for the checks below; each keeps its
// decompression buffer (up to the largest batch it decompressed) between
// uses.
var iterPool = sync.Pool{New: func() any { return record.NewIterator(nil, record.DefaultMaxDecompressed) }}

// checkTimestamps refuses a CreateTime batch holding a record whose
// timestamp is more than before ms older or after ms newer than now
// (ErrInvalidTimestamp). LogAppendTime topics are stamped by the broker and
// not checked, as in Kafka.
func checkTimestamps(batch []byte, h record.Header, cfg *TopicConfig, nowMs int64) error {
	if cfg.LogAppendTime {
		return nil
	}
	before, after := cfg.TimestampBounds()
	if before == math.MaxInt64 && after == math.MaxInt64 {
		return nil
	}
	bad := func(ts int64) bool {
		return (before != math.MaxInt64 && ts < nowMs-before) || (after != math.MaxInt64 && ts > nowMs+after)
	}
	if h.LogAppendTime() {
		// A producer's batch never has the bit; if one does, its records
		// all carry maxTimestamp.
		if bad(h.MaxTimestamp) {
			return fmt.Errorf("%w: %d is out of [now-%d, now+%d]", ErrInvalidTimestamp, h.MaxTimestamp, before, after)
		}
		return nil
	}
	it := iterPool.Get().(*record.Iterator)
	defer iterPool.Put(it)
	it.Reset(batch)
	for it.Next() {
		if ts := it.Record().Timestamp; bad(ts) {
			return fmt.Errorf("%w: record timestamp %d is out of [now-%d, now+%d] ms (message.timestamp.before/after.max.ms)",
				ErrInvalidTimestamp, ts, before, after)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("engine: append: %w", err)
	}
	return nil
}

// recompress returns batch rebuilt with the codec of id to (see
// compression.type): the same records, timestamps, producer id, epoch and
// sequence, with a new CRC. It returns batch itself when it is already in
// that codec.
func recompress(batch []byte, h record.Header, to int8) ([]byte, error) {
	if to < 0 || h.Codec() == to {
		return batch, nil
	}
	b := builderPool.Get().(*record.Builder)
	defer builderPool.Put(b)
	b.Reset(record.BuilderOptions{
		Codec:                to,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		BaseSequence:         h.BaseSequence,
		Transactional:        h.Transactional(),
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
	})
	it := iterPool.Get().(*record.Iterator)
	defer iterPool.Put(it)
	it.Reset(batch)
	for it.Next() {
		b.Add(*it.Record())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("engine: append: %w", err)
	}
	out, err := b.AppendTo(make([]byte, 0, len(batch)))
	if err != nil {
		return nil, fmt.Errorf("engine: re-compress for compression.type: %w", err)
	}
	record.SetBaseOffset(out, h.BaseOffset)
	return out, nil
}
