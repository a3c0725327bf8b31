package record

import (
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzSeeds are valid and broken batches for both fuzz targets; testdata/fuzz
// holds a few more.
func fuzzSeeds(f *testing.F) {
	recs := []Record{
		{Key: []byte("k"), Value: []byte("value"), Timestamp: 1_700_000_000_000, Headers: []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Value: []byte{}, Timestamp: 1_699_999_999_000},
		{Key: []byte{}, Attributes: 1},
	}
	for _, id := range registeredCodecs() {
		b := NewBuilder(BuilderOptions{Codec: id, ProducerID: 5, ProducerEpoch: 1, BaseSequence: 3})
		for _, r := range recs {
			b.Add(r)
		}
		batch, err := b.AppendTo(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(batch)
	}
	one := NewBuilder(BuilderOptions{})
	one.Add(Record{})
	b, _ := one.AppendTo(nil)
	f.Add(b)
	lat := append([]byte{}, b...)
	SetLogAppendTime(lat, 42)
	f.Add(lat)
	f.Add(b[:len(b)-1])
	f.Add(append(append([]byte{}, b...), b...))
	f.Add(b[:HeaderSize])
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Add(rawBatch(rec([]byte{0}, vi(0), vi(0), vi(-1), vi(-1), vi(1), vi(1), []byte("k"), vi(-1)), 1, 0))
}

func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ph, perr := ParseHeader(b)
		h, err := Validate(b)
		for _, s := range []error{ErrShort, ErrCorrupt, ErrInvalid} {
			if errors.Is(perr, s) && !errors.Is(err, s) {
				t.Fatalf("ParseHeader %v but Validate %v", perr, err)
			}
		}
		batch, rest, serr := Split(b)
		if serr == nil {
			if len(batch)+len(rest) != len(b) || len(batch) < HeaderSize || &batch[0] != &b[0] {
				t.Fatalf("Split: %d + %d bytes of %d", len(batch), len(rest), len(b))
			}
		} else if batch != nil || len(rest) != len(b) {
			t.Fatalf("Split error %v with %d, %d bytes", serr, len(batch), len(rest))
		}
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if perr != nil || ph != h || h.Size() != len(b) || serr != nil || len(rest) != 0 {
			t.Fatalf("Validate accepted %+v; ParseHeader %v, Split %v rest %d", h, perr, serr, len(rest))
		}
		if h.Magic != Magic || h.RecordCount <= 0 || h.LastOffsetDelta != h.RecordCount-1 {
			t.Fatalf("Validate accepted %+v", h)
		}
		c := append([]byte{}, b...)
		SetBaseOffset(c, h.BaseOffset+1)
		SetPartitionLeaderEpoch(c, h.PartitionLeaderEpoch+1)
		SetLogAppendTime(c, 12345)
		h2, err := Validate(c)
		if err != nil || !h2.LogAppendTime() || h2.MaxTimestamp != 12345 || h2.BaseOffset != h.BaseOffset+1 {
			t.Fatalf("after setters: %+v %v", h2, err)
		}
	})
}

func FuzzIterator(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkIterator(t, b)
		// Random bytes almost never carry a good CRC and lastOffsetDelta;
		// repair both so the records themselves get explored.
		if h, err := ParseHeader(b); err == nil && h.Size() == len(b) && h.RecordCount > 0 {
			c := append([]byte{}, b...)
			binary.BigEndian.PutUint32(c[PosLastOffsetDelta:], uint32(h.RecordCount-1))
			fixCRC(c)
			checkIterator(t, c)
		}
	})
}

// checkIterator iterates b, which must not panic, and if b is valid and its
// records decode, checks that rebuilding from them gives the same records.
func checkIterator(t *testing.T, b []byte) {
	t.Helper()
	const limit = 1 << 20
	var got []Record
	it := NewIterator(b, limit)
	for it.Next() {
		got = append(got, cloneRecord(it.Record()))
	}
	if err := it.Err(); err != nil {
		if !errors.Is(err, ErrShort) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error without a sentinel: %v", err)
		}
		return
	}
	h, err := Validate(b)
	if err != nil {
		return
	}
	if len(got) != int(h.RecordCount) {
		t.Fatalf("%d records, recordCount %d", len(got), h.RecordCount)
	}
	// Rebuild from the decoded records: the records must come back the
	// same, with offsets renumbered from 0.
	bl := NewBuilder(BuilderOptions{Codec: h.Codec(), ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, BaseSequence: h.BaseSequence})
	for _, r := range got {
		bl.Add(r)
	}
	out, err := bl.AppendTo(nil)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if _, err := Validate(out); err != nil {
		t.Fatalf("rebuilt batch: %v", err)
	}
	again, err := readAll(out, 0)
	if err != nil || len(again) != len(got) {
		t.Fatalf("rebuilt batch: %d records, %v", len(again), err)
	}
	for i := range got {
		if d := diffRecord(again[i], got[i], false); d != "" || again[i].Offset != int64(i) {
			t.Fatalf("record %d: %s (offset %d)", i, d, again[i].Offset)
		}
	}
}
