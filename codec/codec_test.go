package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func TestBuiltinsRegistered(t *testing.T) {
	for _, b := range builtins {
		byID, err := ByID(b.id)
		if err != nil {
			t.Fatalf("ByID(%d): %v", b.id, err)
		}
		byName, err := ByName(b.name)
		if err != nil {
			t.Fatalf("ByName(%q): %v", b.name, err)
		}
		if byID != byName || byID.ID() != b.id || byID.Name() != b.name {
			t.Errorf("id %d: ByID gives %d/%q, ByName gives %d/%q", b.id, byID.ID(), byID.Name(), byName.ID(), byName.Name())
		}
	}
	for _, id := range []int8{-1, 6, 7, 8, math.MaxInt8, math.MinInt8} {
		if _, err := ByID(id); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("ByID(%d): err %v, want ErrUnknownCodec", id, err)
		}
	}
	for _, name := range []string{"", "GZIP", "lzma", "zstd "} {
		if _, err := ByName(name); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("ByName(%q): err %v, want ErrUnknownCodec", name, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, b := range builtins {
		c := mustByID(t, b.id)
		for _, in := range roundTripInputs() {
			t.Run(b.name+"/"+in.name, func(t *testing.T) {
				encPrefix, decPrefix := []byte("enc:"), []byte("dec:")
				enc, err := c.AppendEncode(bytes.Clone(encPrefix), in.data)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(enc, encPrefix) {
					t.Fatal("AppendEncode clobbered dst")
				}
				enc = enc[len(encPrefix):]
				if b.id != None && len(enc) == 0 {
					t.Fatal("encoded to nothing")
				}
				// Into a prefixed dst with no spare capacity.
				dec, err := c.AppendDecode(bytes.Clone(decPrefix), enc, len(in.data))
				if err != nil {
					t.Fatal(err)
				}
				equalPrefixed(t, dec, decPrefix, in.data)
				// Into nil, with a generous limit.
				dec, err = c.AppendDecode(nil, enc, math.MaxInt)
				if err != nil {
					t.Fatal(err)
				}
				equalPrefixed(t, dec, nil, in.data)
				// Into a dst with more spare capacity than the output needs.
				big := make([]byte, 2, 2+2*len(in.data)+64)
				dec, err = c.AppendDecode(big, enc, len(in.data))
				if err != nil {
					t.Fatal(err)
				}
				equalPrefixed(t, dec, big[:2], in.data)
				if len(in.data) > 0 && &dec[0] != &big[0] {
					t.Error("decode reallocated although dst had room")
				}
			})
		}
	}
}

func TestLimit(t *testing.T) {
	for _, b := range builtins {
		c := mustByID(t, b.id)
		for _, in := range roundTripInputs() {
			t.Run(b.name+"/"+in.name, func(t *testing.T) {
				enc, err := c.AppendEncode(nil, in.data)
				if err != nil {
					t.Fatal(err)
				}
				n := len(in.data)
				prefix := []byte("p")
				got, err := c.AppendDecode(bytes.Clone(prefix), enc, n)
				if err != nil {
					t.Fatalf("limit %d (exact): %v", n, err)
				}
				equalPrefixed(t, got, prefix, in.data)
				if n == 0 {
					if _, err := c.AppendDecode(nil, enc, -1); err != nil {
						t.Fatalf("negative limit on empty output: %v", err)
					}
					return
				}
				for _, limit := range []int{n - 1, n / 2, 0, -1} {
					// A dst with room for everything must still stop at limit.
					dst := make([]byte, 1, 1+2*n)
					dst[0] = 'p'
					got, err := c.AppendDecode(dst, enc, limit)
					if !errors.Is(err, ErrTooLarge) {
						t.Fatalf("limit %d of %d: err %v, want ErrTooLarge", limit, n, err)
					}
					if len(got) != 1 || got[0] != 'p' {
						t.Fatalf("limit %d: returned dst of length %d, want the original", limit, len(got))
					}
				}
			})
		}
	}
}

func TestCorruptInput(t *testing.T) {
	in := records(64<<10, 4)
	for _, b := range builtins[1:] {
		c := mustByID(t, b.id)
		t.Run(b.name, func(t *testing.T) {
			enc, err := c.AppendEncode(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.AppendDecode(nil, nil, 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Errorf("empty input: err %v, want ErrCorrupt", err)
			}
			// Every proper prefix must be rejected as corrupt.
			for _, n := range []int{1, 2, 3, 4, 7, 11, 15, 16, 17, 20, len(enc) / 2, len(enc) - 5, len(enc) - 4, len(enc) - 1} {
				got, err := c.AppendDecode([]byte("keep"), enc[:n], 1<<20)
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("truncated to %d of %d: err %v, want ErrCorrupt", n, len(enc), err)
				}
				if string(got) != "keep" {
					t.Errorf("truncated to %d: dst not returned intact", n)
				}
			}
			// Trailing garbage after a complete stream.
			for _, tail := range []string{"\x00", "xyz", "garbage!"} {
				if _, err := c.AppendDecode(nil, append(bytes.Clone(enc), tail...), 1<<20); !errors.Is(err, ErrCorrupt) {
					t.Errorf("trailing %q: err %v, want ErrCorrupt", tail, err)
				}
			}
			// Random garbage.
			for seed := range uint64(50) {
				g := randomBytes(int(seed*37%4096)+1, seed)
				if _, err := c.AppendDecode(nil, g, 1<<20); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
					t.Errorf("garbage %d: err %v", seed, err)
				}
			}
			// Bit flips: snappy has no checksum, so a flip in a literal can
			// decode to other bytes; everything else must fail cleanly.
			for i := range 200 {
				m := bytes.Clone(enc)
				m[(i*7919)%len(m)] ^= byte(1 << (i % 8))
				got, err := c.AppendDecode(nil, m, len(in))
				switch {
				case err == nil:
					if len(got) > len(in) {
						t.Fatalf("flip %d: %d bytes past the limit", i, len(got)-len(in))
					}
				case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge):
					t.Fatalf("flip %d: err %v", i, err)
				}
			}
		})
	}
}

func TestXerial(t *testing.T) {
	c := mustByID(t, Snappy)
	data := records(100<<10, 5)
	t.Run("chunks", func(t *testing.T) {
		for _, size := range []int{1, 1000, 32 << 10, len(data)} {
			framed := xerialFrame(chunks(data, size)...)
			got, err := c.AppendDecode([]byte("p"), framed, len(data))
			if err != nil {
				t.Fatalf("chunk size %d: %v", size, err)
			}
			equalPrefixed(t, got, []byte("p"), data)
			if _, err := c.AppendDecode(nil, framed, len(data)-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("chunk size %d, limit-1: err %v, want ErrTooLarge", size, err)
			}
		}
	})
	t.Run("header only", func(t *testing.T) {
		got, err := c.AppendDecode(nil, xerialFrame(), 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("got %d bytes, err %v; want empty", len(got), err)
		}
	})
	t.Run("empty chunk payload", func(t *testing.T) {
		got, err := c.AppendDecode(nil, xerialFrame([]byte{}, []byte("ab"), []byte{}), 2)
		if err != nil || string(got) != "ab" {
			t.Fatalf("got %q, err %v", got, err)
		}
	})
	valid := xerialFrame([]byte("abc"), []byte("defg"))
	bad := map[string][]byte{
		"magic only":         []byte(xerialMagic),
		"header truncated":   valid[:xerialHeaderLen-1],
		"length truncated":   append(xerialFrame([]byte("abc")), 0, 0),
		"chunk truncated":    valid[:len(valid)-1],
		"chunk overruns":     binary.BigEndian.AppendUint32(xerialFrame(), 100),
		"negative length":    append(binary.BigEndian.AppendUint32(xerialFrame(), 0xffffffff), 1, 2, 3),
		"zero-length chunk":  binary.BigEndian.AppendUint32(xerialFrame(), 0),
		"corrupt chunk":      append(binary.BigEndian.AppendUint32(xerialFrame(), 3), 5, 0xff, 0xff),
		"huge length header": append(binary.BigEndian.AppendUint32(xerialFrame(), 6), 0xff, 0xff, 0xff, 0xff, 0x0f, 0),
	}
	for name, in := range bad {
		if _, err := c.AppendDecode(nil, in, math.MaxInt); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
	// A chunk within the limit followed by one that crosses it.
	if _, err := c.AppendDecode(nil, xerialFrame(make([]byte, 10), make([]byte, 10)), 15); !errors.Is(err, ErrTooLarge) {
		t.Errorf("second chunk crossing limit: err %v, want ErrTooLarge", err)
	}
}

// TestSnappyLengthHeader checks that the decoded-length header is judged
// before anything is allocated for it.
func TestSnappyLengthHeader(t *testing.T) {
	c := mustByID(t, Snappy)
	// Claims 4 GiB-1, holds one literal byte.
	claim := append(binary.AppendUvarint(nil, math.MaxUint32), 0, 'x')
	if _, err := c.AppendDecode(nil, claim, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("claim over limit: err %v, want ErrTooLarge", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := c.AppendDecode(nil, claim, math.MaxInt); !errors.Is(err, ErrCorrupt) {
			t.Errorf("claim under limit, beyond what the block can hold: err %v, want ErrCorrupt", err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 10<<10 {
		t.Errorf("%d bytes allocated rejecting a lying header 10 times", n)
	}
	// The densest valid block: 64-byte copies at 3 bytes each.
	dense := s2.EncodeSnappy(nil, make([]byte, 1<<20))
	if _, err := snappyLen(dense, math.MaxInt); err != nil {
		t.Errorf("dense valid block rejected: %v", err)
	}
}

// TestBomb decodes 100 MiB of compressed zeros under a 1 MiB limit: it must
// fail with ErrTooLarge having allocated a few MiB at most. (24 MiB under
// the race detector, which makes compressing the bombs slow.)
func TestBomb(t *testing.T) {
	const limit = 1 << 20
	size := 100 << 20
	if raceEnabled {
		size = 24 << 20
	}
	bombs := map[string][]byte{}
	for _, b := range builtins[1:] {
		bombs[b.name] = zerosCompressed(t, mustByID(t, b.id), size)
	}
	// Variants that get past the up-front size checks, so the streaming
	// limit is what stops them.
	gz := bytes.Clone(bombs["gzip"])
	binary.LittleEndian.PutUint32(gz[len(gz)-4:], 0) // ISIZE 0
	bombs["gzip-no-isize"] = gz
	bombs["gzip-members"] = bytes.Repeat(zerosCompressed(t, mustByID(t, Gzip), size/100), 100)
	bombs["lz4-frames"] = bytes.Repeat(zerosCompressed(t, mustByID(t, LZ4), size/100), 100)
	bombs["zstd-frames"] = bytes.Repeat(zerosCompressed(t, mustByID(t, Zstd), size/100), 100)
	bombs["zstd-stream"] = zstdStream(t, make([]byte, size))
	bombs["snappy-xerial"] = xerialFrame(chunks(make([]byte, size), 1<<20)...)

	for name, bomb := range bombs {
		t.Run(name, func(t *testing.T) {
			id := mustName(t, name)
			c := mustByID(t, id)
			// Warm up pools and the shared zstd decoder.
			warm, _ := c.AppendEncode(nil, []byte("warm up"))
			if _, err := c.AppendDecode(nil, warm, 100); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.AppendDecode(nil, bomb, limit)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err %v, want ErrTooLarge", err)
			}
			// Output at most limit, plus a grown copy (zstd's last block
			// may append once past the cap), plus decoder scratch.
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes in, %d bytes allocated", len(bomb), alloc)
			if alloc > 4*limit {
				t.Errorf("allocated %d bytes rejecting %d bytes of %s (limit %d)", alloc, len(bomb), name, limit)
			}
		})
	}
}

func mustName(t testing.TB, variant string) int8 {
	for _, b := range builtins {
		if variant == b.name || len(variant) > len(b.name) && variant[:len(b.name)+1] == b.name+"-" {
			return b.id
		}
	}
	t.Fatalf("no codec for %q", variant)
	return 0
}

// zstdStream compresses with the streaming encoder, which, like Kafka's
// Java client, writes frames with no content size.
func zstdStream(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestForeignEncoders decodes streams written the ways other Kafka clients
// and other settings of the same libraries write them.
func TestForeignEncoders(t *testing.T) {
	data := records(300<<10, 6)
	lz4With := func(opts ...lz4.Option) []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(opts...); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	gzipLevel := func(level int) []byte {
		var buf bytes.Buffer
		w, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		return buf.Bytes()
	}
	twoMembers := append(gzipLevel(1), gzipLevel(9)...)
	cases := []struct {
		name string
		id   int8
		enc  []byte
		want []byte
	}{
		{"lz4 default (4 MiB blocks, content checksum)", LZ4, lz4With(), data},
		{"lz4 block checksums", LZ4, lz4With(lz4.BlockChecksumOption(true), lz4.BlockSizeOption(lz4.Block256Kb)), data},
		{"lz4 content size", LZ4, lz4With(lz4.SizeOption(uint64(len(data)))), data},
		{"lz4 level 9", LZ4, lz4With(lz4.CompressionLevelOption(lz4.Level9)), data},
		{"gzip level 1", Gzip, gzipLevel(1), data},
		{"gzip two members", Gzip, twoMembers, append(bytes.Clone(data), data...)},
		{"zstd stream, no content size", Zstd, zstdStream(t, data), data},
		{"zstd with skippable frame", Zstd, append([]byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3}, zstdStream(t, data)...), data},
		{"snappy xerial 32 KiB chunks", Snappy, xerialFrame(chunks(data, 32<<10)...), data},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustByID(t, tc.id)
			got, err := c.AppendDecode(nil, tc.enc, len(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			equalPrefixed(t, got, nil, tc.want)
			if _, err := c.AppendDecode(nil, tc.enc, len(tc.want)-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit-1: err %v, want ErrTooLarge", err)
			}
		})
	}
	// A frame declaring more than the limit is refused before decoding.
	lz4Sized := lz4With(lz4.SizeOption(uint64(len(data))))
	if _, err := mustByID(t, LZ4).AppendDecode(nil, lz4Sized, 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("lz4 content size over limit: err %v", err)
	}
}

// TestEncodedForKafka checks the encoders write what Kafka's Java client
// can read: lz4 frames of independent 64 KiB blocks with no content
// checksum, raw (not xerial) snappy blocks, zstd frames with a content
// size.
func TestEncodedForKafka(t *testing.T) {
	data := records(200<<10, 7)
	lz4Enc, _ := mustByID(t, LZ4).AppendEncode(nil, data)
	if got := binary.LittleEndian.Uint32(lz4Enc); got != lz4Magic {
		t.Fatalf("lz4 magic %#x", got)
	}
	flg, bd := lz4Enc[4], lz4Enc[5]
	if flg>>6 != 1 || flg&(1<<5) == 0 || flg&(1<<4) != 0 || flg&(1<<3) != 0 || flg&(1<<2) != 0 || flg&1 != 0 {
		t.Errorf("lz4 FLG %08b: want version 1, independent blocks, no checksums, no size, no dict", flg)
	}
	if bd>>4&7 != 4 {
		t.Errorf("lz4 BD %08b: want 64 KiB blocks", bd)
	}
	snappyEnc, _ := mustByID(t, Snappy).AppendEncode(nil, data)
	if n, err := s2.DecodedLen(snappyEnc); err != nil || n != len(data) {
		t.Errorf("snappy: not a raw block of %d bytes (%d, %v)", len(data), n, err)
	}
	zstdEnc, _ := mustByID(t, Zstd).AppendEncode(nil, data)
	var h zstd.Header
	if err := h.Decode(zstdEnc); err != nil || !h.HasFCS || h.FrameContentSize != uint64(len(data)) {
		t.Errorf("zstd header %+v, err %v: want content size %d", h, err, len(data))
	}
	if h.WindowSize > 8<<20 {
		t.Errorf("zstd window %d: want at most 8 MiB", h.WindowSize)
	}
}

func TestZstdSize(t *testing.T) {
	inputs := [][]byte{{}, {1}, records(10<<10, 8), records(1<<20, 9), randomBytes(300<<10, 10), make([]byte, 5<<20)}
	for i, in := range inputs {
		for _, enc := range [][]byte{zstdEncode(t, in), zstdStream(t, in)} {
			claimed, bound, err := zstdSize(enc)
			if err != nil {
				t.Fatalf("input %d: %v", i, err)
			}
			if bound < uint64(len(in)) {
				t.Errorf("input %d: bound %d below decoded size %d", i, bound, len(in))
			}
			if claimed != 0 && claimed != uint64(len(in)) {
				t.Errorf("input %d: claimed %d, decoded size %d", i, claimed, len(in))
			}
			if bound > uint64(len(in))+zstdMaxBlock*(uint64(len(in))/zstdMaxBlock+1) {
				t.Errorf("input %d: bound %d is loose for %d bytes", i, bound, len(in))
			}
		}
	}
	// A frame declaring more than its blocks can hold.
	enc, _ := mustByID(t, Zstd).AppendEncode(nil, []byte("hello"))
	var h zstd.Header
	if err := h.Decode(enc); err != nil {
		t.Fatal(err)
	}
	h.FrameContentSize = 1 << 40
	lying, err := h.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	lying = append(lying, enc[h.HeaderSize:]...)
	if _, err := mustByID(t, Zstd).AppendDecode(nil, lying, math.MaxInt); !errors.Is(err, ErrCorrupt) {
		t.Errorf("lying content size: err %v, want ErrCorrupt", err)
	}
	// A frame declaring more than the limit fails before decoding.
	big, _ := mustByID(t, Zstd).AppendEncode(nil, make([]byte, 2<<20))
	if _, err := mustByID(t, Zstd).AppendDecode(nil, big, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("content size over limit: err %v, want ErrTooLarge", err)
	}
}

func zstdEncode(t testing.TB, in []byte) []byte {
	enc, err := mustByID(t, Zstd).AppendEncode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// testCodec is a user codec: XOR with a key byte, so encoded differs from
// decoded.
type testCodec struct{}

func (testCodec) ID() int8     { return 5 }
func (testCodec) Name() string { return "xor-test" }
func (testCodec) AppendEncode(dst, src []byte) ([]byte, error) {
	for _, b := range src {
		dst = append(dst, b^0x5a)
	}
	return dst, nil
}
func (c testCodec) AppendDecode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) > limit {
		return dst, fmt.Errorf("%w: %d > %d", ErrTooLarge, len(src), limit)
	}
	return c.AppendEncode(dst, src)
}

var registerTestCodec = sync.OnceValue(func() error { return Register(testCodec{}) })

func TestUserCodec(t *testing.T) {
	if err := registerTestCodec(); err != nil {
		t.Fatal(err)
	}
	byID, err := ByID(5)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := ByName("xor-test")
	if err != nil || byName != byID {
		t.Fatalf("ByName: %v, %v", byName, err)
	}
	enc, _ := byID.AppendEncode(nil, []byte("kafka"))
	if string(enc) == "kafka" {
		t.Fatal("test codec did not transform")
	}
	dec, err := byID.AppendDecode(nil, enc, 5)
	if err != nil || string(dec) != "kafka" {
		t.Fatalf("got %q, %v", dec, err)
	}
	if err := Register(testCodec{}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second registration: err %v, want ErrDuplicate", err)
	}
}

type fakeCodec struct {
	noneCodec
	id   int8
	name string
}

func (f fakeCodec) ID() int8     { return f.id }
func (f fakeCodec) Name() string { return f.name }

func TestRegisterErrors(t *testing.T) {
	cases := []struct {
		name string
		c    Codec
		want error
	}{
		{"nil", nil, ErrInvalid},
		{"id -1", fakeCodec{id: -1, name: "neg"}, ErrInvalid},
		{"id 8", fakeCodec{id: 8, name: "eight"}, ErrInvalid},
		{"id max int8", fakeCodec{id: math.MaxInt8, name: "big"}, ErrInvalid},
		{"empty name", fakeCodec{id: 7, name: ""}, ErrInvalid},
		{"taken id", fakeCodec{id: Gzip, name: "gzip2"}, ErrDuplicate},
		{"taken name", fakeCodec{id: 7, name: "zstd"}, ErrDuplicate},
		{"taken none", fakeCodec{id: None, name: "identity"}, ErrDuplicate},
	}
	for _, tc := range cases {
		if err := Register(tc.c); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// Failed registrations leave nothing behind.
	if _, err := ByID(7); !errors.Is(err, ErrUnknownCodec) {
		t.Errorf("id 7 registered by a failed call: %v", err)
	}
	for _, name := range []string{"gzip2", "identity", "neg", "eight"} {
		if _, err := ByName(name); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("%q registered by a failed call: %v", name, err)
		}
	}
	if c, _ := ByID(Gzip); c.Name() != "gzip" {
		t.Errorf("gzip replaced by %q", c.Name())
	}
}

// TestConcurrent hammers the pools and the shared zstd coder from many
// goroutines (run it with -race).
func TestConcurrent(t *testing.T) {
	inputs := [][]byte{records(10<<10, 11), records(70<<10, 12), randomBytes(5000, 13), {}}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				b := builtins[(g+i)%len(builtins)]
				c, _ := ByID(b.id)
				in := inputs[(g*3+i)%len(inputs)]
				enc, err := c.AppendEncode(nil, in)
				if err != nil {
					errs <- err
					return
				}
				dec, err := c.AppendDecode(nil, enc, len(in))
				if err != nil {
					errs <- fmt.Errorf("%s: %w", b.name, err)
					return
				}
				if !bytes.Equal(dec, in) {
					errs <- fmt.Errorf("%s: round trip mismatch", b.name)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSteadyStateAllocs fails loudly if encoding or decoding into a reused
// buffer starts allocating.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	payload := records(100<<10, 14)
	for _, b := range builtins {
		c := mustByID(t, b.id)
		enc, _ := c.AppendEncode(nil, payload)
		encBuf := make([]byte, 0, 2*len(payload))
		decBuf := make([]byte, 0, len(payload))
		encAllocs := testing.AllocsPerRun(20, func() {
			encBuf, _ = c.AppendEncode(encBuf[:0], payload)
		})
		decAllocs := testing.AllocsPerRun(20, func() {
			var err error
			if decBuf, err = c.AppendDecode(decBuf[:0], enc, len(payload)); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %v allocs per encode, %v per decode", b.name, encAllocs, decAllocs)
		if encAllocs > 2 || decAllocs > 2 {
			t.Errorf("%s: %v allocs per encode, %v per decode; want at most 2", b.name, encAllocs, decAllocs)
		}
	}
}
