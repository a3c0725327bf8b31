package engine

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// Benchmarks of the embedded engine's hot paths, next to the physical
// ceiling (os.File writes of the same bytes). See BENCHMARKS.md.

var benchSizes = []struct {
	name string
	size int
}{
	{"100x100B", 100},
	{"100x1KiB", 1024},
}

// benchPartition opens an engine in a temporary directory with one
// partition of the given config. Retention runs every retentionEvery, or
// never if that is negative.
func benchPartition(b *testing.B, cfg TopicConfig, retentionEvery time.Duration) (*Engine, *Partition) {
	b.Helper()
	opts := quietOpts()
	opts.RetentionCheckInterval = retentionEvery
	e := mustOpen(b, b.TempDir(), opts)
	if err := e.CreateTopic("bench", cfg); err != nil {
		b.Fatal(err)
	}
	p, err := e.Partition("bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	return e, p
}

// The append benchmarks keep their files to a few segments of 256 MiB, so
// that they measure writes into the page cache rather than the disk's
// write-back: retention (or, for files, a remove) drops old segments, whose
// dirty pages then never reach the disk.
const (
	benchSegment   = 256 << 20
	benchRetention = 512 << 20
)

// BenchmarkAppend appends one pre-built batch of 100 records over and over
// (Append rewrites its baseOffset in place, nothing else): no fsync
// (flush.messages default), 256 MiB segments (each fsynced in the
// background when it rolls, as always), retention (the engine's own
// background pass, every 50 ms) keeping about 768 MiB.
func BenchmarkAppend(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			benchAppendLoop(b, TopicConfig{SegmentBytes: benchSegment, RetentionBytes: benchRetention, RetentionMs: -1}, simpleBatch(b, 100, sz.size, 1))
		})
	}
}

// benchAppendLoop appends batch b.N times to a partition of cfg, with
// retention every 50 ms.
func benchAppendLoop(b *testing.B, cfg TopicConfig, batch []byte) {
	e, p := benchPartition(b, cfg, 50*time.Millisecond)
	defer e.crash() // no fsync of what the benchmark wrote
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := p.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer() // not the wait for the last background fsync
}

// BenchmarkAppendCompressionType is BenchmarkAppend of 100 x 1 KiB
// records produced in snappy, to a topic whose compression.type keeps them
// ("producer", the zero-copy path) or re-compresses them (zstd, lz4), and
// with message.timestamp.before.max.ms set (every record's timestamp
// checked, the batch decompressed). SetBytes is the batch as produced.
func BenchmarkAppendCompressionType(b *testing.B) {
	var recs []record.Record
	for i := range 100 {
		v := make([]byte, 1024)
		for j := range v {
			v[j] = byte(i*7 + j%13) // compressible, as most payloads are
		}
		recs = append(recs, record.Record{Timestamp: time.Now().UnixMilli(), Value: v})
	}
	batch := buildBatch(b, recs, codec.Snappy, -1, 0, 0)
	for _, mode := range []struct{ name, key, value string }{
		{"producer", "compression.type", "producer"},
		{"zstd", "compression.type", "zstd"},
		{"lz4", "compression.type", "lz4"},
		{"timestamp-bound", "message.timestamp.before.max.ms", "86400000"},
	} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := TopicConfig{SegmentBytes: benchSegment, RetentionBytes: benchRetention, RetentionMs: -1}
			if err := cfg.Set(mode.key, mode.value); err != nil {
				b.Fatal(err)
			}
			benchAppendLoop(b, cfg, batch)
		})
	}
}

// BenchmarkFileWrite is the ceiling for BenchmarkAppend: the same bytes
// written with os.File.Write, and with WriteAt (which the segment uses), to
// plain files of 256 MiB, the oldest removed (in the background) once
// there are four. The "WriteAt+fsync-on-roll" variant also fsyncs each full
// file in the background, as the engine does with each rolled segment (to
// move its recovery point): the ceiling for the same I/O policy.
func BenchmarkFileWrite(b *testing.B) {
	for _, sz := range benchSizes {
		for _, mode := range []string{"Write", "WriteAt", "WriteAt+fsync-on-roll"} {
			b.Run(sz.name+"/"+mode, func(b *testing.B) {
				batch := simpleBatch(b, 100, sz.size, 1)
				dir := b.TempDir()
				n := 0
				var f *os.File
				var pos int64
				var wg sync.WaitGroup
				roll := func() {
					if old := f; old != nil {
						expired := filepath.Join(dir, strconv.Itoa(n-4))
						wg.Add(1)
						go func() {
							defer wg.Done()
							if mode == "WriteAt+fsync-on-roll" {
								old.Sync()
							}
							old.Close()
							os.Remove(expired)
						}()
					}
					var err error
					f, err = os.Create(filepath.Join(dir, strconv.Itoa(n)))
					if err != nil {
						b.Fatal(err)
					}
					n++
					pos = 0
				}
				roll()
				defer func() {
					wg.Wait()
					f.Close()
				}()
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if pos+int64(len(batch)) > benchSegment {
						roll()
					}
					var err error
					if mode == "Write" {
						_, err = f.Write(batch)
					} else {
						_, err = f.WriteAt(batch, pos)
					}
					if err != nil {
						b.Fatal(err)
					}
					pos += int64(len(batch))
				}
				b.StopTimer()
			})
		}
	}
}

// BenchmarkAppendAllocs fails if appending a batch allocates.
func BenchmarkAppendAllocs(b *testing.B) {
	batch := simpleBatch(b, 10, 100, 1)
	e, p := benchPartition(b, TopicConfig{}, -1)
	defer e.crash()
	// Warm up: the first append maps the indexes.
	if _, err := p.Append(batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		if _, err := p.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	// A segment roll allocates a little; 1 GiB segments do not roll here
	// unless b.N is enormous.
	if n := after.Mallocs - before.Mallocs; n > uint64(b.N)/10000 {
		b.Fatalf("Append allocated %d times in %d calls", n, b.N)
	}
}

// TestAppendDoesNotAllocate is BenchmarkAppendAllocs for every test run.
func TestAppendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, c := range []struct {
		name string
		cfg  TopicConfig
	}{
		{"plain", TopicConfig{}},
		{"log-append-time", TopicConfig{LogAppendTime: true}},
		{"flush.ms", TopicConfig{FlushMs: 60000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := mustOpen(t, t.TempDir(), quietOpts())
			defer e.Close()
			if err := e.CreateTopic("t", c.cfg); err != nil {
				t.Fatal(err)
			}
			p, _ := e.Partition("t", 0)
			batch := simpleBatch(t, 10, 100, 1)
			idem := buildIdem(t, 42, 0, 0, 1)
			seq := int32(1)
			if _, err := p.Append(batch); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Append(idem); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(500, func() {
				if _, err := p.Append(batch); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Append: %v allocations per call", n)
			}
			if n := testing.AllocsPerRun(500, func() {
				record.SetBaseOffset(idem, 0)
				setSequence(idem, seq)
				seq++
				if _, err := p.Append(idem); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("idempotent Append: %v allocations per call", n)
			}
			// Reads of views allocate nothing either.
			if n := testing.AllocsPerRun(500, func() {
				c, err := p.ReadBatches(0, 4096)
				if err != nil {
					t.Fatal(err)
				}
				c.Release()
				c, err = p.Read(0, 4096)
				if err != nil {
					t.Fatal(err)
				}
				c.Release()
			}); n != 0 {
				t.Errorf("ReadBatches and Read: %v allocations per call", n)
			}
		})
	}
}

// setSequence rewrites the baseSequence of a batch and its CRC.
func setSequence(b []byte, seq int32) {
	binary.BigEndian.PutUint32(b[record.PosBaseSequence:], uint32(seq))
	binary.BigEndian.PutUint32(b[record.PosCRC:], crc32.Checksum(b[record.PosAttributes:], crc32.MakeTable(crc32.Castagnoli)))
}

// fillPartition appends batches of 100 records of size bytes until the
// partition holds at least total bytes, with increasing timestamps.
func fillPartition(b *testing.B, p *Partition, size int, total int64, c int8) {
	b.Helper()
	recs := make([]record.Record, 100)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(i * j)
		}
		recs[i] = record.Record{Value: v, Key: []byte("key")}
	}
	var n int64
	for ts := int64(1); n < total; ts++ {
		for i := range recs {
			recs[i].Timestamp = ts
		}
		batch := buildBatch(b, recs, c, -1, 0, 0)
		if _, err := p.Append(batch); err != nil {
			b.Fatal(err)
		}
		n += int64(len(batch))
	}
}

func partitionBytes(p *Partition) int64 {
	var n int64
	for _, s := range p.log.Segments() {
		n += s.Size
	}
	return n
}

// BenchmarkReadSequential reads a 256 MiB partition from start to end in
// 1 MiB steps, copying the bytes out (so that they are really read):
// ReadBatches gives views of the mapped segments, Read regions that are
// read with pread.
func BenchmarkReadSequential(b *testing.B) {
	e, p := benchPartition(b, TopicConfig{SegmentBytes: 64 << 20}, -1)
	defer e.Close()
	fillPartition(b, p, 1024, 256<<20, codec.None)
	total := partitionBytes(p)
	buf := make([]byte, 1<<20+1<<17)
	for _, mode := range []string{"ReadBatches", "Read+pread"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(total)
			b.ReportAllocs()
			for range b.N {
				var got int64
				for off := int64(0); off < p.EndOffset(); {
					c, err := p.ReadBatches(off, 1<<20)
					if mode == "Read+pread" {
						c.Release()
						c, err = p.Read(off, 1<<20)
					}
					if err != nil {
						b.Fatal(err)
					}
					var data []byte
					if c.File != nil {
						data = buf[:c.Len]
						if _, err := c.File.ReadAt(data, c.Pos); err != nil {
							b.Fatal(err)
						}
					} else {
						data = buf[:copy(buf, c.Bytes)]
					}
					// Find the next offset after the whole batches read.
					last := lastOffsetIn(data)
					c.Release()
					got += int64(len(data))
					off = last + 1
				}
				if got < total {
					b.Fatalf("read %d of %d bytes", got, total)
				}
			}
		})
	}
}

// lastOffsetIn returns the last offset of the last whole batch in b.
func lastOffsetIn(b []byte) int64 {
	last := int64(-1)
	for len(b) > 0 {
		batch, rest, err := record.Split(b)
		if err != nil {
			break
		}
		h, _ := record.ParseHeader(batch)
		last = h.LastOffset()
		b = rest
	}
	return last
}

// BenchmarkRecords iterates every record of a partition; SetBytes counts
// the record values.
func BenchmarkRecords(b *testing.B) {
	for _, c := range []struct {
		name  string
		codec int8
	}{{"none", codec.None}, {"zstd", codec.Zstd}, {"lz4", codec.LZ4}} {
		b.Run(c.name, func(b *testing.B) {
			e, p := benchPartition(b, TopicConfig{}, -1)
			defer e.Close()
			fillPartition(b, p, 1024, 32<<20, c.codec)
			b.SetBytes(p.EndOffset() * 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				it := p.Records(0)
				n := int64(0)
				for it.Next() {
					n += int64(len(it.Record().Value))
				}
				if err := it.Close(); err != nil {
					b.Fatal(err)
				}
				if n != p.EndOffset()*1024 {
					b.Fatalf("iterated %d bytes", n)
				}
			}
			b.ReportMetric(float64(p.EndOffset())*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkOffsetForTimestamp looks up random timestamps in a partition of
// 64 segments.
func BenchmarkOffsetForTimestamp(b *testing.B) {
	e, p := benchPartition(b, TopicConfig{SegmentBytes: 1 << 20}, -1)
	defer e.Close()
	fillPartition(b, p, 100, 64<<20, codec.None)
	h, _ := p.ReadBatches(p.EndOffset()-1, 1)
	hdr, _ := record.ParseHeader(h.Bytes)
	h.Release()
	maxTS := hdr.MaxTimestamp
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := p.OffsetForTimestamp(1 + r.Int64N(maxTS)); err != nil {
			b.Fatal(err)
		}
	}
}
