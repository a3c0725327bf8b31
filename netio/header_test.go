package netio

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestParseHeader(t *testing.T) {
	cases := []struct {
		name     string
		in       []byte
		err      error
		key, ver int16
		corr     int32
		flex     bool
		clientID string // "<nil>" for null
		body     string
	}{
		{name: "v1 null client", in: []byte{0, 0, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 'B'},
			key: 0, ver: 3, corr: 9, clientID: "<nil>", body: "B"},
		{name: "v1 client", in: []byte{0, 3, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 2, 'i', 'd', 'x', 'y'},
			key: 3, ver: 1, corr: -2, clientID: "id", body: "xy"},
		{name: "v2 no tags", in: []byte{0, 3, 0, 9, 0, 0, 0, 1, 0, 1, 'c', 0, 'b'},
			key: 3, ver: 9, corr: 1, flex: true, clientID: "c", body: "b"},
		{name: "v2 tags", in: []byte{0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 2, 0, 1, 'T', 5, 0, 'b'},
			key: 3, ver: 12, corr: 1, flex: true, clientID: "<nil>", body: "b"},
		{name: "ApiVersions v3 is flexible", in: []byte{0, 18, 0, 3, 0, 0, 0, 1, 0, 0, 0},
			key: 18, ver: 3, corr: 1, flex: true, clientID: ""},
		{name: "ApiVersions v2 is not", in: []byte{0, 18, 0, 2, 0, 0, 0, 1, 0, 0, 0},
			key: 18, ver: 2, corr: 1, clientID: "", body: "\x00"},
		{name: "ApiVersions beyond kmsg's max uses header v2", in: []byte{0, 18, 0x7f, 0, 0, 0, 0, 1, 0, 0, 0, 'b'},
			key: 18, ver: 0x7f00, corr: 1, flex: true, clientID: "", body: "b"},
		{name: "empty", in: nil, err: errShortHeader},
		{name: "9 bytes", in: []byte{0, 0, 0, 3, 0, 0, 0, 9, 0xff}, err: errShortHeader},
		{name: "unknown key", in: []byte{0x12, 0x34, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, err: errUnknownAPI},
		{name: "client id -3", in: []byte{0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xfd}, err: errBadClientID},
		{name: "client id past end", in: []byte{0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 'a'}, err: errBadClientID},
		{name: "missing tag section", in: []byte{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff}, err: errBadTags},
		{name: "tag overflow", in: []byte{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 1, 0,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, err: errBadTags},
		{name: "huge tag count", in: []byte{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}, err: errBadTags},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h header
			body, err := parseHeader(tc.in, &h)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			id := "<nil>"
			if !h.clientIDNull {
				id = string(h.clientID)
			}
			if h.key != tc.key || h.version != tc.ver || h.corr != tc.corr || h.flexible != tc.flex || id != tc.clientID {
				t.Fatalf("got %+v client %q", h, id)
			}
			if string(body) != tc.body || cap(body) != len(body) {
				t.Fatalf("body %q cap %d", body, cap(body))
			}
		})
	}
}

// TestParseHeaderRoundTrip parses random well-formed headers built by the
// tests' own encoder.
func TestParseHeaderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var keys []int16
	for k := range int16(apiTableSize) {
		if kmsg.RequestForKey(k) != nil {
			keys = append(keys, k)
		}
	}
	for range 5000 {
		key := keys[rng.IntN(len(keys))]
		r := kmsg.RequestForKey(key)
		ver := int16(rng.IntN(int(r.MaxVersion()) + 1))
		r.SetVersion(ver)
		hd := reqHeader{key: key, version: ver, corr: int32(rng.Uint32()), flexible: r.IsFlexible()}
		if rng.IntN(4) != 0 {
			hd.clientID = strp(string(bytes.Repeat([]byte{'c'}, rng.IntN(300))))
		}
		if hd.flexible {
			for range rng.IntN(4) {
				hd.tags = append(hd.tags, bytes.Repeat([]byte{'t'}, rng.IntN(200)))
			}
		}
		body := bytes.Repeat([]byte{'b'}, rng.IntN(100))
		frame := appendFrame(nil, hd, body)
		var h header
		got, err := parseHeader(frame[4:], &h)
		if err != nil {
			t.Fatalf("%+v: %v", hd, err)
		}
		if h.key != hd.key || h.version != hd.version || h.corr != hd.corr || h.flexible != hd.flexible ||
			h.clientIDNull != (hd.clientID == nil) || (hd.clientID != nil && string(h.clientID) != *hd.clientID) ||
			!bytes.Equal(got, body) {
			t.Fatalf("built %+v, parsed %+v body %d bytes", hd, h, len(got))
		}
	}
}

func TestFlexibleMatchesKmsg(t *testing.T) {
	for key := int16(-2); key < apiTableSize+20; key++ {
		r := kmsg.RequestForKey(key)
		if r == nil {
			if known, _ := flexible(key, 0); known {
				t.Fatalf("key %d: known to us, not to kmsg", key)
			}
			continue
		}
		for v := int16(-2); v <= r.MaxVersion()+3; v++ {
			r.SetVersion(v)
			known, flex := flexible(key, v)
			if !known || flex != r.IsFlexible() {
				t.Fatalf("key %d v%d: known %v flexible %v, kmsg says %v", key, v, known, flex, r.IsFlexible())
			}
		}
	}
	if known, _ := flexible(-32768, 0); known {
		t.Fatal("key -32768 known")
	}
}

func TestAppendResponseHeader(t *testing.T) {
	cases := []struct {
		key  int16
		flex bool
		want []byte
	}{
		{3, false, []byte{0, 0, 1, 2}},
		{3, true, []byte{0, 0, 1, 2, 0}},
		{18, true, []byte{0, 0, 1, 2}},
		{18, false, []byte{0, 0, 1, 2}},
	}
	for _, tc := range cases {
		if got := appendResponseHeader(nil, tc.key, 258, tc.flex); !bytes.Equal(got, tc.want) {
			t.Errorf("key %d flex %v: % x, want % x", tc.key, tc.flex, got, tc.want)
		}
	}
}

func TestBufPool(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 1<<20 + 1, 16 << 20, 16<<20 + 1} {
		bp := getBuf(n)
		if len(*bp) != n || cap(*bp) < n {
			t.Fatalf("getBuf(%d): len %d cap %d", n, len(*bp), cap(*bp))
		}
		putBuf(bp)
		bp = getBuf(n)
		if len(*bp) != n || cap(*bp) < n {
			t.Fatalf("getBuf(%d) after put: len %d cap %d", n, len(*bp), cap(*bp))
		}
	}
	// A grown buffer goes back to the class its capacity fully covers.
	b := make([]byte, 0, 3000)
	putBuf(&b)
	for range 100 {
		bp := getBuf(2048)
		if cap(*bp) < 2048 {
			t.Fatalf("cap %d < 2048", cap(*bp))
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 'B'})
	f.Add([]byte{0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 2, 0, 1, 'T', 5, 0, 'b'})
	f.Add([]byte{0, 18, 0, 3, 0, 0, 0, 1, 0, 1, 'x', 0})
	f.Add(appendFrame(nil, reqHeader{key: 1, version: 12, clientID: strp("abc"), flexible: true, tags: [][]byte{{1}}}, []byte("body"))[4:])
	f.Fuzz(func(t *testing.T, in []byte) {
		var h header
		body, err := parseHeader(in, &h)
		if err != nil {
			return
		}
		if len(body) > len(in)-10 || cap(body) != len(body) {
			t.Fatalf("body %d bytes cap %d from %d", len(body), cap(body), len(in))
		}
		if len(body) > 0 && &body[len(body)-1] != &in[len(in)-1] {
			t.Fatal("body is not the tail of the input")
		}
		if !h.flexible && len(in)-len(body) != 10+len(h.clientID) {
			t.Fatalf("v1 header of %d bytes with client id of %d", len(in)-len(body), len(h.clientID))
		}
		if known, flex := flexibleSlow(h.key, h.version); !known || flex != h.flexible {
			t.Fatalf("key %d v%d flexible %v, kmsg says %v", h.key, h.version, h.flexible, flex)
		}
	})
}
