package codec

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	// zstdMaxWindow is the largest frame window the decoder accepts: 128 MiB,
	// the reference library's default decoding limit (window log 27), which
	// Kafka's Java client (zstd-jni) and librdkafka inherit. DecodeAll writes
	// straight into the output, so the window costs no memory of its own.
	zstdMaxWindow = 1 << 27
	// zstdMaxMemory caps any one decode whatever the caller's limit.
	zstdMaxMemory = 1 << 31
	// zstdMaxBlock is the most a zstd block may hold, compressed or not.
	zstdMaxBlock = 128 << 10
	// zstdMaxConcurrency bounds how many encodes and decodes run at once;
	// each costs a few hundred KiB of tables and buffers.
	zstdMaxConcurrency = 4
)

type zstdCodec struct{}

var _ Codec = zstdCodec{}

func init() { mustRegister(zstdCodec{}) }

func (zstdCodec) ID() int8     { return Zstd }
func (zstdCodec) Name() string { return "zstd" }

// zstdEncoder and zstdDecoder are shared by every goroutine: both are safe
// for concurrent EncodeAll/DecodeAll and expensive to create, so they are
// built on first use.
var (
	zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(zstdConcurrency()),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithZeroFrames(true), // empty input still makes a frame
		)
	})
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(zstdConcurrency()),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxMemory),
			zstd.WithDecodeAllCapLimit(true), // never write past cap(dst)
		)
	})
)

func zstdConcurrency() int { return min(runtime.GOMAXPROCS(0), zstdMaxConcurrency) }

// AppendEncode writes one zstd frame at the default level (about zstd's
// level 3, Kafka's default), declaring the content size and a checksum.
func (zstdCodec) AppendEncode(dst, src []byte) ([]byte, error) {
	enc, err := zstdEncoder()
	if err != nil {
		return dst, err
	}
	return enc.EncodeAll(src, dst), nil
}

// AppendDecode reads one or more concatenated zstd frames (skippable frames
// are skipped; frames needing a dictionary or a window over 128 MiB are
// rejected as corrupt). Before decoding it walks the frame and block
// headers: frames declaring more than limit fail at once, and the output
// is allocated once, at an upper bound of the decoded size (the declared
// size if present, else 128 KiB per compressed block plus the raw and RLE
// block sizes) capped at limit.
func (zstdCodec) AppendDecode(dst, src []byte, limit int) ([]byte, error) {
	limit = max(limit, 0)
	if len(src) == 0 {
		return dst, corrupt("zstd", errEmpty)
	}
	claimed, bound, err := zstdSize(src)
	if err != nil {
		return dst, corrupt("zstd", err)
	}
	if claimed > uint64(limit) {
		return dst, tooLarge("zstd", claimed, limit)
	}
	dec, err := zstdDecoder()
	if err != nil {
		return dst, err
	}
	start := len(dst)
	want := int(min(bound, uint64(limit)))
	for {
		buf := grow(dst, want)
		// The cap limit makes DecodeAll stop once the output passes want.
		out, err := dec.DecodeAll(src, buf[:start:start+want])
		if err == nil {
			if len(out) > start && &out[start] != &buf[:start+1][start] {
				return out, nil // DecodeAll reallocated; the cap limit should prevent it
			}
			return buf[:len(out)], nil // with buf's full capacity
		}
		if !errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return dst, corrupt("zstd", err)
		}
		if want >= limit {
			return dst, fmt.Errorf("%w: zstd output exceeds %d bytes", ErrTooLarge, limit)
		}
		// The bound was short (it should not be): double it and retry.
		want = int(min(uint64(want)*2+minGrow, uint64(limit)))
	}
}

// zstdSize walks the frames of src (layout in the package doc) reading only
// frame and block headers. It returns the sum of the content sizes the
// frames declare (claimed) and an upper bound on the decoded size (bound),
// or an error if src does not frame correctly, in which case the decoder
// would reject it too (FuzzDecode checks this).
func zstdSize(src []byte) (claimed, bound uint64, err error) {
	for len(src) > 0 {
		var h zstd.Header
		rest, err := h.DecodeAndStrip(src)
		if err != nil {
			return 0, 0, err
		}
		if h.Skippable {
			if uint64(h.SkippableSize) > uint64(len(rest)) {
				return 0, 0, errTruncated
			}
			src = rest[h.SkippableSize:]
			continue
		}
		var out uint64
		for last := false; !last; {
			if len(rest) < 3 {
				return 0, 0, errTruncated
			}
			bh := uint32(rest[0]) | uint32(rest[1])<<8 | uint32(rest[2])<<16
			rest = rest[3:]
			last = bh&1 != 0
			size := int(bh >> 3)
			if size > zstdMaxBlock {
				return 0, 0, fmt.Errorf("block of %d bytes", size)
			}
			in, decoded := size, size
			switch (bh >> 1) & 3 {
			case 0: // raw
			case 1: // RLE
				in = 1
			case 2: // compressed
				decoded = zstdMaxBlock
			default:
				return 0, 0, errors.New("reserved block type")
			}
			if in > len(rest) {
				return 0, 0, errTruncated
			}
			rest = rest[in:]
			out += uint64(decoded)
		}
		if h.HasCheckSum {
			if len(rest) < 4 {
				return 0, 0, errTruncated
			}
			rest = rest[4:]
		}
		if h.HasFCS {
			if h.FrameContentSize > out {
				return 0, 0, fmt.Errorf("frame declares %d bytes, its blocks hold at most %d", h.FrameContentSize, out)
			}
			out = h.FrameContentSize
			claimed = satAdd(claimed, out)
		}
		bound = satAdd(bound, out)
		src = rest
	}
	return claimed, bound, nil
}

// satAdd adds without wrapping past the largest uint64.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
