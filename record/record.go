// Package record reads, checks and writes Kafka record batches (magic 2),
// the unit Easel stores on disk and sends on the wire unchanged.
//
// A batch is a fixed 61-byte header followed by its records. All integers in
// the header are big-endian; the numbers on the left are byte offsets from the
// start of the batch and are exported as the Pos* constants:
//
//	 0  baseOffset            int64   offset of the first record; the broker overwrites it (SetBaseOffset)
//	 8  batchLength           int32   bytes after this field: the whole batch is LogOverhead+batchLength
//	12  partitionLeaderEpoch  int32   the broker overwrites it (SetPartitionLeaderEpoch)
//	16  magic                 int8    always 2
//	17  crc                   uint32  CRC-32C (Castagnoli) of bytes 21 to the end of the batch
//	21  attributes            int16   bits 0-2 codec id, bit 3 LogAppendTime, bit 4 transactional, bit 5 control
//	23  lastOffsetDelta       int32   offset delta of the last record (recordCount-1 as produced)
//	27  baseTimestamp         int64   ms since the epoch; record timestamps are deltas from it
//	35  maxTimestamp          int64   largest record timestamp, or the broker's LogAppendTime
//	43  producerId            int64   -1 when the producer is not idempotent
//	51  producerEpoch         int16   -1 when the producer is not idempotent
//	53  baseSequence          int32   sequence of the first record, -1 when not idempotent
//	57  recordCount           int32   number of records
//	61  records               ...     recordCount records; one compressed block when codec != 0
//
// Because the CRC starts at attributes, a broker assigns baseOffset and
// partitionLeaderEpoch by overwriting bytes, with no checksum work.
//
// Each record is a run of zigzag varints (varint: 32-bit value, varlong:
// 64-bit value), as encoding/binary's AppendVarint and Varint write and read
// them:
//
//	length          varint   bytes of the record after this field
//	attributes      int8     unused by Kafka; kept as is
//	timestampDelta  varlong  timestamp - baseTimestamp
//	offsetDelta     varint   offset - baseOffset
//	keyLength       varint   -1 for a null key
//	key             bytes
//	valueLength     varint   -1 for a null value
//	value           bytes
//	headerCount     varint
//	headers         headerCount times: keyLength varint (>= 0), key, valueLength varint (-1 null), value
//
// Every offset, size and bit position above is frozen: it is the Kafka wire
// and on-disk format.
//
// Checking a batch is layered: ParseHeader decodes the header alone, Split
// cuts one batch off a buffer by its declared length, Validate checks a whole
// batch's framing and CRC, and an Iterator decodes (and decompresses) its
// records, reporting any malformed record.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Sizes of the batch framing. Frozen: part of the format.
const (
	// HeaderSize is the size of the fixed batch header, up to recordCount.
	HeaderSize = 61
	// LogOverhead is the size of baseOffset and batchLength, the bytes that
	// batchLength does not count.
	LogOverhead = 12
	// Magic is the only batch format version this package accepts.
	Magic = 2
)

// Byte offsets of the header fields from the start of a batch. Frozen: part
// of the format. See the package doc for the diagram.
const (
	PosBaseOffset           = 0
	PosBatchLength          = 8
	PosPartitionLeaderEpoch = 12
	PosMagic                = 16
	PosCRC                  = 17
	PosAttributes           = 21
	PosLastOffsetDelta      = 23
	PosBaseTimestamp        = 27
	PosMaxTimestamp         = 35
	PosProducerID           = 43
	PosProducerEpoch        = 51
	PosBaseSequence         = 53
	PosRecordCount          = 57
)

// Attribute bits. Frozen: part of the format.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 1 << 3
	attrTransactional = 1 << 4
	attrControl       = 1 << 5
)

// minBatchLength is the smallest legal batchLength: a header with no records.
const minBatchLength = HeaderSize - LogOverhead

// maxBatchLength keeps LogOverhead+batchLength within an int32 (and an int on
// every platform).
const maxBatchLength = math.MaxInt32 - LogOverhead

var (
	// ErrShort means the bytes end before the header or before the batch's
	// declared length: a truncated tail, which is legal at the end of a fetch
	// response or of a segment after a crash.
	ErrShort = errors.New("record: short batch")
	// ErrCorrupt means the bytes cannot be a batch as written: a CRC
	// mismatch, a batchLength below HeaderSize-LogOverhead or unequal to the
	// bytes given, a malformed record, a record count that does not match the
	// records, or bytes left after the last record. Kafka: CORRUPT_MESSAGE.
	ErrCorrupt = errors.New("record: corrupt batch")
	// ErrInvalid means a well-formed batch breaks a rule of the format: magic
	// other than 2, recordCount <= 0, lastOffsetDelta+1 != recordCount, or a
	// codec that is not registered. Kafka: INVALID_RECORD.
	ErrInvalid = errors.New("record: invalid batch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed header of a batch. Field names follow the
// package doc diagram.
type Header struct {
	BaseOffset           int64
	BatchLength          int32 // Invariant after ParseHeader: HeaderSize-LogOverhead <= BatchLength <= MaxInt32-LogOverhead
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the size in bytes of the whole batch: LogOverhead + BatchLength.
func (h Header) Size() int { return LogOverhead + int(h.BatchLength) }

// LastOffset is the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the compression codec id, attributes bits 0–2 (see package codec).
func (h Header) Codec() int8 { return int8(h.Attributes & attrCodecMask) }

// LogAppendTime reports whether the timestamps are the broker's append time
// (attributes bit 3); the time is MaxTimestamp.
func (h Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction
// (attributes bit 4).
func (h Header) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch holds control records such as
// transaction markers (attributes bit 5).
func (h Header) Control() bool { return h.Attributes&attrControl != 0 }

// LastSequence is the producer sequence number of the last record:
// BaseSequence + LastOffsetDelta, wrapping past MaxInt32 to 0 as Kafka does.
// It is -1 when BaseSequence is -1 (no idempotent producer).
func (h Header) LastSequence() int32 {
	if h.BaseSequence == -1 {
		return -1
	}
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

// ParseHeader decodes the first HeaderSize bytes of b. It returns ErrShort if
// b is shorter than that, an error wrapping ErrCorrupt if batchLength is below
// HeaderSize-LogOverhead (or so large the batch could not fit an int32), and
// one wrapping ErrInvalid if magic is not 2, checked in that order. On ErrCorrupt
// and ErrInvalid the returned Header holds the decoded fields. ParseHeader
// checks neither the CRC nor that b holds the whole batch (see Validate). It
// does not allocate except to wrap an ErrCorrupt or ErrInvalid error.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	b = b[:HeaderSize]
	be := binary.BigEndian
	h := Header{
		BaseOffset:           int64(be.Uint64(b[PosBaseOffset:])),
		BatchLength:          int32(be.Uint32(b[PosBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[PosPartitionLeaderEpoch:])),
		Magic:                int8(b[PosMagic]),
		CRC:                  be.Uint32(b[PosCRC:]),
		Attributes:           int16(be.Uint16(b[PosAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[PosLastOffsetDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[PosBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[PosMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[PosProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[PosProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[PosBaseSequence:])),
		RecordCount:          int32(be.Uint32(b[PosRecordCount:])),
	}
	if err := checkLength(h.BatchLength); err != nil {
		return h, err
	}
	if h.Magic != Magic {
		return h, fmt.Errorf("%w: magic %d, want %d", ErrInvalid, h.Magic, Magic)
	}
	return h, nil
}

func checkLength(n int32) error {
	if n < minBatchLength || n > maxBatchLength {
		return fmt.Errorf("%w: batchLength %d outside %d..%d", ErrCorrupt, n, minBatchLength, maxBatchLength)
	}
	return nil
}

// Validate checks that b is exactly one whole batch: a good header (see
// ParseHeader), len(b) equal to the declared size (ErrShort if b is shorter,
// ErrCorrupt if longer), a matching CRC (ErrCorrupt), recordCount > 0 and
// lastOffsetDelta+1 == recordCount (ErrInvalid, the rule for batches as
// produced; compacted batches would fail it). It does not look at the records
// or at whether the codec is registered; an Iterator does. It does not
// allocate except to wrap an ErrCorrupt or ErrInvalid error.
func Validate(b []byte) (Header, error) {
	h, err := ValidateStored(b)
	if err != nil {
		return h, err
	}
	if h.RecordCount <= 0 {
		return h, fmt.Errorf("%w: recordCount %d", ErrInvalid, h.RecordCount)
	}
	if int64(h.LastOffsetDelta)+1 != int64(h.RecordCount) {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with recordCount %d", ErrInvalid, h.LastOffsetDelta, h.RecordCount)
	}
	return h, nil
}

// ValidateStored checks a batch as a log stores it, which is what a follower
// replica receives: a good header, the exact size and a matching CRC, and a
// non-negative lastOffsetDelta. Unlike Validate it accepts batches that
// compaction thinned (fewer records than offsets) and empty ones.
func ValidateStored(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	switch n := h.Size(); {
	case len(b) < n:
		return h, ErrShort
	case len(b) > n:
		return h, fmt.Errorf("%w: batchLength %d but %d bytes", ErrCorrupt, h.BatchLength, len(b)-LogOverhead)
	}
	if crc := crc32.Checksum(b[PosAttributes:], castagnoli); crc != h.CRC {
		return h, fmt.Errorf("%w: crc %#08x, computed %#08x", ErrCorrupt, h.CRC, crc)
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d, recordCount %d", ErrInvalid, h.LastOffsetDelta, h.RecordCount)
	}
	return h, nil
}

// Split returns the first batch in b, cut by its declared batchLength, and the
// bytes after it. It checks only the length: ErrShort if b is too short to
// hold the length field or the declared batch, ErrCorrupt if batchLength is
// out of range. It checks neither magic nor CRC. On error batch is nil and
// rest is b. The returned batch has its capacity capped at its length, so an
// append to it cannot overwrite rest.
func Split(b []byte) (batch, rest []byte, err error) {
	if len(b) < LogOverhead {
		return nil, b, ErrShort
	}
	n := int32(binary.BigEndian.Uint32(b[PosBatchLength:]))
	if err := checkLength(n); err != nil {
		return nil, b, err
	}
	size := LogOverhead + int(n)
	if len(b) < size {
		return nil, b, ErrShort
	}
	return b[:size:size], b[size:], nil
}

// CountRecords sums the recordCount fields of the whole batches at the
// start of b (stored batches, as a read returns them), stopping at the first
// that is cut short or malformed. It reads the headers only: no CRC check,
// no decompression.
func CountRecords(b []byte) int64 {
	var n int64
	for len(b) >= HeaderSize {
		batch, rest, err := Split(b)
		if err != nil || len(batch) < HeaderSize {
			break
		}
		if c := int32(binary.BigEndian.Uint32(batch[PosRecordCount:])); c > 0 {
			n += int64(c)
		}
		b = rest
	}
	return n
}

// SetBaseOffset overwrites the baseOffset of the batch at the start of b. The
// CRC does not cover it. It panics if len(b) < HeaderSize.
func SetBaseOffset(b []byte, off int64) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint64(b[PosBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch overwrites the partitionLeaderEpoch of the batch at
// the start of b. The CRC does not cover it. It panics if len(b) < HeaderSize.
func SetPartitionLeaderEpoch(b []byte, e int32) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b[PosPartitionLeaderEpoch:], uint32(e))
}

// SetLogAppendTime stamps the batch at the start of b with the broker's append
// time, as a topic with message.timestamp.type=LogAppendTime requires: it sets
// maxTimestamp to ts and attributes bit 3, then recomputes the CRC over the
// batch's declared length (bytes after it are left alone). It panics if b
// does not hold the whole batch its header declares; call it on a batch that
// passed Validate or Split.
func SetLogAppendTime(b []byte, ts int64) {
	_ = b[HeaderSize-1]
	n := int32(binary.BigEndian.Uint32(b[PosBatchLength:]))
	if checkLength(n) != nil || len(b) < LogOverhead+int(n) {
		panic("record: SetLogAppendTime on a short or malformed batch")
	}
	b = b[:LogOverhead+int(n)]
	binary.BigEndian.PutUint64(b[PosMaxTimestamp:], uint64(ts))
	attr := binary.BigEndian.Uint16(b[PosAttributes:]) | attrLogAppendTime
	binary.BigEndian.PutUint16(b[PosAttributes:], attr)
	binary.BigEndian.PutUint32(b[PosCRC:], crc32.Checksum(b[PosAttributes:], castagnoli))
}
