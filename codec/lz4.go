package codec

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// LZ4 frame descriptor fields read to size the output before decoding.
const (
	lz4Magic          = 0x184D2204
	lz4FlagContentLen = 1 << 3 // FLG bit: an 8-byte content size follows BD
	lz4GuessRatio     = 4      // output size guess when the frame has no size
)

type lz4Codec struct{}

var _ Codec = lz4Codec{}

func init() { mustRegister(lz4Codec{}) }

func (lz4Codec) ID() int8     { return LZ4 }
func (lz4Codec) Name() string { return "lz4" }

// lz4Encoder is a pooled frame writer with the sink it writes into.
type lz4Encoder struct {
	w   *lz4.Writer
	out appendWriter
}

// lz4Decoder is a pooled frame reader with the source it reads from.
type lz4Decoder struct {
	r     *lz4.Reader
	src   bytes.Reader
	probe [1]byte
}

var (
	lz4Encoders sync.Pool // of *lz4Encoder
	lz4Decoders = sync.Pool{New: func() any { return &lz4Decoder{r: lz4.NewReader(nil)} }}
)

// newLZ4Encoder makes a writer producing what Kafka's Java client writes
// and can read back: independent 64 KiB blocks (its reader decodes every
// block on its own, without the previous block as dictionary, and
// allocates the frame's maximum block size), no content size, no content
// checksum (the record batch CRC-32C already covers the bytes).
func newLZ4Encoder() (*lz4Encoder, error) {
	w := lz4.NewWriter(nil)
	err := w.Apply(
		lz4.BlockSizeOption(lz4.Block64Kb),
		lz4.ChecksumOption(false),
		lz4.BlockChecksumOption(false),
		lz4.ConcurrencyOption(1),
		lz4.CompressionLevelOption(lz4.Fast),
	)
	if err != nil {
		return nil, err
	}
	return &lz4Encoder{w: w}, nil
}

// AppendEncode writes one LZ4 frame.
func (lz4Codec) AppendEncode(dst, src []byte) ([]byte, error) {
	e, _ := lz4Encoders.Get().(*lz4Encoder)
	if e == nil {
		var err error
		if e, err = newLZ4Encoder(); err != nil {
			return dst, err
		}
	}
	out, err := encodeStream(e.w, &e.out, dst, src)
	lz4Encoders.Put(e)
	return out, err
}

// AppendDecode reads one or more concatenated LZ4 frames, with independent
// or dependent blocks, verifying whatever checksums they carry. Besides the
// output, the reader borrows two buffers of the frame's block size (64 KiB
// to 4 MiB) from the lz4 package's pools.
func (lz4Codec) AppendDecode(dst, src []byte, limit int) ([]byte, error) {
	limit = max(limit, 0)
	if len(src) == 0 {
		return dst, corrupt("lz4", errEmpty)
	}
	hint := int(min(uint64(len(src))*lz4GuessRatio, uint64(limit)))
	// magic(4) FLG(1) BD(1) [content size(8)]: a frame claiming more than
	// limit is refused before decoding. A claim that lies fails in the
	// reader, which checks the descriptor checksum and the decoded size.
	if len(src) >= 14 && binary.LittleEndian.Uint32(src) == lz4Magic && src[4]&lz4FlagContentLen != 0 {
		size := binary.LittleEndian.Uint64(src[6:])
		if size > uint64(limit) {
			return dst, tooLarge("lz4", size, limit)
		}
		hint = int(size)
	}
	d := lz4Decoders.Get().(*lz4Decoder)
	d.src.Reset(src)
	d.r.Reset(&d.src)
	dst, err := readLimited("lz4", dst, d.r, limit, hint, d.probe[:])
	d.r.Reset(nil) // returns the block buffers to the lz4 pools
	d.src.Reset(nil)
	lz4Decoders.Put(d)
	return dst, err
}
