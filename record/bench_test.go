package record

import (
	"bytes"
	"fmt"
	"testing"
)

func benchRecords(n, size int, headers bool) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			Timestamp: 1_700_000_000_000 + int64(i),
			Key:       fmt.Appendf(nil, "key-%04d", i),
			Value:     bytes.Repeat([]byte{byte('a' + i%26)}, size),
		}
		if headers {
			recs[i].Headers = []RecordHeader{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
		}
	}
	return recs
}

func BenchmarkValidate(b *testing.B) {
	batch := build(b, BuilderOptions{}, benchRecords(100, 1024, false))
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Validate(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIterator(b *testing.B) {
	for _, id := range registeredCodecs() {
		b.Run(codecName(id), func(b *testing.B) {
			batch := build(b, BuilderOptions{Codec: id}, benchRecords(100, 100, false))
			it := NewIterator(batch, 0)
			b.SetBytes(int64(100 * 100))
			b.ReportAllocs()
			for b.Loop() {
				it.Reset(batch)
				n := 0
				for it.Next() {
					n += len(it.Record().Value)
				}
				if it.Err() != nil || n != 100*100 {
					b.Fatal(it.Err(), n)
				}
			}
		})
	}
}

func BenchmarkBuilder(b *testing.B) {
	recs := benchRecords(100, 100, false)
	for _, id := range registeredCodecs() {
		b.Run(codecName(id), func(b *testing.B) {
			bl := NewBuilder(BuilderOptions{Codec: id})
			dst := make([]byte, 0, 64<<10)
			b.SetBytes(int64(100 * 100))
			b.ReportAllocs()
			for b.Loop() {
				bl.Reset(BuilderOptions{Codec: id, ProducerID: 1, BaseSequence: 5})
				for _, r := range recs {
					bl.Add(r)
				}
				var err error
				if dst, err = bl.AppendTo(dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestZeroAllocs fails if the hot paths allocate in steady state.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	recs := benchRecords(50, 100, true)
	plain := build(t, BuilderOptions{}, recs)
	xored := build(t, BuilderOptions{Codec: xorID}, recs)
	it := NewIterator(plain, 0)
	bl := NewBuilder(BuilderOptions{})
	dst := make([]byte, 0, 64<<10)
	for name, f := range map[string]func(){
		"ParseHeader": func() { _, _ = ParseHeader(plain) },
		"ParseHeader short": func() {
			if _, err := ParseHeader(plain[:10]); err != ErrShort {
				t.Fatal(err)
			}
		},
		"Validate": func() {
			if _, err := Validate(plain); err != nil {
				t.Fatal(err)
			}
		},
		"Split": func() { _, _, _ = Split(plain) },
		"SetLogAppendTime": func() {
			SetBaseOffset(plain, 9)
			SetLogAppendTime(plain, 9)
		},
		"Iterator": func() {
			for _, batch := range [][]byte{plain, xored} {
				it.Reset(batch)
				for it.Next() {
				}
				if it.Err() != nil {
					t.Fatal(it.Err())
				}
			}
		},
		"Builder": func() {
			for _, id := range []int8{0, xorID} {
				bl.Reset(BuilderOptions{Codec: id})
				for _, r := range recs {
					bl.Add(r)
				}
				var err error
				if dst, err = bl.AppendTo(dst[:0]); err != nil {
					t.Fatal(err)
				}
			}
		},
	} {
		f() // warm up buffers and the header key cache
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}
