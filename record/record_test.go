package record

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
)

// smallBatch is a valid two-record batch used by the header tests.
func smallBatch(t testing.TB) []byte {
	return build(t, BuilderOptions{ProducerID: 7, ProducerEpoch: 2, BaseSequence: 10, PartitionLeaderEpoch: 3}, []Record{
		{Timestamp: 1000, Key: []byte("k"), Value: []byte("v1")},
		{Timestamp: 1005, Value: []byte("v2"), Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
	})
}

// fixCRC recomputes the CRC of a whole batch after a test edits it.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[PosCRC:], crc32.Checksum(b[PosAttributes:], crc32.MakeTable(crc32.Castagnoli)))
}

func TestParseHeaderFields(t *testing.T) {
	// Write each field at its documented position by hand and read it back.
	b := make([]byte, HeaderSize+3)
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(0x0102030405060708))
	be.PutUint32(b[8:], HeaderSize-LogOverhead+3)
	be.PutUint32(b[12:], 0x11223344)
	b[16] = 2
	be.PutUint32(b[17:], 0xCAFEBABE)
	be.PutUint16(b[21:], 0x0033)
	be.PutUint32(b[23:], 41)
	be.PutUint64(b[27:], uint64(1e12))
	be.PutUint64(b[35:], uint64(2e12))
	be.PutUint64(b[43:], 99)
	be.PutUint16(b[51:], 5)
	be.PutUint32(b[53:], 1000)
	be.PutUint32(b[57:], 42)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		BaseOffset: 0x0102030405060708, BatchLength: 52, PartitionLeaderEpoch: 0x11223344, Magic: 2,
		CRC: 0xCAFEBABE, Attributes: 0x33, LastOffsetDelta: 41, BaseTimestamp: 1e12, MaxTimestamp: 2e12,
		ProducerID: 99, ProducerEpoch: 5, BaseSequence: 1000, RecordCount: 42,
	}
	if h != want {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	if h.Size() != len(b) || h.LastOffset() != 0x0102030405060708+41 {
		t.Errorf("Size %d LastOffset %d", h.Size(), h.LastOffset())
	}
	if h.Codec() != 3 || h.LogAppendTime() || !h.Transactional() || !h.Control() {
		t.Errorf("attributes 0x33: codec %d logAppend %v txn %v control %v", h.Codec(), h.LogAppendTime(), h.Transactional(), h.Control())
	}
	if h.LastSequence() != 1041 {
		t.Errorf("LastSequence %d", h.LastSequence())
	}
}

func TestAttributes(t *testing.T) {
	for _, tc := range []struct {
		attr                 int16
		codec                int8
		logAppend, txn, ctrl bool
	}{
		{0, 0, false, false, false},
		{4, 4, false, false, false},
		{7 | 8, 7, true, false, false},
		{16 | 1, 1, false, true, false},
		{32 | 16, 0, false, true, true},
		{-1, 7, true, true, true},
	} {
		h := Header{Attributes: tc.attr}
		if h.Codec() != tc.codec || h.LogAppendTime() != tc.logAppend || h.Transactional() != tc.txn || h.Control() != tc.ctrl {
			t.Errorf("attributes %#x: codec %d logAppend %v txn %v control %v", tc.attr, h.Codec(), h.LogAppendTime(), h.Transactional(), h.Control())
		}
	}
}

func TestLastSequence(t *testing.T) {
	for _, tc := range []struct {
		base, delta, want int32
	}{
		{-1, 0, -1},
		{-1, 9, -1},
		{0, 0, 0},
		{0, 4, 4},
		{100, 99, 199},
		{math.MaxInt32, 0, math.MaxInt32},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 2, 5, 2}, // Kafka: 5 - (MaxInt32 - (MaxInt32-2)) - 1
		{math.MaxInt32 - 4, 4, math.MaxInt32},
	} {
		h := Header{BaseSequence: tc.base, LastOffsetDelta: tc.delta}
		if got := h.LastSequence(); got != tc.want {
			t.Errorf("base %d delta %d: LastSequence %d, want %d", tc.base, tc.delta, got, tc.want)
		}
	}
}

func TestParseHeaderAndValidateErrors(t *testing.T) {
	good := smallBatch(t)
	type edit func(b []byte) []byte
	setI32 := func(pos int, v int32, crc bool) edit {
		return func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[pos:], uint32(v))
			if crc {
				fixCRC(b)
			}
			return b
		}
	}
	for _, tc := range []struct {
		name        string
		edit        edit
		parse, full error // wanted from ParseHeader and Validate; nil means success
	}{
		{"valid", func(b []byte) []byte { return b }, nil, nil},
		{"empty", func(b []byte) []byte { return b[:0] }, ErrShort, ErrShort},
		{"12 bytes", func(b []byte) []byte { return b[:LogOverhead] }, ErrShort, ErrShort},
		{"header minus one", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrShort, ErrShort},
		{"header only", func(b []byte) []byte { return b[:HeaderSize] }, nil, ErrShort},
		{"missing last byte", func(b []byte) []byte { return b[:len(b)-1] }, nil, ErrShort},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, nil, ErrCorrupt},
		{"next batch appended", func(b []byte) []byte { return append(b, b...) }, nil, ErrCorrupt},
		{"batchLength 48", setI32(PosBatchLength, HeaderSize-LogOverhead-1, false), ErrCorrupt, ErrCorrupt},
		{"batchLength 0", setI32(PosBatchLength, 0, false), ErrCorrupt, ErrCorrupt},
		{"batchLength negative", setI32(PosBatchLength, -1, false), ErrCorrupt, ErrCorrupt},
		{"batchLength max", setI32(PosBatchLength, math.MaxInt32, false), ErrCorrupt, ErrCorrupt},
		{"batchLength too big by one", func(b []byte) []byte {
			return setI32(PosBatchLength, int32(len(b)-LogOverhead+1), false)(b)
		}, nil, ErrShort},
		{"batchLength too small by one", func(b []byte) []byte {
			return setI32(PosBatchLength, int32(len(b)-LogOverhead-1), false)(b)
		}, nil, ErrCorrupt},
		{"magic 1", func(b []byte) []byte { b[PosMagic] = 1; return b }, ErrInvalid, ErrInvalid},
		{"magic 0", func(b []byte) []byte { b[PosMagic] = 0; return b }, ErrInvalid, ErrInvalid},
		{"magic 3", func(b []byte) []byte { b[PosMagic] = 3; return b }, ErrInvalid, ErrInvalid},
		{"zeroed header: length before magic", func(b []byte) []byte { clear(b[:HeaderSize]); return b }, ErrCorrupt, ErrCorrupt},
		{"crc", func(b []byte) []byte { b[PosCRC] ^= 1; return b }, nil, ErrCorrupt},
		{"record byte", func(b []byte) []byte { b[len(b)-1] ^= 0x10; return b }, nil, ErrCorrupt},
		{"recordCount 0", setI32(PosRecordCount, 0, true), nil, ErrInvalid},
		{"recordCount -1", setI32(PosRecordCount, -1, true), nil, ErrInvalid},
		{"recordCount 3", setI32(PosRecordCount, 3, true), nil, ErrInvalid},
		{"lastOffsetDelta 0", setI32(PosLastOffsetDelta, 0, true), nil, ErrInvalid},
		{"lastOffsetDelta max", func(b []byte) []byte {
			// lastOffsetDelta+1 overflows int32 to recordCount: must not pass.
			setI32(PosLastOffsetDelta, math.MaxInt32, false)(b)
			return setI32(PosRecordCount, math.MinInt32, true)(b)
		}, nil, ErrInvalid},
		{"unregistered codec is not Validate's business", func(b []byte) []byte {
			b[PosAttributes+1] |= 6
			fixCRC(b)
			return b
		}, nil, nil},
		{"baseOffset and epoch are outside the CRC", func(b []byte) []byte {
			SetBaseOffset(b, 1<<40)
			SetPartitionLeaderEpoch(b, -5)
			return b
		}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(append([]byte{}, good...))
			h, err := ParseHeader(b)
			if !errors.Is(err, tc.parse) || (tc.parse == nil) != (err == nil) {
				t.Errorf("ParseHeader: %v, want %v", err, tc.parse)
			}
			if err == nil && h.Magic != Magic {
				t.Errorf("ParseHeader accepted magic %d", h.Magic)
			}
			vh, err := Validate(b)
			if !errors.Is(err, tc.full) || (tc.full == nil) != (err == nil) {
				t.Errorf("Validate: %v, want %v", err, tc.full)
			}
			if err == nil && (vh.Size() != len(b) || vh != h) {
				t.Errorf("Validate header %+v, ParseHeader %+v, len %d", vh, h, len(b))
			}
		})
	}
}

// TestCRCDetectsEveryBitFlip flips each bit of a small batch. Flips under the
// CRC (attributes onward, and the CRC itself) must fail Validate with
// ErrCorrupt; baseOffset and partitionLeaderEpoch are outside it by design.
func TestCRCDetectsEveryBitFlip(t *testing.T) {
	good := smallBatch(t)
	b := make([]byte, len(good))
	for i := range good {
		for bit := range 8 {
			copy(b, good)
			b[i] ^= 1 << bit
			_, err := Validate(b)
			switch {
			case i < PosBatchLength, i >= PosPartitionLeaderEpoch && i < PosMagic:
				if err != nil {
					t.Errorf("byte %d bit %d (not under the CRC): %v", i, bit, err)
				}
			case i < PosPartitionLeaderEpoch:
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrShort) {
					t.Errorf("byte %d bit %d (batchLength): %v", i, bit, err)
				}
			case i == PosMagic:
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("byte %d bit %d (magic): %v", i, bit, err)
				}
			default:
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("byte %d bit %d: %v, want ErrCorrupt", i, bit, err)
				}
			}
		}
	}
}

func TestCRCIsCastagnoli(t *testing.T) {
	// The standard CRC-32C check value.
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("crc %#x", got)
	}
	b := smallBatch(t)
	if got, want := binary.BigEndian.Uint32(b[PosCRC:]), crc32.Checksum(b[PosAttributes:], castagnoli); got != want {
		t.Fatalf("stored crc %#x, computed %#x", got, want)
	}
}

func TestSplit(t *testing.T) {
	a := smallBatch(t)
	b := build(t, BuilderOptions{}, []Record{{Value: []byte("second batch")}})
	buf := append(append(append([]byte{}, a...), b...), a[:30]...) // two batches and a torn tail

	first, rest, err := Split(buf)
	if err != nil || string(first) != string(a) || cap(first) != len(first) {
		t.Fatalf("first: %v len %d cap %d", err, len(first), cap(first))
	}
	second, rest, err := Split(rest)
	if err != nil || string(second) != string(b) {
		t.Fatalf("second: %v", err)
	}
	if len(rest) != 30 {
		t.Fatalf("rest %d bytes", len(rest))
	}
	if got, r2, err := Split(rest); !errors.Is(err, ErrShort) || got != nil || len(r2) != 30 {
		t.Fatalf("torn tail: %v, batch %d bytes, rest %d", err, len(got), len(r2))
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, ErrShort},
		{"11 bytes", a[:11], ErrShort},
		{"12 bytes", a[:12], ErrShort},
		{"batch minus one", a[:len(a)-1], ErrShort},
		{"length 48", func() []byte {
			c := append([]byte{}, a...)
			binary.BigEndian.PutUint32(c[PosBatchLength:], 48)
			return c
		}(), ErrCorrupt},
		{"length negative", func() []byte {
			c := append([]byte{}, a...)
			binary.BigEndian.PutUint32(c[PosBatchLength:], 0xFFFFFFFF)
			return c
		}(), ErrCorrupt},
		{"no magic or crc check", func() []byte {
			c := append([]byte{}, a...)
			c[PosMagic], c[PosCRC] = 9, c[PosCRC]+1
			return c
		}(), nil},
	} {
		got, rest, err := Split(tc.b)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && (got != nil || len(rest) != len(tc.b)) {
			t.Errorf("%s: on error got %d bytes, rest %d of %d", tc.name, len(got), len(rest), len(tc.b))
		}
	}
}

func TestSetters(t *testing.T) {
	b := smallBatch(t)
	SetBaseOffset(b, 5000)
	SetPartitionLeaderEpoch(b, 17)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 5000 || h.PartitionLeaderEpoch != 17 || h.LastOffset() != 5001 {
		t.Fatalf("header %+v", h)
	}
	recs, err := readAll(b, 0)
	if err != nil || len(recs) != 2 || recs[0].Offset != 5000 || recs[1].Offset != 5001 {
		t.Fatalf("records %+v, %v", recs, err)
	}
	if recs[0].Timestamp != 1000 || recs[1].Timestamp != 1005 {
		t.Fatalf("timestamps %d %d", recs[0].Timestamp, recs[1].Timestamp)
	}

	// LogAppendTime: bytes after the batch are not touched nor checksummed.
	buf := append(append([]byte{}, b...), 0xEE, 0xEE)
	SetLogAppendTime(buf, 777)
	if buf[len(buf)-1] != 0xEE || buf[len(buf)-2] != 0xEE {
		t.Fatal("SetLogAppendTime wrote past the batch")
	}
	b = buf[:len(b)]
	h, err = Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.LogAppendTime() || h.MaxTimestamp != 777 || h.BaseTimestamp != 1000 || h.BaseOffset != 5000 {
		t.Fatalf("header %+v", h)
	}
	recs, err = readAll(b, 0)
	if err != nil || recs[0].Timestamp != 777 || recs[1].Timestamp != 777 {
		t.Fatalf("records %+v, %v", recs, err)
	}
}

func TestSettersPanicOnShortBatch(t *testing.T) {
	b := smallBatch(t)
	for name, f := range map[string]func(){
		"SetBaseOffset":           func() { SetBaseOffset(b[:HeaderSize-1], 1) },
		"SetPartitionLeaderEpoch": func() { SetPartitionLeaderEpoch(b[:20], 1) },
		"SetLogAppendTime short":  func() { SetLogAppendTime(b[:len(b)-1], 1) },
		"SetLogAppendTime header": func() { SetLogAppendTime(b[:10], 1) },
		"SetLogAppendTime badsize": func() {
			c := append([]byte{}, b...)
			binary.BigEndian.PutUint32(c[PosBatchLength:], 3)
			SetLogAppendTime(c, 1)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// CountRecords sums the record counts of whole batches and stops at a cut
// one (a fetch's partial last batch).
func TestCountRecords(t *testing.T) {
	var all []byte
	for i, n := range []int{3, 1, 5} {
		b := NewBuilder(BuilderOptions{})
		for j := range n {
			b.Add(Record{Timestamp: int64(i*10 + j), Value: []byte("v")})
		}
		out, err := b.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out...)
	}
	if got := CountRecords(all); got != 9 {
		t.Fatalf("CountRecords of three batches: %d, want 9", got)
	}
	if got := CountRecords(all[:len(all)-1]); got != 4 {
		t.Fatalf("CountRecords with the last batch cut: %d, want 4", got)
	}
	if got := CountRecords(nil); got != 0 {
		t.Fatalf("CountRecords(nil) = %d", got)
	}
}
