package record

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/easel-io/easel/codec"
)

// AppendCompacted keeps what compaction must keep of a batch: offsets,
// producer fields, codec, each kept record's fields, and (with a horizon)
// the record timestamps relative to it.
func TestAppendCompacted(t *testing.T) {
	for _, c := range []int8{codec.None, codec.Gzip, codec.Snappy, codec.LZ4, codec.Zstd} {
		for _, horizon := range []int64{-1, 5_000_000} {
			t.Run(fmt.Sprintf("codec=%d/horizon=%d", c, horizon), func(t *testing.T) {
				b := NewBuilder(BuilderOptions{Codec: c, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 40, PartitionLeaderEpoch: 3})
				var in []Record
				for i := range 6 {
					r := Record{Timestamp: 1000 + int64(i)*10, Key: []byte{'k', byte('0' + i)}, Value: []byte(fmt.Sprint("v", i))}
					if i == 3 {
						r.Value = nil
						r.Headers = []RecordHeader{{Key: "h", Value: []byte("x")}, {Key: "n"}}
					}
					b.Add(r)
					in = append(in, r)
				}
				orig, err := b.AppendTo(nil)
				if err != nil {
					t.Fatal(err)
				}
				SetBaseOffset(orig, 100)
				oh, _ := Validate(orig)
				keep := []Record{in[1], in[3], in[4]}
				for i, k := range []int64{101, 103, 104} {
					keep[i].Offset = k
				}
				out, err := AppendCompacted([]byte("prefix"), oh, keep, horizon)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(out, []byte("prefix")) {
					t.Fatal("dst prefix lost")
				}
				out = out[len("prefix"):]
				h, err := ValidateStored(out)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Validate(out); !errors.Is(err, ErrInvalid) {
					t.Fatalf("a thinned batch passes the produce rule: %v", err)
				}
				if h.BaseOffset != 100 || h.LastOffset() != 105 || h.RecordCount != 3 || h.ProducerID != 7 || h.ProducerEpoch != 2 ||
					h.BaseSequence != 40 || h.LastSequence() != 45 || h.PartitionLeaderEpoch != 3 || h.Codec() != c || h.MaxTimestamp != 1040 {
					t.Fatalf("header %+v", h)
				}
				if hz, ok := h.DeleteHorizon(); ok != (horizon >= 0) || (ok && hz != horizon) {
					t.Fatalf("delete horizon %d %v, want %d", hz, ok, horizon)
				}
				it := NewIterator(out, 0)
				i := 0
				for it.Next() {
					r, w := it.Record(), keep[i]
					if r.Offset != w.Offset || r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) ||
						(r.Value == nil) != (w.Value == nil) || !bytes.Equal(r.Value, w.Value) || len(r.Headers) != len(w.Headers) {
						t.Fatalf("record %d: %+v, want %+v", i, r, w)
					}
					for j := range w.Headers {
						if r.Headers[j].Key != w.Headers[j].Key || (r.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
							t.Fatalf("record %d header %d: %+v", i, j, r.Headers[j])
						}
					}
					i++
				}
				if it.Err() != nil || i != 3 {
					t.Fatalf("%d records, %v", i, it.Err())
				}
				// Nothing kept: an empty, uncompressed batch spanning the same offsets.
				empty, err := AppendCompacted(nil, oh, nil, -1)
				if err != nil {
					t.Fatal(err)
				}
				eh, err := ValidateStored(empty)
				if err != nil || len(empty) != HeaderSize || eh.RecordCount != 0 || eh.LastOffset() != 105 || eh.Codec() != codec.None || eh.LastSequence() != 45 {
					t.Fatalf("empty batch %+v: %v", eh, err)
				}
			})
		}
	}
}

func TestAppendCompactedRefuses(t *testing.T) {
	h := Header{BaseOffset: 10, LastOffsetDelta: 2, Magic: Magic}
	for _, recs := range [][]Record{
		{{Offset: 9, Key: []byte("a")}},
		{{Offset: 13, Key: []byte("a")}},
		{{Offset: 11}, {Offset: 11}},
		{{Offset: 10}, {Offset: 11}, {Offset: 12}, {Offset: 12}},
	} {
		if _, err := AppendCompacted(nil, h, recs, -1); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%v: got %v, want ErrInvalid", recs, err)
		}
	}
}
