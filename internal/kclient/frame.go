package kclient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxResponseSize bounds the size field of a response frame (the bytes after
// it). Kafka's Fetch responses are bounded by the request's MaxBytes, which
// brokers of a cluster keep far below this.
const maxResponseSize = 256 << 20

// readChunk is how much of a large frame is allocated ahead of the bytes that
// actually arrive, so that a peer announcing a huge frame and sending little
// costs little memory. It holds a whole replica Fetch response
// (replica.fetch.response.max.bytes, 10 MiB, plus its headers) in one
// allocation: with 1 MiB, every response just over 1 MiB (one partition's
// replica.fetch.max.bytes and its headers) was read into 1 MiB, then copied
// into a second allocation, a tenth of a follower's CPU at RF 3.
const readChunk = 16 << 20

// errFrame marks a response that cannot be parsed at the framing level.
var errFrame = errors.New("kclient: malformed response frame")

// readFrame reads one response frame from r and returns the bytes after its
// size field, in a new slice the caller owns. A size outside [4, max] is an
// error wrapping errFrame, reported before the body is read or allocated.
func readFrame(r io.Reader, max int) ([]byte, error) {
	n, err := readSize(r, max)
	if err != nil {
		return nil, err
	}
	return readBody(r, n, nil)
}

// readSize reads a frame's size field: the length of the bytes after it, in
// [4, max], or an error wrapping errFrame.
func readSize(r io.Reader, max int) (int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	size := int64(int32(binary.BigEndian.Uint32(hdr[:])))
	if size < 4 {
		return 0, fmt.Errorf("%w: size %d is shorter than a response header", errFrame, size)
	}
	if size > int64(max) {
		return 0, fmt.Errorf("%w: size %d exceeds the limit of %d bytes", errFrame, size, max)
	}
	return int(size), nil
}

// readBody reads the n bytes of a frame after its size field: into buf if it
// has the capacity, else into a new slice, allocated readChunk at a time.
func readBody(r io.Reader, n int, buf []byte) ([]byte, error) {
	if cap(buf) >= n {
		buf = buf[:n]
		if m, err := io.ReadFull(r, buf); err != nil {
			return nil, cutOff(n, m, err)
		}
		return buf, nil
	}
	buf = make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, cutOff(n, len(buf), err)
		}
	}
	return buf, nil
}

func cutOff(n, got int, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("frame of %d bytes cut off after %d: %w", n, got, err)
}

// parseHeader splits a frame from readFrame into its correlation id and body.
// flexible says whether the header is v1 (a tagged-field section follows the
// correlation id) or v0. body aliases frame, capped at its length.
func parseHeader(frame []byte, flexible bool) (corr int32, body []byte, err error) {
	if len(frame) < 4 {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than a correlation id", errFrame, len(frame))
	}
	corr = int32(binary.BigEndian.Uint32(frame))
	rest := frame[4:]
	if flexible {
		if rest, err = skipTags(rest); err != nil {
			return 0, nil, err
		}
	}
	return corr, rest[:len(rest):len(rest)], nil
}

// skipTags returns b after the tagged-field section at its start. Unknown
// tags in a response header are ignored, as Kafka clients do.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad tagged-field count", errFrame)
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: bad tag in tagged field %d", errFrame, i)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bad size of tagged field %d", errFrame, i)
		}
		b = b[n+int(size):]
	}
	return b, nil
}
