package codec

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// minGrow is the smallest number of bytes a streaming decoder adds to its
// output buffer when the buffer is full. Growth doubles the output produced
// so far, so a decode makes O(log n) allocations at most.
const minGrow = 64 << 10

// errEmpty is wrapped in ErrCorrupt for zero-length input: no compressed
// format here encodes anything, not even nothing, in zero bytes.
var errEmpty = errors.New("empty input")

// errTruncated is wrapped in ErrCorrupt for input that ends mid-structure.
var errTruncated = errors.New("truncated input")

// maxZeroReads bounds how many consecutive (0, nil) reads a decoder may
// return before readLimited gives up with io.ErrNoProgress.
const maxZeroReads = 100

// grow returns dst with room for at least n more bytes. When it must
// allocate, it allocates exactly len(dst)+n, never more, so that a hostile
// size claim cannot inflate the buffer past what the caller bounded n to.
func grow(dst []byte, n int) []byte {
	if n <= cap(dst)-len(dst) {
		return dst
	}
	b := make([]byte, len(dst), len(dst)+n)
	copy(b, dst)
	return b
}

// appendWriter is an io.Writer that appends to b. It lets streaming encoders
// write straight into the caller's dst.
type appendWriter struct {
	b []byte
}

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// readLimited appends everything r produces to dst, failing with ErrTooLarge
// as soon as more than limit bytes arrive. It allocates at most
// len(dst)+limit bytes of output buffer: first room for min(hint, limit)
// bytes, then doubling, always capped at the limit. Whenever the buffer fills it reads
// one byte into probe before growing, so an exact hint costs no extra
// allocation and "exactly limit" is told apart from "too large".
//
// On error it returns dst with its original length.
func readLimited(name string, dst []byte, r io.Reader, limit, hint int, probe []byte) ([]byte, error) {
	start := len(dst)
	end := start + limit // the output may not extend past end
	if end < start {
		end = math.MaxInt
	}
	dst = grow(dst, min(hint, limit))
	zeros := 0
	for {
		if len(dst) == cap(dst) || len(dst) == end {
			n, err := readProbe(r, probe)
			if err != nil {
				return dst[:start], corrupt(name, err)
			}
			if n == 0 {
				return dst, nil
			}
			if len(dst) == end {
				return dst[:start], fmt.Errorf("%w: %s output exceeds %d bytes", ErrTooLarge, name, limit)
			}
			if len(dst) == cap(dst) {
				dst = grow(dst, min(max(len(dst)-start, minGrow), end-len(dst)))
			}
			dst = append(dst, probe[0])
			continue
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), end)])
		dst = dst[:len(dst)+n]
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst[:start], corrupt(name, err)
		case n == 0:
			if zeros++; zeros > maxZeroReads {
				return dst[:start], corrupt(name, io.ErrNoProgress)
			}
		default:
			zeros = 0
		}
	}
}

// readProbe reads one byte into probe. It returns n == 1 if r had more data,
// (0, nil) at the end of the stream, and r's error otherwise.
func readProbe(r io.Reader, probe []byte) (int, error) {
	for range maxZeroReads {
		n, err := r.Read(probe[:1])
		switch {
		case n > 0:
			return n, nil // a reader repeats its io.EOF on the next call
		case err == io.EOF:
			return 0, nil
		case err != nil:
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

// corrupt wraps a decoder's error in ErrCorrupt, keeping it inspectable.
func corrupt(name string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
}

// tooLarge reports a decompressed size, known or claimed up front, above limit.
func tooLarge(name string, size uint64, limit int) error {
	return fmt.Errorf("%w: %s data is %d bytes, limit %d", ErrTooLarge, name, size, limit)
}

// streamWriter is a pooled compressing writer (gzip, lz4) that can be pointed
// at another destination.
type streamWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// encodeStream compresses src through w into out, appending to dst. It
// leaves w and out holding no reference to dst, ready for the pool. On
// error it returns dst unchanged.
func encodeStream(w streamWriter, out *appendWriter, dst, src []byte) ([]byte, error) {
	out.b = dst
	w.Reset(out)
	_, err := w.Write(src)
	if err == nil {
		err = w.Close()
	}
	b := out.b
	out.b = nil
	w.Reset(nil)
	if err != nil {
		return dst, err
	}
	return b, nil
}
