package codec

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// deflateMaxRatio bounds deflate's expansion (about 1032:1, from 258-byte
// matches in 2-bit codes); it caps the output size hint taken from a gzip
// trailer, which the input controls.
const deflateMaxRatio = 1032

// gzipTrailerLen is the CRC-32 and ISIZE (uncompressed size mod 2^32, little
// endian) that end every gzip member.
const gzipTrailerLen = 8

type gzipCodec struct{}

var _ Codec = gzipCodec{}

func init() { mustRegister(gzipCodec{}) }

func (gzipCodec) ID() int8     { return Gzip }
func (gzipCodec) Name() string { return "gzip" }

// gzipEncoder is a pooled writer with the sink it writes into.
type gzipEncoder struct {
	w   *gzip.Writer
	out appendWriter
}

// gzipDecoder is a pooled reader with the source it reads from.
type gzipDecoder struct {
	r     gzip.Reader
	src   bytes.Reader
	probe [1]byte
}

var (
	gzipEncoders sync.Pool // of *gzipEncoder
	gzipDecoders = sync.Pool{New: func() any { return new(gzipDecoder) }}
)

// AppendEncode writes one gzip member at the default level, as Kafka's Java
// client does (compression.gzip.level -1).
func (gzipCodec) AppendEncode(dst, src []byte) ([]byte, error) {
	e, _ := gzipEncoders.Get().(*gzipEncoder)
	if e == nil {
		w, err := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		if err != nil {
			return dst, err
		}
		e = &gzipEncoder{w: w}
	}
	out, err := encodeStream(e.w, &e.out, dst, src)
	gzipEncoders.Put(e)
	return out, err
}

// AppendDecode reads one or more concatenated gzip members, verifying each
// member's CRC-32 and size.
func (gzipCodec) AppendDecode(dst, src []byte, limit int) ([]byte, error) {
	limit = max(limit, 0)
	if len(src) == 0 {
		return dst, corrupt("gzip", errEmpty)
	}
	d := gzipDecoders.Get().(*gzipDecoder)
	defer func() {
		d.src.Reset(nil)
		gzipDecoders.Put(d)
	}()
	d.src.Reset(src)
	if err := d.r.Reset(&d.src); err != nil {
		return dst, corrupt("gzip", err)
	}
	// If the stream is intact its last four bytes are the last member's
	// ISIZE, a good first guess at the output size. Bound the guess, which
	// the input controls, by the limit and by deflate's best ratio.
	var hint int
	if len(src) >= gzipTrailerLen {
		isize := uint64(binary.LittleEndian.Uint32(src[len(src)-4:]))
		hint = int(min(isize, uint64(len(src))*deflateMaxRatio, uint64(limit)))
	}
	return readLimited("gzip", dst, &d.r, limit, hint, d.probe[:])
}
