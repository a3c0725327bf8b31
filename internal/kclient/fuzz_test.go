package kclient_test

import (
	"encoding/binary"
	"testing"

	"github.com/easel-io/easel/internal/kclient"
)

// FuzzReadResponse: the response reader never panics or over-allocates,
// and what it accepts is consistent with the frame's size field.
func FuzzReadResponse(f *testing.F) {
	f.Add(frame(4, 0, 0, 0, 7), false)
	f.Add(frame(5, 0, 0, 0, 7, 0), true)
	f.Add(frame(9, 0, 0, 0, 7, 1, 3, 2, 0xaa, 0xbb), true)
	f.Add(frame(6, 0, 0, 0, 7, 0, 0x2a), true)
	f.Add(frame(3, 0, 0, 0), false)
	f.Add(frame(0xffffffff), false)
	f.Add(frame(1<<30, 0, 0, 0, 1), false)
	f.Add(frame(100, 0, 0, 0, 1), false)
	f.Add(frame(6, 0, 0, 0, 1, 0xff, 0xff), true)
	f.Add([]byte{0, 0}, false)
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte, flexible bool) {
		corr, body, err := kclient.ReadResponse(b, flexible, max)
		if err != nil {
			return
		}
		size := int(binary.BigEndian.Uint32(b))
		if size < 4 || size > max || len(b) < 4+size {
			t.Fatalf("accepted a frame with size %d from %d bytes", size, len(b))
		}
		if want := int32(binary.BigEndian.Uint32(b[4:])); corr != want {
			t.Fatalf("correlation id %d, want %d", corr, want)
		}
		if !flexible && len(body) != size-4 {
			t.Fatalf("v0 header: body of %d bytes, want %d", len(body), size-4)
		}
		if len(body) > size-4 || cap(body) != len(body) {
			t.Fatalf("body len %d cap %d from a frame of %d", len(body), cap(body), size)
		}
		if flexible && len(body) == size-4 {
			t.Fatal("v1 header consumed no tag bytes")
		}
	})
}
