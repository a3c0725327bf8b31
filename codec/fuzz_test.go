package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// fuzzMaxLimit caps the limit the fuzzer picks, keeping runs fast.
const fuzzMaxLimit = 1 << 20

// FuzzDecode feeds arbitrary bytes to every codec's decoder under an
// arbitrary limit. Decoders must not panic, must fail only with ErrCorrupt
// or ErrTooLarge, must leave dst's contents alone, and must never return
// more than limit bytes. Whatever decodes must survive a round trip.
func FuzzDecode(f *testing.F) {
	plain := [][]byte{{}, []byte("a"), []byte("hello, hello, hello, kafka"), records(3000, 1), make([]byte, 5000)}
	for _, b := range builtins {
		c := mustByID(f, b.id)
		for _, p := range plain {
			enc, err := c.AppendEncode(nil, p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(b.id), uint32(len(p)), enc)
			f.Add(uint8(b.id), uint32(len(p)/2), enc)
		}
	}
	f.Add(uint8(Snappy), uint32(100), xerialFrame([]byte("abc"), records(200, 2)))
	f.Add(uint8(Snappy), uint32(1<<20), append(binary.AppendUvarint(nil, 1<<30), 0, 'x'))
	f.Add(uint8(Zstd), uint32(1<<20), zstdStream(f, records(2000, 3)))
	f.Add(uint8(Gzip), uint32(1<<20), []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add(uint8(LZ4), uint32(1<<20), []byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7})

	strict := newStrictZstd(f)
	f.Fuzz(func(t *testing.T, id uint8, limit uint32, data []byte) {
		c, err := ByID(int8(id % (uint8(MaxID) + 1)))
		if err != nil {
			if !errors.Is(err, ErrUnknownCodec) {
				t.Fatal(err)
			}
			return
		}
		lim := int(limit % (fuzzMaxLimit + 1))
		prefix := []byte("prefix")
		dst := bytes.Clone(prefix)
		out, err := c.AppendDecode(dst, data, lim)
		if !bytes.Equal(dst, prefix) {
			t.Fatalf("%s: dst contents changed", c.Name())
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s: unexpected error %v", c.Name(), err)
			}
			if !bytes.Equal(out, prefix) {
				t.Fatalf("%s: error returned a changed dst", c.Name())
			}
		} else {
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("%s: prefix clobbered", c.Name())
			}
			got := out[len(prefix):]
			if len(got) > lim {
				t.Fatalf("%s: %d bytes decoded under limit %d", c.Name(), len(got), lim)
			}
			enc, err := c.AppendEncode(nil, got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.AppendDecode(nil, enc, len(got))
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("%s: round trip of decoded output failed: %v", c.Name(), err)
			}
		}
		if c.ID() == Zstd {
			checkZstdSize(t, strict, data, out, err)
		}
	})
}

// newStrictZstd returns a zstd decoder without the codec's cap limit, to check
// zstdSize against.
func newStrictZstd(f *testing.F) *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		f.Fatal(err)
	}
	return d
}

// checkZstdSize checks that zstdSize never rejects what the library
// decodes, nor underestimates its size, and that the codec agrees.
func checkZstdSize(t *testing.T, strict *zstd.Decoder, data, out []byte, codecErr error) {
	if len(data) == 0 {
		return
	}
	want, err := strict.DecodeAll(data, nil)
	if err != nil {
		return
	}
	claimed, bound, err := zstdSize(data)
	if err != nil {
		t.Fatalf("zstdSize rejects what the library decodes: %v", err)
	}
	if bound < uint64(len(want)) || claimed > uint64(len(want)) {
		t.Fatalf("zstdSize: claimed %d, bound %d, decoded %d", claimed, bound, len(want))
	}
	if codecErr == nil && !bytes.Equal(out[len("prefix"):], want) {
		t.Fatal("codec and library decode differently")
	}
}
