package engine

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/easel-io/easel/record"
)

// FuzzProducerSnapshot feeds arbitrary bytes to the producer snapshot
// decoder: it must not panic, and whatever it accepts must encode back to
// the same bytes.
func FuzzProducerSnapshot(f *testing.F) {
	var st producerState
	f.Add(st.marshal(0))
	st.update(hdr(7, 0, 0, 3, 100))
	st.update(hdr(7, 0, 3, 2, 103))
	st.update(hdr(9, 2, 0, 1, 105))
	good := st.marshal(106)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("EPS1"))
	huge := binary.BigEndian.AppendUint32(append(append([]byte(nil), snapshotMagic[:]...), make([]byte, 8)...), 1<<31)
	f.Add(binary.BigEndian.AppendUint64(huge, xxhash.Sum64(huge)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st producerState
		end, err := st.unmarshal(b)
		if err != nil {
			return
		}
		if out := st.marshal(end); !bytes.Equal(out, b) {
			t.Fatalf("accepted snapshot does not round-trip:\n in %x\nout %x", b, out)
		}
		for _, e := range st.m {
			if e.n < 0 || e.n > producerWindow {
				t.Fatalf("entry with %d batches", e.n)
			}
		}
	})
}

func TestProducerSnapshotRoundTrip(t *testing.T) {
	var st producerState
	for i := range 12 { // more than the window for one producer
		st.update(hdr(7, 1, int32(2*i), 2, int64(10*i)))
	}
	st.update(hdr(9, 0, -1, 1, 500)) // non-idempotent: epoch only
	b := st.marshal(600)
	var got producerState
	end, err := got.unmarshal(b)
	if err != nil || end != 600 {
		t.Fatalf("unmarshal: %d, %v", end, err)
	}
	e := got.m[7]
	if e == nil || e.n != producerWindow || e.epoch != 1 || e.recent[producerWindow-1].offset != 110 || e.recent[0].firstSeq != 14 {
		t.Fatalf("producer 7: %+v", e)
	}
	if e := got.m[9]; e == nil || e.n != 0 {
		t.Fatalf("producer 9: %+v", e)
	}
	b[len(b)/2] ^= 1
	if _, err := got.unmarshal(b); err == nil {
		t.Fatal("a flipped bit went unnoticed")
	}
}

// hdr is the header of an appended batch of n records at offset.
func hdr(pid int64, epoch int16, seq int32, n int32, offset int64) record.Header {
	return record.Header{BaseOffset: offset, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LastOffsetDelta: n - 1, RecordCount: n}
}
