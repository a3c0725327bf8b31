// Package codec is the registry of compression codecs used by Kafka record
// batches.
//
// A record batch names its codec by id in bits 0–2 of its attributes:
//
//	id  name    implementation
//	0   none    identity
//	1   gzip    github.com/klauspost/compress/gzip
//	2   snappy  github.com/klauspost/compress/s2 (snappy mode); reads raw and xerial-framed
//	3   lz4     github.com/pierrec/lz4/v4, LZ4 frame format
//	4   zstd    github.com/klauspost/compress/zstd
//
// The ids are frozen: they are part of the Kafka wire and on-disk format.
// Built-in codecs register themselves; users may Register their own under an
// unused id (5–7) and name, as database/sql drivers do.
//
// # Formats
//
// gzip: one or more RFC 1952 members. Encode writes one member at the
// default level.
//
//	1f 8b | CM FLG MTIME(4) XFL OS | [optional fields] | deflate data |
//	CRC-32 (4, LE) | ISIZE (4, LE: uncompressed size mod 2^32)
//
// snappy, raw block (what Encode, librdkafka, franz-go and sarama write):
//
//	decoded length (uvarint) | snappy elements...
//
// snappy, xerial-framed (what the Java client's snappy-java writes; decoded
// only). Told apart from a raw block by the 8-byte magic, which no valid raw
// block can start with. The versions are not checked.
//
//	82 53 4e 41 50 50 59 00 | version (int32 BE) | min compatible version (int32 BE) |
//	{ chunk length (int32 BE) | raw snappy block }...
//
// lz4: one or more LZ4 frames. Encode writes one frame of independent
// 64 KiB blocks with no checksums, as Kafka's Java client does.
//
//	04 22 4d 18 | FLG | BD | [content size (8, LE)] | HC |
//	{ block size (4, LE; high bit = stored) | data | [block checksum (4)] }... |
//	00 00 00 00 | [content checksum (4)]
//
// zstd: one or more zstd frames; skippable frames are skipped. Encode writes
// one frame declaring its content size, with a checksum.
//
//	frame:     28 b5 2f fd | frame header (2–14 bytes: window, [content size]) |
//	           { block header (3, LE: bit 0 last, bits 1–2 type, bits 3–23 size) | content }... |
//	           [checksum (4)]
//	           type 0 raw: size bytes; 1 RLE: 1 byte repeated size times;
//	           2 compressed: size bytes decoding to at most 128 KiB
//	skippable: 5? 2a 4d 18 | size (4, LE) | size bytes
//
// # Memory
//
// AppendDecode takes a limit on the decompressed size and fails with
// ErrTooLarge past it. Size claims in the input (snappy's length header,
// zstd's frame content size and block headers, lz4's content size) are
// checked against the limit, and against what the input could possibly
// decode to, before anything is allocated, so a small hostile input cannot
// make a decoder allocate more than limit bytes of output. Streams without
// a size claim are decoded into a buffer that doubles up to the limit.
// Exceptions, all bounded: lz4 borrows two pooled buffers of the frame's
// block size (up to 4 MiB each); zstd, decoding a stream with no content
// size that turns out larger than the limit, may grow its output once past
// the limit (by Go's append growth) before it stops.
//
// Encoders and decoders are pooled (gzip, lz4) or shared (zstd), so encoding
// into and decoding into reused buffers does not allocate in steady state.
package codec

import (
	"errors"
	"fmt"
	"sync"
)

// Kafka codec ids. Frozen: part of the record batch format.
const (
	None   int8 = 0
	Gzip   int8 = 1
	Snappy int8 = 2
	LZ4    int8 = 3
	Zstd   int8 = 4
)

// MaxID is the largest codec id a record batch can carry (3 attribute bits).
const MaxID int8 = 7

var (
	// ErrUnknownCodec is returned when no codec is registered under an id or name.
	ErrUnknownCodec = errors.New("codec: unknown codec")
	// ErrTooLarge is returned when decompressed data would exceed the caller's limit.
	ErrTooLarge = errors.New("codec: decompressed data exceeds limit")
	// ErrCorrupt is returned when compressed data cannot be decoded.
	ErrCorrupt = errors.New("codec: corrupt compressed data")
	// ErrDuplicate is returned by Register when the id or name is already taken.
	ErrDuplicate = errors.New("codec: duplicate registration")
	// ErrInvalid is returned by Register for a nil codec, an id outside
	// 0–MaxID or an empty name.
	ErrInvalid = errors.New("codec: invalid registration")
)

// Codec compresses and decompresses whole blocks, such as the records
// section of a record batch. Implementations must be safe for concurrent use.
type Codec interface {
	// ID is the Kafka attribute id, 0–7.
	ID() int8
	// Name is the lower-case name used in configuration ("gzip").
	Name() string
	// AppendEncode appends the compressed form of src to dst and returns the
	// extended slice.
	AppendEncode(dst, src []byte) ([]byte, error)
	// AppendDecode appends the decompressed form of src to dst and returns the
	// extended slice. If the decompressed size would exceed limit bytes (a
	// negative limit counts as 0) it returns an error wrapping ErrTooLarge
	// without allocating past the limit by more than a small constant;
	// malformed input, including empty input for every codec but none,
	// yields an error wrapping ErrCorrupt. It never panics on hostile input.
	// On error it returns dst with its original length; bytes in dst's spare
	// capacity may have been overwritten.
	AppendDecode(dst, src []byte, limit int) ([]byte, error)
}

var registry struct {
	mu     sync.RWMutex
	byID   [MaxID + 1]Codec
	byName map[string]Codec
}

// Register makes c available by id and name. It fails with ErrDuplicate if
// either is taken, and with ErrInvalid if c is nil, the id is outside
// 0–MaxID or the name is empty.
func Register(c Codec) error {
	if c == nil {
		return fmt.Errorf("%w: nil codec", ErrInvalid)
	}
	id, name := c.ID(), c.Name()
	if id < 0 || id > MaxID {
		return fmt.Errorf("%w: id %d out of range 0–%d", ErrInvalid, id, MaxID)
	}
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalid)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.byName == nil {
		registry.byName = make(map[string]Codec)
	}
	if registry.byID[id] != nil {
		return fmt.Errorf("%w: id %d", ErrDuplicate, id)
	}
	if _, ok := registry.byName[name]; ok {
		return fmt.Errorf("%w: name %q", ErrDuplicate, name)
	}
	registry.byID[id] = c
	registry.byName[name] = c
	return nil
}

// mustRegister registers a built-in codec at init time.
func mustRegister(c Codec) {
	if err := Register(c); err != nil {
		panic(err)
	}
}

// ByID returns the codec registered under a Kafka attribute id.
func ByID(id int8) (Codec, error) {
	if id < 0 || id > MaxID {
		return nil, fmt.Errorf("%w: id %d", ErrUnknownCodec, id)
	}
	registry.mu.RLock()
	c := registry.byID[id]
	registry.mu.RUnlock()
	if c == nil {
		return nil, fmt.Errorf("%w: id %d", ErrUnknownCodec, id)
	}
	return c, nil
}

// ByName returns the codec registered under name ("none", "gzip", ...).
func ByName(name string) (Codec, error) {
	registry.mu.RLock()
	c := registry.byName[name]
	registry.mu.RUnlock()
	if c == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCodec, name)
	}
	return c, nil
}

// noneCodec is the identity codec.
type noneCodec struct{}

var _ Codec = noneCodec{}

func init() { mustRegister(noneCodec{}) }

func (noneCodec) ID() int8     { return None }
func (noneCodec) Name() string { return "none" }

func (noneCodec) AppendEncode(dst, src []byte) ([]byte, error) { return append(dst, src...), nil }

func (noneCodec) AppendDecode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) > max(limit, 0) {
		return dst, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, len(src), limit)
	}
	return append(dst, src...), nil
}
