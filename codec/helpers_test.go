package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
)

// builtins lists the built-in codecs by id.
var builtins = []struct {
	id   int8
	name string
}{
	{None, "none"},
	{Gzip, "gzip"},
	{Snappy, "snappy"},
	{LZ4, "lz4"},
	{Zstd, "zstd"},
}

func mustByID(t testing.TB, id int8) Codec {
	t.Helper()
	c, err := ByID(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomBytes returns n bytes that do not compress.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// records returns about n bytes shaped like a batch of JSON records: fixed
// keys and structure (compressible) around random ids and hashes (not).
func records(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	events := []string{"page_view", "click", "add_to_cart", "checkout", "search"}
	b := make([]byte, 0, n+512)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b,
			`{"offset":%d,"ts":%d,"user":"user-%05d","session":"%016x","event":%q,`+
				`"path":"/products/%d/reviews","ua":"Mozilla/5.0 (X11; Linux x86_64)","amount":%d.%02d}`+"\n",
			i, 1_700_000_000_000+int64(i)*37, r.IntN(20000), r.Uint64(), events[r.IntN(len(events))],
			r.IntN(5000), r.IntN(500), r.IntN(100))
	}
	return b[:n]
}

// xerialFrame builds a xerial-framed snappy stream by hand, one chunk per
// part.
func xerialFrame(parts ...[]byte) []byte {
	b := []byte(xerialMagic)
	b = binary.BigEndian.AppendUint32(b, 1) // version
	b = binary.BigEndian.AppendUint32(b, 1) // minimum compatible version
	for _, p := range parts {
		block := s2.EncodeSnappy(nil, p)
		b = binary.BigEndian.AppendUint32(b, uint32(len(block)))
		b = append(b, block...)
	}
	return b
}

// chunks splits b into pieces of at most n bytes.
func chunks(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// roundTripInputs are the table inputs every codec must round-trip.
var roundTripInputs = sync.OnceValue(func() []struct {
	name string
	data []byte
} {
	return []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"1byte", []byte{'x'}},
		{"zeros-1KiB", make([]byte, 1<<10)},
		{"random-1MiB", randomBytes(1<<20, 1)},
		{"records-1MiB", records(1<<20, 2)},
		{"records-100KiB", records(100<<10, 3)},
	}
})

// zerosCompressed returns n zero bytes compressed by c, computed once per
// codec and size.
var zerosCompressed = func() func(t testing.TB, c Codec, n int) []byte {
	var mu sync.Mutex
	cache := map[string][]byte{}
	return func(t testing.TB, c Codec, n int) []byte {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		key := fmt.Sprintf("%s/%d", c.Name(), n)
		if b, ok := cache[key]; ok {
			return b
		}
		b, err := c.AppendEncode(nil, make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		cache[key] = b
		return b
	}
}()

func equalPrefixed(t testing.TB, got, prefix, want []byte) {
	t.Helper()
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("prefix clobbered: got %q..., want prefix %q", got[:min(len(got), len(prefix))], prefix)
	}
	if !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("decoded %d bytes, want %d (equal lengths: %v)", len(got)-len(prefix), len(want), len(got)-len(prefix) == len(want))
	}
}
