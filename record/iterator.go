package record

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/easel-io/easel/codec"
)

// DefaultMaxDecompressed bounds the decompressed records of one batch when
// NewIterator is given a limit <= 0.
const DefaultMaxDecompressed = 64 << 20

// RecordHeader is one key/value header of a record.
type RecordHeader struct {
	Key   string
	Value []byte // nil means null
}

// Record is one record of a batch.
type Record struct {
	Attributes int8  // record attributes; unused by Kafka, kept as is
	Offset     int64 // absolute offset: the batch's baseOffset + offsetDelta
	Timestamp  int64 // absolute ms: baseTimestamp + timestampDelta, or maxTimestamp in a LogAppendTime batch
	Key        []byte
	Value      []byte         // Key and Value: nil means null, a non-nil empty slice means empty
	Headers    []RecordHeader // nil when the record has none
}

// Iterator decodes the records of one batch, decompressing them first if the
// batch is compressed. It never panics, whatever the bytes. It does not check
// the CRC; call Validate first for bytes from outside.
//
//	it := record.NewIterator(batch, 0)
//	for it.Next() {
//		r := it.Record()
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//
// The zero value is unusable; use NewIterator. An Iterator is not safe for
// concurrent use. It keeps its decompression buffer between batches, so a
// reused Iterator holds memory up to the largest batch it decompressed.
type Iterator struct {
	max   int    // decompression limit in bytes
	hdr   Header // header of the current batch
	data  []byte // the records: part of the batch, or buf when compressed
	buf   []byte // decompression buffer, reused
	pos   int    // Invariant: 0 <= pos <= len(data); next record starts at data[pos]
	left  int32  // records still to decode
	index int32  // index of the next record, for error messages
	err   error  // sticky
	rec   Record
	hdrs  []RecordHeader    // backing array for rec.Headers, reused
	keys  map[string]string // header keys interned, so steady-state decoding does not allocate
}

// maxInternedKeys and maxInternedKeyLen bound the header key cache.
const (
	maxInternedKeys   = 256
	maxInternedKeyLen = 128
)

// NewIterator returns an Iterator over batch, which must be one whole batch
// (as Validate requires, though the Iterator checks the framing again).
// maxDecompressed bounds the decompressed size of the records; <= 0 means
// DefaultMaxDecompressed.
func NewIterator(batch []byte, maxDecompressed int) *Iterator {
	if maxDecompressed <= 0 {
		maxDecompressed = DefaultMaxDecompressed
	}
	it := &Iterator{max: maxDecompressed}
	it.Reset(batch)
	return it
}

// Reset points the Iterator at another batch, keeping its buffers and limit.
// It invalidates every Record and slice returned before. Errors in the header,
// framing or decompression make Next return false and are reported by Err.
func (it *Iterator) Reset(batch []byte) {
	it.data, it.pos, it.left, it.index, it.err = nil, 0, 0, 0, nil
	it.rec = Record{}
	h, err := ParseHeader(batch)
	it.hdr = h
	if err != nil {
		it.err = err
		return
	}
	switch n := h.Size(); {
	case len(batch) < n:
		it.err = ErrShort
		return
	case len(batch) > n:
		it.err = fmt.Errorf("%w: batchLength %d but %d bytes", ErrCorrupt, h.BatchLength, len(batch)-LogOverhead)
		return
	}
	if h.RecordCount < 0 {
		it.err = fmt.Errorf("%w: recordCount %d", ErrInvalid, h.RecordCount)
		return
	}
	it.left = h.RecordCount
	recs := batch[HeaderSize:]
	if h.Codec() == codec.None {
		it.data = recs
		return
	}
	c, err := codec.ByID(h.Codec())
	if err != nil {
		it.err = fmt.Errorf("%w: %w", ErrInvalid, err)
		return
	}
	it.buf, err = c.AppendDecode(it.buf[:0], recs, it.max)
	if err != nil {
		it.err = fmt.Errorf("%w: decompress %s records: %w", ErrCorrupt, c.Name(), err)
		return
	}
	it.data = it.buf
}

// Header returns the header of the current batch, as far as it was decoded.
func (it *Iterator) Header() Header { return it.hdr }

// Next decodes the next record and reports whether there is one. It returns
// false at the end of the batch or on an error; Err tells them apart.
func (it *Iterator) Next() bool {
	if it.err != nil {
		return false
	}
	if it.left == 0 {
		if it.pos != len(it.data) {
			it.err = fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorrupt, len(it.data)-it.pos, it.hdr.RecordCount)
		}
		it.data, it.pos = nil, 0
		return false
	}
	if err := it.decode(); err != nil {
		it.err = fmt.Errorf("%w: record %d of %d: %s", ErrCorrupt, it.index, it.hdr.RecordCount, err)
		return false
	}
	it.left--
	it.index++
	return true
}

// Record returns the record decoded by the last successful Next. The Record
// and every slice in it (Key, Value, Headers, header values) are valid only
// until the next call of Next or Reset: they alias the batch or the
// Iterator's decompression buffer and its reused header array. Copy what must
// outlive that. Header keys are ordinary strings and may be kept.
func (it *Iterator) Record() *Record { return &it.rec }

// Err returns the first error met, or nil at a clean end of the batch. Errors
// wrap ErrShort, ErrCorrupt or ErrInvalid; decompression and codec lookup
// errors also wrap the codec package's error.
func (it *Iterator) Err() error { return it.err }

// decodeError describes a malformed record; Next wraps it in ErrCorrupt. Its
// values are constant strings so that decode does not allocate.
type decodeError string

func (e decodeError) Error() string { return string(e) }

const (
	errLength      = decodeError("bad record length")
	errVarint      = decodeError("bad varint")
	errField       = decodeError("field overruns the record")
	errKeyLength   = decodeError("bad key or value length")
	errHeaderCount = decodeError("bad header count")
	errHeaderKey   = decodeError("bad header key length")
	errTrailing    = decodeError("bytes left inside the record")
)

// decode reads one record at data[pos] into rec and advances pos.
func (it *Iterator) decode() error {
	d := it.data
	l, i, ok := varint(d, it.pos)
	if !ok || l < 0 || l > int64(len(d)-i) {
		return errLength
	}
	end := i + int(l)
	r := d[:end:end] // the record is r[i:]; reads past end fail
	it.pos = end

	if i >= len(r) {
		return errField
	}
	attr := int8(r[i])
	i++
	tsDelta, i, ok := varint(r, i)
	if !ok {
		return errVarint
	}
	offDelta, i, ok := varint(r, i)
	if !ok || offDelta < math.MinInt32 || offDelta > math.MaxInt32 {
		return errVarint
	}
	key, i, err := nullableBytes(r, i)
	if err != nil {
		return err
	}
	value, i, err := nullableBytes(r, i)
	if err != nil {
		return err
	}
	count, i, ok := varint(r, i)
	// Each header takes at least two bytes, which bounds count before the
	// header array grows.
	if !ok || count < 0 || count > int64(len(r)-i)/2 {
		return errHeaderCount
	}
	var hdrs []RecordHeader
	if count > 0 {
		hdrs = it.hdrs[:0]
		for range count {
			kl, j, ok := varint(r, i)
			if !ok || kl < 0 || kl > int64(len(r)-j) {
				return errHeaderKey
			}
			i = j + int(kl)
			hk := it.intern(r[j:i])
			var hv []byte
			if hv, i, err = nullableBytes(r, i); err != nil {
				return err
			}
			hdrs = append(hdrs, RecordHeader{Key: hk, Value: hv})
		}
		it.hdrs = hdrs
	}
	if i != len(r) {
		return errTrailing
	}
	ts := it.hdr.BaseTimestamp + tsDelta
	if it.hdr.Attributes&attrLogAppendTime != 0 {
		ts = it.hdr.MaxTimestamp
	}
	it.rec = Record{
		Attributes: attr,
		Offset:     it.hdr.BaseOffset + offDelta,
		Timestamp:  ts,
		Key:        key,
		Value:      value,
		Headers:    hdrs,
	}
	return nil
}

// varint decodes the zigzag varint at b[i:] and returns it with the index
// after it; ok is false if b ends first or the value overflows 64 bits. The
// one-byte case is inlined.
func varint(b []byte, i int) (v int64, next int, ok bool) {
	if uint(i) < uint(len(b)) {
		if c := b[i]; c < 0x80 {
			return int64(c>>1) ^ -int64(c&1), i + 1, true
		}
	}
	return varintSlow(b, i)
}

func varintSlow(b []byte, i int) (int64, int, bool) {
	if i > len(b) {
		return 0, i, false
	}
	v, n := binary.Varint(b[i:])
	if n <= 0 {
		return 0, i, false
	}
	return v, i + n, true
}

// nullableBytes reads a varint length (-1 for null) and that many bytes from
// r[i:], returning them with capacity capped, and the index after them.
func nullableBytes(r []byte, i int) ([]byte, int, error) {
	l, i, ok := varint(r, i)
	if !ok || l < -1 || l > int64(len(r)-i) {
		return nil, i, errKeyLength
	}
	if l == -1 {
		return nil, i, nil
	}
	end := i + int(l)
	return r[i:end:end], end, nil
}

// intern returns b as a string, from the Iterator's cache when it has seen
// the key before. The map lookup with string(b) does not allocate.
func (it *Iterator) intern(b []byte) string {
	if len(b) > maxInternedKeyLen {
		return string(b)
	}
	if s, ok := it.keys[string(b)]; ok {
		return s
	}
	if it.keys == nil {
		it.keys = make(map[string]string)
	} else if len(it.keys) >= maxInternedKeys {
		clear(it.keys)
	}
	s := string(b)
	it.keys[s] = s
	return s
}
