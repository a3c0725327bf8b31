package index

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

const benchBytes = 10 << 20 // Kafka's default segment.index.bytes

// fullOffset returns a writable offset index filled to its 10 MiB capacity.
func fullOffset(b *testing.B) *OffsetIndex {
	b.Helper()
	x, err := OpenOffset(filepath.Join(b.TempDir(), "o"), base, benchBytes)
	if err != nil {
		b.Fatal(err)
	}
	for i := int64(0); !x.Full(); i++ {
		if err := x.Append(base+10*i, uint32(100*i)); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { x.Close() })
	return x
}

func BenchmarkOffsetLookup(b *testing.B) {
	x := fullOffset(b)
	n := int64(x.Len())
	hot := int64(hotBytes / OffsetEntrySize)
	for _, bb := range []struct {
		name   string
		target func(i int64) int64
	}{
		{"hot", func(i int64) int64 { return base + 10*(n-1-(i*7919)%hot) + 3 }},
		{"cold", func(i int64) int64 { return base + 10*((i*104729)%(n-hot)) + 3 }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(OffsetEntrySize)
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				if _, ok := x.Lookup(bb.target(i)); !ok {
					b.Fatal("not found")
				}
				i++
			}
		})
	}
}

func BenchmarkTimeLookup(b *testing.B) {
	x, err := OpenTime(filepath.Join(b.TempDir(), "t"), base, benchBytes)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	for i := int64(0); !x.Full(); i++ {
		if err := x.Append(1e12+10*i, base+10*i); err != nil {
			b.Fatal(err)
		}
	}
	n := int64(x.Len())
	hot := int64(hotBytes / TimeEntrySize)
	for _, bb := range []struct {
		name   string
		target func(i int64) int64
	}{
		{"hot", func(i int64) int64 { return 1e12 + 10*(n-1-(i*7919)%hot) + 3 }},
		{"cold", func(i int64) int64 { return 1e12 + 10*((i*104729)%(n-hot)) + 3 }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(TimeEntrySize)
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				if _, ok := x.Lookup(bb.target(i)); !ok {
					b.Fatal("not found")
				}
				i++
			}
		})
	}
}

func BenchmarkOffsetAppend(b *testing.B) {
	x, err := OpenOffset(filepath.Join(b.TempDir(), "o"), base, benchBytes)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	b.SetBytes(OffsetEntrySize)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		if x.Full() {
			b.StopTimer()
			if err := x.Reset(); err != nil {
				b.Fatal(err)
			}
			i = 0
			b.StartTimer()
		}
		if err := x.Append(base+i, uint32(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkTimeAppend(b *testing.B) {
	x, err := OpenTime(filepath.Join(b.TempDir(), "t"), base, benchBytes)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	b.SetBytes(TimeEntrySize)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		if x.Full() {
			b.StopTimer()
			if err := x.Reset(); err != nil {
				b.Fatal(err)
			}
			i = 0
			b.StartTimer()
		}
		if err := x.Append(i, base+i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkOpen measures opening a full, trimmed 10 MiB offset index
// read-only, which validates every entry.
func BenchmarkOpen(b *testing.B) {
	x := fullOffset(b)
	if err := x.Trim(); err != nil {
		b.Fatal(err)
	}
	path := x.f.path
	b.SetBytes(benchBytes)
	b.ReportAllocs()
	for b.Loop() {
		r, err := OpenOffset(path, base, 0)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// BenchmarkFirstWrite measures the first entry written into a freshly
// created index file preallocated to the given size: why new index files
// start at initialBytes and grow, instead of at segment.index.bytes (on
// ext4 the first write into a large sparse mapping costs milliseconds).
func BenchmarkFirstWrite(b *testing.B) {
	for _, size := range []int{initialBytes, 10 << 20} {
		b.Run(fmt.Sprintf("prealloc=%dKiB", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			i := 0
			for b.Loop() {
				b.StopTimer()
				f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
				if err != nil {
					b.Fatal(err)
				}
				i++
				if err := f.Truncate(int64(size)); err != nil {
					b.Fatal(err)
				}
				m, err := mapFile(f, size, true)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
				b.StartTimer()
				m[0] = 1
				b.StopTimer()
				if err := unmap(m); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
