package record

// Cross-checks against franz-go's kmsg, an independent implementation of the
// batch and record formats: what we build, kmsg must read, and what kmsg
// builds, we must read.

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsgRecords reads the records section of a kmsg batch, decompressing it
// with the registered codec (or, for gzip, the standard library's reader, an
// independent one), and decodes each record with kmsg.Record.ReadFrom.
func kmsgRecords(t *testing.T, kb *kmsg.RecordBatch) []kmsg.Record {
	t.Helper()
	raw := kb.Records
	id := int8(kb.Attributes & 7)
	switch {
	case id == codec.None:
	case id == codec.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gzip: %v", err)
		}
	default:
		c, err := codec.ByID(id)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = c.AppendDecode(nil, raw, 1<<30); err != nil {
			t.Fatalf("decompress: %v", err)
		}
	}
	var out []kmsg.Record
	for len(raw) > 0 {
		var r kmsg.Record
		if err := r.ReadFrom(raw); err != nil {
			t.Fatalf("kmsg record %d: %v", len(out), err)
		}
		n := len(binary.AppendVarint(nil, int64(r.Length))) + int(r.Length)
		if n > len(raw) {
			t.Fatalf("kmsg record %d: length %d past the end", len(out), r.Length)
		}
		raw = raw[n:]
		out = append(out, r)
	}
	return out
}

func TestKmsgReadsOurBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 100 {
		for _, id := range registeredCodecs() {
			opts := BuilderOptions{
				Codec: id, ProducerID: rng.Int64N(1 << 40), ProducerEpoch: int16(rng.IntN(1000)),
				BaseSequence: rng.Int32(), Transactional: rng.IntN(2) == 0, PartitionLeaderEpoch: -1,
			}
			recs := randRecords(rng, 30)
			batch := build(t, opts, recs)
			SetBaseOffset(batch, int64(iter)*1000)

			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(batch); err != nil {
				t.Fatalf("kmsg ReadFrom: %v", err)
			}
			if got := kb.AppendTo(nil); !bytes.Equal(got, batch) {
				t.Fatalf("kmsg re-encoding differs from our batch")
			}
			if want := crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(kb.CRC) != want {
				t.Fatalf("kmsg CRC %#x, CRC-32C of bytes 21.. %#x", uint32(kb.CRC), want)
			}
			maxTs := recs[0].Timestamp
			for _, r := range recs {
				maxTs = max(maxTs, r.Timestamp)
			}
			attr := int16(id)
			if opts.Transactional {
				attr |= 0x10
			}
			switch {
			case kb.FirstOffset != int64(iter)*1000, int(kb.Length) != len(batch)-12, kb.PartitionLeaderEpoch != -1, kb.Magic != 2:
				t.Fatalf("framing: %+v", kb)
			case kb.Attributes != attr, kb.LastOffsetDelta != int32(len(recs)-1), kb.NumRecords != int32(len(recs)):
				t.Fatalf("attributes/counts: attr %#x lod %d n %d", kb.Attributes, kb.LastOffsetDelta, kb.NumRecords)
			case kb.FirstTimestamp != recs[0].Timestamp, kb.MaxTimestamp != maxTs:
				t.Fatalf("timestamps: %d %d", kb.FirstTimestamp, kb.MaxTimestamp)
			case kb.ProducerID != opts.ProducerID, kb.ProducerEpoch != opts.ProducerEpoch, kb.FirstSequence != opts.BaseSequence:
				t.Fatalf("producer: %d %d %d", kb.ProducerID, kb.ProducerEpoch, kb.FirstSequence)
			case len(kb.Records) != len(batch)-61:
				t.Fatalf("records section %d bytes", len(kb.Records))
			}
			krs := kmsgRecords(t, &kb)
			if len(krs) != len(recs) {
				t.Fatalf("kmsg found %d records, want %d", len(krs), len(recs))
			}
			for i, kr := range krs {
				got := Record{
					Attributes: kr.Attributes,
					Offset:     kb.FirstOffset + int64(kr.OffsetDelta),
					Timestamp:  kb.FirstTimestamp + kr.TimestampDelta64,
					Key:        kr.Key,
					Value:      kr.Value,
				}
				for _, h := range kr.Headers {
					got.Headers = append(got.Headers, RecordHeader{Key: h.Key, Value: h.Value})
				}
				want := recs[i]
				want.Offset = int64(iter)*1000 + int64(i)
				if d := diffRecord(got, want, true); d != "" {
					t.Fatalf("codec %d record %d via kmsg: %s", id, i, d)
				}
			}
		}
	}
}

// kmsgBatch builds a batch with kmsg from recs, compressing the records with
// the standard library for gzip and with the registered codec otherwise, and
// fills in the CRC with hash/crc32.
func kmsgBatch(t *testing.T, id int8, baseOffset int64, recs []Record) []byte {
	t.Helper()
	var raw []byte
	maxTs := recs[0].Timestamp
	for i, r := range recs {
		maxTs = max(maxTs, r.Timestamp)
		kr := kmsg.Record{
			Attributes:       r.Attributes,
			TimestampDelta64: r.Timestamp - recs[0].Timestamp,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1) // Length 0 encodes in one byte
		raw = kr.AppendTo(raw)
	}
	switch id {
	case codec.None:
	case codec.Gzip:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		raw = buf.Bytes()
	default:
		c, err := codec.ByID(id)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = c.AppendEncode(nil, raw); err != nil {
			t.Fatal(err)
		}
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          baseOffset,
		Length:               int32(49 + len(raw)),
		PartitionLeaderEpoch: 4,
		Magic:                2,
		Attributes:           int16(id),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       recs[0].Timestamp,
		MaxTimestamp:         maxTs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              raw,
	}
	b := kb.AppendTo(nil)
	kb.CRC = int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return kb.AppendTo(b[:0])
}

func TestWeReadKmsgBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 100 {
		for _, id := range registeredCodecs() {
			recs := randRecords(rng, 30)
			batch := kmsgBatch(t, id, 77, recs)
			h, err := Validate(batch)
			if err != nil {
				t.Fatalf("iter %d codec %d: Validate: %v", iter, id, err)
			}
			if h.BaseOffset != 77 || h.PartitionLeaderEpoch != 4 || h.Codec() != id || h.RecordCount != int32(len(recs)) || h.ProducerID != -1 {
				t.Fatalf("header %+v", h)
			}
			got, err := readAll(batch, 0)
			if err != nil {
				t.Fatalf("iter %d codec %d: %v", iter, id, err)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i := range got {
				want := recs[i]
				want.Offset = 77 + int64(i)
				if d := diffRecord(got[i], want, true); d != "" {
					t.Fatalf("iter %d codec %d record %d: %s", iter, id, i, d)
				}
			}
		}
	}
}
