package engine

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// BenchmarkCompaction times one compaction pass over about 24 MB of
// sealed segments (100,000 records of 200-byte values in lz4 batches of
// 10), with many duplicate keys (1,000 keys) and with few (every key
// unique): MB/s of log cleaned, the key map's size, the heap allocated by
// the pass, and the share of bytes left.
func BenchmarkCompaction(b *testing.B) {
	for _, bc := range []struct {
		name string
		keys int // 0: every key unique
	}{{"keys=1000", 1000}, {"keys=unique", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 100_000
			var cleaned, left, allocs int64
			var mapBytes int
			for range b.N {
				b.StopTimer()
				e := mustOpen(b, b.TempDir(), quietOpts())
				p := compactTopic(b, e, 4<<20)
				r := rand.New(rand.NewPCG(1, 2))
				val := make([]byte, 200)
				recs := make([]record.Record, 10)
				for i := 0; i < n; i += len(recs) {
					for j := range recs {
						k := i + j
						if bc.keys > 0 {
							k = r.IntN(bc.keys)
						}
						for v := range val {
							val[v] = byte('a' + r.IntN(26))
						}
						recs[j] = record.Record{Key: []byte("key-" + strconv.Itoa(k)), Value: append([]byte(nil), val...)}
					}
					if _, err := p.Append(buildBatch(b, recs, codec.LZ4, -1, 0, 0)); err != nil {
						b.Fatal(err)
					}
				}
				segs := p.log.Segments()
				var before int64
				for _, s := range segs[:len(segs)-1] {
					before += s.Size
				}
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				b.StartTimer()
				if _, err := e.EnforceRetention(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				runtime.ReadMemStats(&m1)
				var after int64
				segs = p.log.Segments()
				for _, s := range segs[:len(segs)-1] {
					after += s.Size
				}
				cleaned += before
				left += after
				allocs += int64(m1.TotalAlloc - m0.TotalAlloc)
				mapBytes = len(e.cleaner.m.slots) * offsetMapEntry
				e.Close()
			}
			b.ReportMetric(float64(cleaned)/1e6/b.Elapsed().Seconds(), "MB/s")
			b.ReportMetric(float64(mapBytes)/(1<<20), "map-MiB")
			b.ReportMetric(float64(allocs)/float64(b.N)/(1<<20), "alloc-MiB/pass")
			b.ReportMetric(float64(left)/float64(cleaned), "bytes-left")
		})
	}
}

// BenchmarkProduceWhileCompacting measures appends (batches of 10
// records of 200 bytes, 1,000 keys) to a compacted partition with small
// segments, alone and while another goroutine compacts it without pause.
func BenchmarkProduceWhileCompacting(b *testing.B) {
	for _, cleaning := range []bool{false, true} {
		b.Run("cleaning="+strconv.FormatBool(cleaning), func(b *testing.B) {
			e := mustOpen(b, b.TempDir(), quietOpts())
			defer e.Close()
			p := compactTopic(b, e, 1<<20)
			r := rand.New(rand.NewPCG(1, 2))
			recs := make([]record.Record, 10)
			for j := range recs {
				recs[j] = record.Record{Key: []byte("key-" + strconv.Itoa(r.IntN(1000))), Value: make([]byte, 200)}
			}
			batch := buildBatch(b, recs, codec.None, -1, 0, 0)
			stop := make(chan struct{})
			done := make(chan int)
			if cleaning {
				go func() {
					passes := 0
					for {
						select {
						case <-stop:
							done <- passes
							return
						default:
						}
						if _, err := e.EnforceRetention(); err != nil {
							b.Error(err)
						}
						passes++
					}
				}()
			}
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			for range b.N {
				if _, err := p.Append(append([]byte(nil), batch...)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if cleaning {
				close(stop)
				b.ReportMetric(float64(<-done), "passes")
			}
		})
	}
}
