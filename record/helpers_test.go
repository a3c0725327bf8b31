package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/easel-io/easel/codec"
)

// xorCodec is a test codec under id 7: a 4-byte length then the bytes XORed
// with 0xA5. It lets the tests exercise the decompression path (records in
// the Iterator's own buffer) whatever real codecs are registered.
type xorCodec struct{}

const xorID int8 = 7

func init() {
	if err := codec.Register(xorCodec{}); err != nil {
		panic(err)
	}
}

func (xorCodec) ID() int8     { return xorID }
func (xorCodec) Name() string { return "record-test-xor" }

func (xorCodec) AppendEncode(dst, src []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(src)))
	for _, c := range src {
		dst = append(dst, c^0xA5)
	}
	return dst, nil
}

func (xorCodec) AppendDecode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < 4 {
		return dst, fmt.Errorf("%w: short", codec.ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(src)
	if uint64(n) != uint64(len(src)-4) {
		return dst, fmt.Errorf("%w: length %d, have %d", codec.ErrCorrupt, n, len(src)-4)
	}
	if int(n) > limit {
		return dst, fmt.Errorf("%w: %d > %d", codec.ErrTooLarge, n, limit)
	}
	for _, c := range src[4:] {
		dst = append(dst, c^0xA5)
	}
	return dst, nil
}

// registeredCodecs lists the ids of every codec registered now: none, the test
// codec, and the real ones once package codec has them.
func registeredCodecs() []int8 {
	var ids []int8
	for id := int8(0); id <= codec.MaxID; id++ {
		if _, err := codec.ByID(id); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func codecName(id int8) string {
	c, err := codec.ByID(id)
	if err != nil {
		return fmt.Sprintf("codec%d", id)
	}
	return c.Name()
}

// build writes recs as one batch with opts, failing the test on error.
func build(t testing.TB, opts BuilderOptions, recs []Record) []byte {
	t.Helper()
	b := NewBuilder(opts)
	for _, r := range recs {
		b.Add(r)
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatalf("AppendTo: %v", err)
	}
	return out
}

// readAll decodes every record of batch, deep-copying them.
func readAll(batch []byte, maxDecompressed int) ([]Record, error) {
	it := NewIterator(batch, maxDecompressed)
	var out []Record
	for it.Next() {
		out = append(out, cloneRecord(it.Record()))
	}
	return out, it.Err()
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func cloneRecord(r *Record) Record {
	c := *r
	c.Key = cloneBytes(r.Key)
	c.Value = cloneBytes(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, RecordHeader{Key: h.Key, Value: cloneBytes(h.Value)})
	}
	return c
}

// sameBytes compares byte strings telling null (nil) from empty.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// diffRecord describes how got differs from want, or returns "".
// Offsets are compared only if checkOffset.
func diffRecord(got, want Record, checkOffset bool) string {
	switch {
	case got.Attributes != want.Attributes:
		return fmt.Sprintf("attributes %d, want %d", got.Attributes, want.Attributes)
	case checkOffset && got.Offset != want.Offset:
		return fmt.Sprintf("offset %d, want %d", got.Offset, want.Offset)
	case got.Timestamp != want.Timestamp:
		return fmt.Sprintf("timestamp %d, want %d", got.Timestamp, want.Timestamp)
	case !sameBytes(got.Key, want.Key):
		return fmt.Sprintf("key %q (nil %v), want %q (nil %v)", got.Key, got.Key == nil, want.Key, want.Key == nil)
	case !sameBytes(got.Value, want.Value):
		return fmt.Sprintf("value %q (nil %v), want %q (nil %v)", got.Value, got.Value == nil, want.Value, want.Value == nil)
	case len(got.Headers) != len(want.Headers):
		return fmt.Sprintf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i := range got.Headers {
		g, w := got.Headers[i], want.Headers[i]
		if g.Key != w.Key || !sameBytes(g.Value, w.Value) {
			return fmt.Sprintf("header %d = %q:%q, want %q:%q", i, g.Key, g.Value, w.Key, w.Value)
		}
	}
	return ""
}

// randBytes returns nil, empty, or random bytes up to max long.
func randBytes(rng *rand.Rand, max int) []byte {
	switch rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, rng.IntN(max+1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// randRecords returns 1..maxN random records with offsets 0..n-1.
func randRecords(rng *rand.Rand, maxN int) []Record {
	n := 1 + rng.IntN(maxN)
	base := rng.Int64N(1 << 42)
	recs := make([]Record, n)
	for i := range recs {
		r := &recs[i]
		r.Attributes = int8(rng.Uint32())
		r.Offset = int64(i)
		switch rng.IntN(4) {
		case 0:
			r.Timestamp = base
		case 1:
			r.Timestamp = base - rng.Int64N(1<<20) // before the first record
		case 2:
			r.Timestamp = int64(rng.Uint64()) // any int64: deltas wrap
		default:
			r.Timestamp = base + rng.Int64N(1<<30)
		}
		r.Key = randBytes(rng, 40)
		r.Value = randBytes(rng, 300)
		for range rng.IntN(4) {
			k := make([]byte, rng.IntN(12))
			for j := range k {
				k[j] = 'a' + byte(rng.IntN(26))
			}
			r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: randBytes(rng, 20)})
		}
	}
	return recs
}
