package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/easel-io/easel/codec"
)

// BuilderOptions set the batch-level fields of the batches a Builder writes.
// The zero value builds an uncompressed, non-idempotent, non-transactional
// batch with partitionLeaderEpoch 0.
type BuilderOptions struct {
	// Codec is the compression codec id (codec.None, codec.Gzip, ...).
	// Default 0: no compression. AppendTo fails if no codec is registered
	// under it.
	Codec int8
	// ProducerID, ProducerEpoch and BaseSequence identify an idempotent
	// producer and the sequence number of the batch's first record; they are
	// written as given. ProducerID 0 means "no producer": the batch then gets
	// producerId, producerEpoch and baseSequence -1 whatever the other two
	// fields say, which is what Kafka expects from a non-idempotent producer
	// and what the zero value should mean. Easel therefore never hands out
	// producer id 0.
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	// Transactional sets attributes bit 4. It needs a ProducerID.
	Transactional bool
	// PartitionLeaderEpoch is written as given. Producers send -1; a broker
	// overwrites it with SetPartitionLeaderEpoch. Default 0.
	PartitionLeaderEpoch int32
}

// Builder accumulates records and writes them as one batch. It encodes each
// record as it is added, so Add copies what it needs and the caller may reuse
// the Record's slices at once. A Builder reused with Reset, writing into a dst
// with enough capacity, does not allocate (compression codecs may, on their
// own account). The zero value is unusable; use NewBuilder. A Builder is not
// safe for concurrent use.
type Builder struct {
	opts     BuilderOptions
	recs     []byte // encoded records, uncompressed
	n        int    // records added
	baseTime int64  // timestamp of the first record
	maxTime  int64  // largest timestamp added
	err      error  // sticky: a record or batch too big to encode
}

// NewBuilder returns an empty Builder for batches with opts.
func NewBuilder(opts BuilderOptions) *Builder {
	b := &Builder{}
	b.Reset(opts)
	return b
}

// Reset empties the Builder and sets new options, keeping its buffer.
func (b *Builder) Reset(opts BuilderOptions) {
	*b = Builder{opts: opts, recs: b.recs[:0]}
}

// Len returns the number of records added since the last Reset.
func (b *Builder) Len() int { return b.n }

// Size returns the size the batch would have uncompressed: HeaderSize plus
// the encoded records. A producer can compare it with a batch size limit.
func (b *Builder) Size() int { return HeaderSize + len(b.recs) }

// Add appends r to the batch. r.Offset is ignored: records get offset deltas
// 0, 1, 2, ... in the order added. r.Timestamp is absolute (ms); the first
// record's timestamp becomes the batch's baseTimestamp. Nil Key or Value, or
// a nil header Value, are written as null.
func (b *Builder) Add(r Record) {
	if b.err != nil {
		return
	}
	if b.n == math.MaxInt32 {
		b.err = fmt.Errorf("%w: more than %d records", ErrInvalid, math.MaxInt32)
		return
	}
	if b.n == 0 {
		b.baseTime, b.maxTime = r.Timestamp, r.Timestamp
	} else if r.Timestamp > b.maxTime {
		b.maxTime = r.Timestamp
	}
	p, err := appendRecord(b.recs, &r, r.Timestamp-b.baseTime, int64(b.n))
	if err != nil {
		b.err = err
		return
	}
	b.recs = p
	b.n++
}

// appendRecord appends the encoding of r, with the given timestamp and
// offset deltas, to p.
func appendRecord(p []byte, r *Record, tsDelta, offDelta int64) ([]byte, error) {
	size := 1 + varintLen(tsDelta) + varintLen(offDelta) +
		bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		size += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	if size > math.MaxInt32 {
		return p, fmt.Errorf("%w: record of %d bytes", ErrInvalid, size)
	}
	p = binary.AppendVarint(p, int64(size))
	p = append(p, byte(r.Attributes))
	p = binary.AppendVarint(p, tsDelta)
	p = binary.AppendVarint(p, offDelta)
	p = appendBytes(p, r.Key)
	p = appendBytes(p, r.Value)
	p = binary.AppendVarint(p, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		p = binary.AppendVarint(p, int64(len(h.Key)))
		p = append(p, h.Key...)
		p = appendBytes(p, h.Value)
	}
	return p, nil
}

// AppendTo appends one complete batch holding the records added so far to
// dst and returns the extended slice. The batch has baseOffset 0, its CRC set
// and its records compressed with opts.Codec. It fails (returning dst
// unchanged) if no record was added, if no codec is registered under
// opts.Codec, if compression fails, or if the batch would exceed the format's
// size limit. The Builder keeps its records: AppendTo may be called again.
func (b *Builder) AppendTo(dst []byte) ([]byte, error) {
	if b.err != nil {
		return dst, b.err
	}
	if b.n == 0 {
		return dst, fmt.Errorf("%w: no records", ErrInvalid)
	}
	c, err := codec.ByID(b.opts.Codec)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	start := len(dst)
	out := append(dst, make([]byte, HeaderSize)...) // no allocation unless dst must grow
	out, err = c.AppendEncode(out, b.recs)
	if err != nil {
		return dst[:start], fmt.Errorf("record: compress %s: %w", c.Name(), err)
	}
	batch := out[start:]
	if len(batch)-LogOverhead > maxBatchLength {
		return dst[:start], fmt.Errorf("%w: batch of %d bytes", ErrInvalid, len(batch))
	}

	pid, epoch, seq := b.opts.ProducerID, b.opts.ProducerEpoch, b.opts.BaseSequence
	if pid == 0 {
		pid, epoch, seq = -1, -1, -1
	}
	attr := int16(b.opts.Codec) & attrCodecMask
	if b.opts.Transactional {
		attr |= attrTransactional
	}
	putHeader(batch, Header{
		PartitionLeaderEpoch: b.opts.PartitionLeaderEpoch,
		Attributes:           attr,
		LastOffsetDelta:      int32(b.n - 1),
		BaseTimestamp:        b.baseTime,
		MaxTimestamp:         b.maxTime,
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		BaseSequence:         seq,
		RecordCount:          int32(b.n),
	})
	return out, nil
}

// putHeader writes h's fields into the header of batch, which holds the
// whole batch: batchLength from len(batch), magic 2, and the CRC over the
// rest (h.BatchLength, h.Magic and h.CRC are not used).
func putHeader(batch []byte, h Header) {
	be := binary.BigEndian
	be.PutUint64(batch[PosBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(batch[PosBatchLength:], uint32(len(batch)-LogOverhead))
	be.PutUint32(batch[PosPartitionLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	batch[PosMagic] = Magic
	be.PutUint16(batch[PosAttributes:], uint16(h.Attributes))
	be.PutUint32(batch[PosLastOffsetDelta:], uint32(h.LastOffsetDelta))
	be.PutUint64(batch[PosBaseTimestamp:], uint64(h.BaseTimestamp))
	be.PutUint64(batch[PosMaxTimestamp:], uint64(h.MaxTimestamp))
	be.PutUint64(batch[PosProducerID:], uint64(h.ProducerID))
	be.PutUint16(batch[PosProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(batch[PosBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(batch[PosRecordCount:], uint32(h.RecordCount))
	be.PutUint32(batch[PosCRC:], crc32.Checksum(batch[PosAttributes:], castagnoli))
}

// varintLen is the size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// bytesLen is the encoded size of a nullable byte string.
func bytesLen(p []byte) int {
	if p == nil {
		return 1
	}
	return varintLen(int64(len(p))) + len(p)
}

// appendBytes appends a nullable byte string: varint length (-1 for nil) and
// the bytes.
func appendBytes(dst, p []byte) []byte {
	if p == nil {
		return append(dst, 1) // zigzag(-1)
	}
	dst = binary.AppendVarint(dst, int64(len(p)))
	return append(dst, p...)
}
