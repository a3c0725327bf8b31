package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// crash drops the engine as a crash of the process would: background work
// stops and every file and mapping is released, but nothing is fsynced and
// no producer snapshot, recovery point or clean-shutdown marker is written.
// What was appended stays in the page cache, as after a real crash.
func (e *Engine) crash() {
	e.mu.Lock()
	if e.mu.closed {
		e.mu.Unlock()
		return
	}
	e.mu.closed = true
	e.mu.Unlock()
	close(e.stop)
	e.wg.Wait()
	for _, t := range e.mu.topics {
		for _, p := range t.parts {
			p.abandon()
		}
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// countMappings counts this process's memory mappings of files under dir.
func countMappings(t testing.TB, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("cannot read mappings: %v", err)
	}
	return bytes.Count(b, []byte(dir))
}

// codecs lists the registered codec ids.
func codecs() []int8 {
	var out []int8
	for id := int8(0); id <= codec.MaxID; id++ {
		if id == codec.None {
			out = append(out, id)
			continue
		}
		if _, err := codec.ByID(id); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// randBytes returns nil, empty, random or compressible bytes of up to max
// bytes.
func randBytes(r *rand.Rand, max int) []byte {
	switch r.IntN(8) {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2, 3: // compressible
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = "abcab"[i%5]
		}
		return b
	default:
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
}

// randRecords returns 1 to 20 records (sometimes up to 200), with random
// keys, values, headers and timestamps near base.
func randRecords(r *rand.Rand, base int64, maxValue int) []record.Record {
	n := 1 + r.IntN(20)
	if r.IntN(10) == 0 {
		n = 1 + r.IntN(200)
	}
	recs := make([]record.Record, n)
	for i := range recs {
		rec := record.Record{
			Timestamp: base + r.Int64N(2000) - 1000,
			Key:       randBytes(r, 32),
			Value:     randBytes(r, maxValue),
		}
		for range r.IntN(4) {
			rec.Headers = append(rec.Headers, record.RecordHeader{Key: "h" + strconv.Itoa(r.IntN(5)), Value: randBytes(r, 16)})
		}
		recs[i] = rec
	}
	return recs
}

// buildBatch builds one batch; pid < 0 makes it non-idempotent.
func buildBatch(t testing.TB, recs []record.Record, c int8, pid int64, epoch int16, seq int32) []byte {
	t.Helper()
	opts := record.BuilderOptions{Codec: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if pid >= 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, epoch, seq
	}
	b := record.NewBuilder(opts)
	for _, r := range recs {
		b.Add(r)
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return out
}

// simpleBatch builds a non-idempotent, uncompressed batch of n records of
// size bytes each, with timestamp ts.
func simpleBatch(t testing.TB, n, size int, ts int64) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(i + j)
		}
		recs[i] = record.Record{Timestamp: ts, Value: v}
	}
	return buildBatch(t, recs, codec.None, -1, 0, 0)
}

// splitBatches cuts bytes into whole batches, failing on anything else.
func splitBatches(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		batch, rest, err := record.Split(b)
		if err != nil {
			t.Fatalf("split: %v", err)
		}
		// As stored: compacted batches hold fewer records than offsets.
		if _, err := record.ValidateStored(batch); err != nil {
			t.Fatalf("stored batch does not validate: %v", err)
		}
		out = append(out, batch)
		b = rest
	}
	return out
}

// readAllBatches reads a partition's batches from its start offset with
// ReadBatches.
func readAllBatches(t testing.TB, p *Partition) [][]byte {
	t.Helper()
	var out [][]byte
	for off := p.StartOffset(); off < p.EndOffset(); {
		c, err := p.ReadBatches(off, 1<<16)
		if err != nil {
			t.Fatalf("ReadBatches(%d): %v", off, err)
		}
		bs := splitBatches(t, c.Bytes)
		for _, b := range bs {
			out = append(out, bytes.Clone(b))
		}
		c.Release()
		if len(bs) == 0 {
			t.Fatalf("ReadBatches(%d) returned nothing below end %d", off, p.EndOffset())
		}
		h, _ := record.ParseHeader(bs[len(bs)-1])
		off = h.LastOffset() + 1
	}
	return out
}

// partDir is the directory of a partition of a disk engine.
func partDir(dir, topic string, part int32) string {
	return filepath.Join(dir, logName(topic, part))
}

// segmentFiles lists the .log files of a partition directory, oldest first.
func segmentFiles(t testing.TB, pdir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(pdir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func describe(b []byte) string {
	h, err := record.ParseHeader(b)
	if err != nil {
		return fmt.Sprintf("unparsable (%v)", err)
	}
	return fmt.Sprintf("batch [%d, %d] %d bytes", h.BaseOffset, h.LastOffset(), h.Size())
}

// spin runs step over and over on a goroutine of wg until stop is closed.
func spin(wg *sync.WaitGroup, stop <-chan struct{}, step func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				step()
			}
		}
	}()
}
