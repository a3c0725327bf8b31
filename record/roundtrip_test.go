package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/easel-io/easel/codec"
)

func TestRoundTripTable(t *testing.T) {
	big := bytes.Repeat([]byte("easel "), 50_000)
	for _, tc := range []struct {
		name string
		opts BuilderOptions
		recs []Record
	}{
		{"one null record", BuilderOptions{}, []Record{{}}},
		{"empty key and value", BuilderOptions{}, []Record{{Key: []byte{}, Value: []byte{}}}},
		{"key and value", BuilderOptions{}, []Record{{Key: []byte("k"), Value: []byte("v"), Timestamp: 1_700_000_000_000}}},
		{"headers", BuilderOptions{}, []Record{{
			Value: []byte("v"),
			Headers: []RecordHeader{
				{Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}, {Key: "", Value: []byte("empty key")},
				{Key: "traceparent", Value: []byte("00-abc-def-01")},
			},
		}}},
		{"attributes kept", BuilderOptions{}, []Record{{Attributes: -3, Value: []byte("a")}, {Attributes: 127}}},
		{"timestamps before the first", BuilderOptions{}, []Record{
			{Timestamp: 5000}, {Timestamp: 1000}, {Timestamp: 9000}, {Timestamp: -1},
		}},
		{"extreme timestamps wrap", BuilderOptions{}, []Record{
			{Timestamp: math.MinInt64}, {Timestamp: math.MaxInt64}, {Timestamp: 0},
		}},
		{"idempotent transactional", BuilderOptions{ProducerID: 42, ProducerEpoch: 3, BaseSequence: math.MaxInt32 - 1, Transactional: true, PartitionLeaderEpoch: -1},
			[]Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}},
		{"big value", BuilderOptions{}, []Record{{Key: []byte("big"), Value: big}, {Value: big[:1000]}}},
		{"many records", BuilderOptions{}, func() []Record {
			var rs []Record
			for i := range 1000 {
				rs = append(rs, Record{Timestamp: int64(i), Key: fmt.Appendf(nil, "key-%d", i), Value: bytes.Repeat([]byte{byte(i)}, i%50)})
			}
			return rs
		}()},
	} {
		for _, id := range registeredCodecs() {
			t.Run(tc.name+"/"+codecName(id), func(t *testing.T) {
				opts := tc.opts
				opts.Codec = id
				batch := build(t, opts, tc.recs)
				checkBatch(t, batch, opts, tc.recs)
			})
		}
	}
}

// checkBatch validates batch and checks its header and records against what
// it was built from.
func checkBatch(t *testing.T, batch []byte, opts BuilderOptions, recs []Record) {
	t.Helper()
	h, err := Validate(batch)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	minTs, maxTs := recs[0].Timestamp, recs[0].Timestamp
	for _, r := range recs {
		minTs, maxTs = min(minTs, r.Timestamp), max(maxTs, r.Timestamp)
	}
	pid, epoch, seq := opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	if pid == 0 {
		pid, epoch, seq = -1, -1, -1
	}
	switch {
	case h.BaseOffset != 0, h.RecordCount != int32(len(recs)), h.LastOffsetDelta != int32(len(recs)-1):
		t.Errorf("offsets/count: %+v", h)
	case h.BaseTimestamp != recs[0].Timestamp, h.MaxTimestamp != maxTs:
		t.Errorf("timestamps: base %d max %d, want %d %d", h.BaseTimestamp, h.MaxTimestamp, recs[0].Timestamp, maxTs)
	case h.ProducerID != pid, h.ProducerEpoch != epoch, h.BaseSequence != seq:
		t.Errorf("producer: %+v", h)
	case h.Codec() != opts.Codec, h.Transactional() != opts.Transactional, h.Control(), h.LogAppendTime():
		t.Errorf("attributes %#x", h.Attributes)
	case h.PartitionLeaderEpoch != opts.PartitionLeaderEpoch, h.Magic != 2:
		t.Errorf("epoch/magic: %+v", h)
	}
	got, err := readAll(batch, 0)
	if err != nil {
		t.Fatalf("iterate: %v", err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i := range got {
		want := recs[i]
		want.Offset = int64(i)
		if d := diffRecord(got[i], want, true); d != "" {
			t.Fatalf("record %d: %s", i, d)
		}
	}
}

func TestRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	it := NewIterator(nil, 0)
	b := NewBuilder(BuilderOptions{})
	var buf []byte
	for iter := range 400 {
		ids := registeredCodecs()
		opts := BuilderOptions{
			Codec:                ids[rng.IntN(len(ids))],
			ProducerID:           rng.Int64N(3),
			ProducerEpoch:        int16(rng.IntN(100)),
			BaseSequence:         rng.Int32(),
			Transactional:        rng.IntN(2) == 0,
			PartitionLeaderEpoch: rng.Int32(),
		}
		recs := randRecords(rng, 60)
		b.Reset(opts)
		for _, r := range recs {
			b.Add(r)
		}
		if b.Len() != len(recs) {
			t.Fatalf("Len %d, want %d", b.Len(), len(recs))
		}
		// Append after some existing bytes, as a produce buffer would.
		prefix := rng.IntN(20)
		var err error
		buf, err = b.AppendTo(append(buf[:0], make([]byte, prefix)...))
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		batch := buf[prefix:]
		if opts.Codec == codec.None && len(batch) != b.Size() {
			t.Fatalf("uncompressed batch %d bytes, Size %d", len(batch), b.Size())
		}
		if _, err := Validate(batch); err != nil {
			t.Fatalf("iter %d: Validate: %v", iter, err)
		}
		it.Reset(batch)
		i := 0
		for ; it.Next(); i++ {
			if i >= len(recs) {
				t.Fatalf("iter %d: extra record", iter)
			}
			want := recs[i]
			want.Offset = int64(i)
			if d := diffRecord(*it.Record(), want, true); d != "" {
				t.Fatalf("iter %d codec %d record %d: %s", iter, opts.Codec, i, d)
			}
		}
		if it.Err() != nil || i != len(recs) {
			t.Fatalf("iter %d: %d records, err %v", iter, i, it.Err())
		}
	}
}

func TestBuilder(t *testing.T) {
	recs := []Record{{Key: []byte("a"), Value: []byte("1"), Timestamp: 10}, {Value: []byte("2"), Timestamp: 20}}
	opts := BuilderOptions{ProducerID: 9, BaseSequence: 4}
	fresh := build(t, opts, recs)

	t.Run("reuse after Reset gives the same bytes", func(t *testing.T) {
		b := NewBuilder(BuilderOptions{Codec: xorID, Transactional: true})
		b.Add(Record{Value: bytes.Repeat([]byte("x"), 500)})
		if _, err := b.AppendTo(nil); err != nil {
			t.Fatal(err)
		}
		b.Reset(opts)
		if b.Len() != 0 || b.Size() != HeaderSize {
			t.Fatalf("after Reset: Len %d Size %d", b.Len(), b.Size())
		}
		for _, r := range recs {
			b.Add(r)
		}
		got, err := b.AppendTo(nil)
		if err != nil || !bytes.Equal(got, fresh) {
			t.Fatalf("reused builder differs: %v", err)
		}
		again, err := b.AppendTo([]byte("prefix"))
		if err != nil || string(again[:6]) != "prefix" || !bytes.Equal(again[6:], fresh) {
			t.Fatalf("second AppendTo differs: %v", err)
		}
	})

	t.Run("Add copies", func(t *testing.T) {
		key, val, hv := []byte("key"), []byte("val"), []byte("hv")
		b := NewBuilder(BuilderOptions{})
		b.Add(Record{Key: key, Value: val, Headers: []RecordHeader{{Key: "h", Value: hv}}})
		copy(key, "XXX")
		copy(val, "XXX")
		copy(hv, "XX")
		out, err := b.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(out, 0)
		if err != nil || string(got[0].Key) != "key" || string(got[0].Value) != "val" || string(got[0].Headers[0].Value) != "hv" {
			t.Fatalf("%+v %v", got, err)
		}
	})

	t.Run("offsets ignored", func(t *testing.T) {
		b := NewBuilder(BuilderOptions{})
		b.Add(Record{Offset: 100})
		b.Add(Record{Offset: -7})
		out, _ := b.AppendTo(nil)
		got, err := readAll(out, 0)
		if err != nil || got[0].Offset != 0 || got[1].Offset != 1 {
			t.Fatalf("%+v %v", got, err)
		}
	})

	t.Run("producer id 0 means no producer", func(t *testing.T) {
		out := build(t, BuilderOptions{ProducerEpoch: 5, BaseSequence: 6}, recs)
		h, err := Validate(out)
		if err != nil || h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 || h.LastSequence() != -1 {
			t.Fatalf("%+v %v", h, err)
		}
		out = build(t, BuilderOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
		if h2, _ := Validate(out); h2 != h {
			t.Fatalf("explicit -1s differ: %+v", h2)
		}
	})

	t.Run("errors leave dst alone", func(t *testing.T) {
		dst := []byte("keep")
		b := NewBuilder(BuilderOptions{})
		out, err := b.AppendTo(dst)
		if !errors.Is(err, ErrInvalid) || string(out) != "keep" {
			t.Fatalf("empty builder: %q %v", out, err)
		}
		var unregistered int8 = -1
		for id := int8(1); id <= codec.MaxID; id++ {
			if _, err := codec.ByID(id); err != nil {
				unregistered = id
				break
			}
		}
		for _, id := range []int8{unregistered, 8, -1} {
			if id == unregistered && id < 0 {
				continue // every id is taken
			}
			b.Reset(BuilderOptions{Codec: id})
			b.Add(Record{Value: []byte("v")})
			out, err = b.AppendTo(dst)
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, codec.ErrUnknownCodec) || string(out) != "keep" {
				t.Fatalf("codec %d: %q %v", id, out, err)
			}
		}
	})
}

// rawBatch wraps hand-made record bytes in a batch with a good CRC and
// lastOffsetDelta, so the Iterator's record checks can be tested.
func rawBatch(records []byte, count int32, attr int16) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(records))
	b = append(b, records...)
	be := binary.BigEndian
	be.PutUint32(b[PosBatchLength:], uint32(len(b)-LogOverhead))
	b[PosMagic] = Magic
	be.PutUint16(b[PosAttributes:], uint16(attr))
	be.PutUint32(b[PosLastOffsetDelta:], uint32(count-1))
	be.PutUint64(b[PosBaseTimestamp:], 1000)
	be.PutUint64(b[PosMaxTimestamp:], 2000)
	be.PutUint64(b[PosProducerID:], math.MaxUint64)
	be.PutUint32(b[PosRecordCount:], uint32(count))
	fixCRC(b)
	return b
}

// rec encodes one record from already-encoded fields, prefixing the length.
func rec(fields ...[]byte) []byte {
	body := bytes.Join(fields, nil)
	return append(binary.AppendVarint(nil, int64(len(body))), body...)
}

func vi(v int64) []byte { return binary.AppendVarint(nil, v) }

func TestIteratorErrors(t *testing.T) {
	attr := []byte{0}
	goodRec := rec(attr, vi(5), vi(0), vi(1), []byte("k"), vi(2), []byte("vv"), vi(1), vi(1), []byte("h"), vi(-1))
	xor := func(records []byte, count int32) []byte {
		c, _ := codec.ByID(xorID)
		z, _ := c.AppendEncode(nil, records)
		return rawBatch(z, count, int16(xorID))
	}
	unregistered := int8(-1)
	for id := int8(1); id <= codec.MaxID; id++ {
		if _, err := codec.ByID(id); err != nil {
			unregistered = id
			break
		}
	}
	for _, tc := range []struct {
		name  string
		batch []byte
		max   int
		n     int   // records decoded before the end or the error
		want  error // nil: a clean end
		also  error // a second error the result must wrap
	}{
		{"good", rawBatch(goodRec, 1, 0), 0, 1, nil, nil},
		{"good compressed", xor(goodRec, 1), 0, 1, nil, nil},
		{"zero records", rawBatch(nil, 0, 0), 0, 0, nil, nil},
		{"short header", goodRec, 0, 0, ErrShort, nil},
		{"short batch", rawBatch(goodRec, 1, 0)[:HeaderSize+3], 0, 0, ErrShort, nil},
		{"long batch", append(rawBatch(goodRec, 1, 0), 0), 0, 0, ErrCorrupt, nil},
		{"bad magic", func() []byte { b := rawBatch(goodRec, 1, 0); b[PosMagic] = 1; return b }(), 0, 0, ErrInvalid, nil},
		{"negative count", rawBatch(goodRec, -1, 0), 0, 0, ErrInvalid, nil},
		{"count too high", rawBatch(goodRec, 2, 0), 0, 1, ErrCorrupt, nil},
		{"huge count", rawBatch(goodRec, math.MaxInt32, 0), 0, 1, ErrCorrupt, nil},
		{"count too low", rawBatch(append(append([]byte{}, goodRec...), goodRec...), 1, 0), 0, 1, ErrCorrupt, nil},
		{"trailing byte", rawBatch(append(append([]byte{}, goodRec...), 0), 1, 0), 0, 1, ErrCorrupt, nil},
		{"trailing byte compressed", xor(append(append([]byte{}, goodRec...), 0), 1), 0, 1, ErrCorrupt, nil},
		{"length varint cut", rawBatch([]byte{0x80}, 1, 0), 0, 0, ErrCorrupt, nil},
		{"length varint overflow", rawBatch(bytes.Repeat([]byte{0xFF}, 11), 1, 0), 0, 0, ErrCorrupt, nil},
		{"negative length", rawBatch(vi(-2), 1, 0), 0, 0, ErrCorrupt, nil},
		{"length past the end", rawBatch(goodRec[:len(goodRec)-1], 1, 0), 0, 0, ErrCorrupt, nil},
		{"zero length", rawBatch(vi(0), 1, 0), 0, 0, ErrCorrupt, nil},
		{"timestamp cut", rawBatch(rec(attr, []byte{0x80}), 1, 0), 0, 0, ErrCorrupt, nil},
		{"offset delta too big", rawBatch(rec(attr, vi(0), vi(math.MaxInt32+1), vi(-1), vi(-1), vi(0)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"key length -2", rawBatch(rec(attr, vi(0), vi(0), vi(-2), vi(-1), vi(0)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"key past the record", rawBatch(rec(attr, vi(0), vi(0), vi(50), vi(-1), vi(0)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"value past the record", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(3), []byte("ab")), 1, 0), 0, 0, ErrCorrupt, nil},
		{"headers missing", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"negative header count", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1), vi(-1)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"huge header count", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1), vi(math.MaxInt32)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"null header key", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(-1), vi(-1)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"header key past the record", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(9), vi(-1)), 1, 0), 0, 0, ErrCorrupt, nil},
		{"header value past the record", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(0), vi(4), []byte("abc")), 1, 0), 0, 0, ErrCorrupt, nil},
		{"bytes left in record", rawBatch(rec(attr, vi(0), vi(0), vi(-1), vi(-1), vi(0), []byte{0}), 1, 0), 0, 0, ErrCorrupt, nil},
		{"second record bad", rawBatch(append(append([]byte{}, goodRec...), rec(attr, vi(0))...), 2, 0), 0, 1, ErrCorrupt, nil},
		{"decompression limit", xor(goodRec, 1), len(goodRec) - 1, 0, ErrCorrupt, codec.ErrTooLarge},
		{"decompression limit exact", xor(goodRec, 1), len(goodRec), 1, nil, nil},
		{"corrupt compressed", func() []byte {
			b := xor(goodRec, 1)
			b[HeaderSize+3]++ // the test codec's length prefix
			fixCRC(b)
			return b
		}(), 0, 0, ErrCorrupt, codec.ErrCorrupt},
		{"unregistered codec", rawBatch(goodRec, 1, int16(unregistered)), 0, 0, ErrInvalid, codec.ErrUnknownCodec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unregistered codec" && unregistered < 0 {
				t.Skip("every codec id is registered")
			}
			it := NewIterator(tc.batch, tc.max)
			n := 0
			for it.Next() {
				n++
			}
			err := it.Err()
			if n != tc.n {
				t.Errorf("%d records, want %d", n, tc.n)
			}
			if (tc.want == nil) != (err == nil) || !errors.Is(err, tc.want) {
				t.Errorf("Err %v, want %v", err, tc.want)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Errorf("Err %v does not wrap %v", err, tc.also)
			}
			if it.Next() || it.Err() != err {
				t.Errorf("not sticky: Next true or Err changed to %v", it.Err())
			}
		})
	}
}

func TestIteratorReuseAndAliasing(t *testing.T) {
	a := build(t, BuilderOptions{}, []Record{{Key: []byte("a"), Value: []byte("A"), Timestamp: 7}})
	z := build(t, BuilderOptions{Codec: xorID}, []Record{{Key: []byte("z"), Value: []byte("Z")}, {Value: []byte("ZZ")}})
	SetBaseOffset(z, 100)

	it := NewIterator(a, 0)
	if !it.Next() {
		t.Fatal(it.Err())
	}
	r := it.Record()
	// Uncompressed: Key and Value alias the batch, capacity capped.
	if !inside(r.Value, a) || &r.Value[0] != &a[len(a)-2] || cap(r.Key) != 1 || cap(r.Value) != 1 {
		t.Errorf("value does not alias the batch or capacity not capped")
	}
	if r.Headers != nil {
		t.Errorf("headers %v, want nil", r.Headers)
	}
	if it.Next() || it.Err() != nil {
		t.Fatalf("second Next: %v", it.Err())
	}

	it.Reset(z)
	if h := it.Header(); h.BaseOffset != 100 || h.Codec() != xorID {
		t.Fatalf("Header %+v", h)
	}
	var got []string
	for it.Next() {
		r := it.Record()
		if r.Value[0] != 'Z' || inside(r.Value, z) {
			t.Errorf("compressed value %q aliases the batch", r.Value)
		}
		got = append(got, fmt.Sprintf("%d %s %s %v", r.Offset, r.Key, r.Value, r.Key == nil))
	}
	if it.Err() != nil || strings.Join(got, ",") != "100 z Z false,101  ZZ true" {
		t.Fatalf("got %q, %v", got, it.Err())
	}

	it.Reset(a[:10])
	if it.Next() || !errors.Is(it.Err(), ErrShort) {
		t.Fatalf("short: %v", it.Err())
	}
	it.Reset(a)
	if !it.Next() || it.Err() != nil {
		t.Fatalf("Reset did not clear the error: %v", it.Err())
	}
}

// inside reports whether p starts within buf's memory.
func inside(p, buf []byte) bool {
	if len(p) == 0 || len(buf) == 0 {
		return false
	}
	s := uintptr(unsafe.Pointer(&buf[0]))
	q := uintptr(unsafe.Pointer(&p[0]))
	return q >= s && q < s+uintptr(len(buf))
}

func TestHeaderKeyInterning(t *testing.T) {
	b := NewBuilder(BuilderOptions{})
	long := strings.Repeat("k", maxInternedKeyLen+1)
	var want []string
	for i := range 3 * maxInternedKeys {
		k := fmt.Sprint("key-", i%(maxInternedKeys+50))
		want = append(want, k)
		b.Add(Record{Headers: []RecordHeader{{Key: k, Value: []byte("v")}, {Key: long}}})
	}
	batch, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	it := NewIterator(batch, 0)
	i := 0
	for ; it.Next(); i++ {
		h := it.Record().Headers
		if len(h) != 2 || h[0].Key != want[i] || h[1].Key != long || h[1].Value != nil {
			t.Fatalf("record %d headers %+v", i, h)
		}
	}
	if it.Err() != nil || i != len(want) {
		t.Fatalf("%d records, %v", i, it.Err())
	}
	if len(it.keys) > maxInternedKeys {
		t.Fatalf("cache grew to %d keys", len(it.keys))
	}
}
