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
// gzip: one or more RFC 1952 members; each ends with CRC-32 and ISIZE
// (uncompressed size mod 2^32), both little endian. Encode writes one member.
//
// snappy, raw (written by Encode, librdkafka, franz-go, sarama):
//
//	uvarint decoded length | snappy elements...
//
// snappy, xerial-framed (written by the Java client's snappy-java), read only:
//
//	82 53 4e 41 50 50 59 00 | version int32 BE | min compatible version int32 BE |
//	{ chunk length int32 BE | raw snappy block (as above) }...
//
// The two are told apart by the 8-byte magic, which no valid raw block can
// start with. Versions are not checked.
//
// lz4: one or more LZ4 frames (magic 04 22 4d 18 | FLG | BD | [content size
// 8 bytes LE] | HC | blocks | end mark 0 | [checksum]). Encode writes one
// frame of independent 64 KiB blocks, as Kafka's Java client does.
//
// zstd: one or more zstd frames, skippable frames allowed (see zstdSize for
// the layout). Encode writes one frame with its content size and checksum.
//
// # Memory
//
// AppendDecode takes a limit on the decompressed size and fails with
// ErrTooLarge past it. Size claims in the input (snappy's length header,
// zstd's frame content size, lz4's content size, gzip's ISIZE) are checked
// against the limit, and against what the input could possibly decode to,
// before anything is allocated, so a small hostile input cannot make a
// decoder allocate more than limit bytes of output.
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
