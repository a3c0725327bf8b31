package codec

import "testing"

// benchPayload is a 100 KiB records section of about 100 JSON records:
// repetitive structure around random ids, compressing 3–6× depending on
// the codec.
func benchPayload() []byte { return records(100<<10, 42) }

func BenchmarkEncode(b *testing.B) {
	payload := benchPayload()
	for _, bc := range builtins {
		b.Run(bc.name, func(b *testing.B) {
			c := mustByID(b, bc.id)
			dst, _ := c.AppendEncode(nil, payload)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = c.AppendEncode(dst[:0], payload)
			}
			b.ReportMetric(float64(len(payload))/float64(len(dst)), "ratio")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	payload := benchPayload()
	for _, bc := range builtins {
		b.Run(bc.name, func(b *testing.B) {
			c := mustByID(b, bc.id)
			enc, _ := c.AppendEncode(nil, payload)
			dst := make([]byte, 0, len(payload))
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = c.AppendDecode(dst[:0], enc, len(payload)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeFresh decodes into a nil dst each time, as a caller
// without a buffer to reuse would, so it counts the output allocation.
func BenchmarkDecodeFresh(b *testing.B) {
	payload := benchPayload()
	for _, bc := range builtins {
		b.Run(bc.name, func(b *testing.B) {
			c := mustByID(b, bc.id)
			enc, _ := c.AppendEncode(nil, payload)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.AppendDecode(nil, enc, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
