package netio

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"testing"
)

type fileHandler struct {
	file  *os.File
	bytes []byte
}

func (h *fileHandler) Handle(_ context.Context, req *Request) Response {
	if req.Body[0] == 'f' {
		return Response{Parts: []Part{{File: h.file, Offset: 0, Length: int64(len(h.bytes))}}}
	}
	return Response{Parts: []Part{{Bytes: h.bytes}}}
}

// BenchmarkResponse1MiB measures throughput of 1 MiB responses over loopback
// TCP, sent from a file region with sendfile or from memory with writev; the
// client pipelines requests and discards the responses.
func BenchmarkResponse1MiB(b *testing.B) {
	const size = 1 << 20
	f, data := testFile(b, size)
	h := &fileHandler{file: f, bytes: data}
	s, _ := startServer(b, Config{}, h)
	for _, mode := range []struct {
		name string
		op   byte
	}{{"sendfile", 'f'}, {"bytes", 'b'}} {
		b.Run(mode.name, func(b *testing.B) {
			c := dial(b, s)
			frame := testReq(1, mode.op, nil)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				for range b.N {
					if _, err := c.Write(frame); err != nil {
						return
					}
				}
			}()
			// Read with a large buffer (io.Discard's 8 KiB one would make the
			// client, not the server, the bottleneck) and discard.
			buf := make([]byte, 256<<10)
			var hdr [4]byte
			for range b.N {
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					b.Fatal(err)
				}
				for n := int(binary.BigEndian.Uint32(hdr[:])); n > 0; {
					m, err := c.Read(buf[:min(n, len(buf))])
					if err != nil {
						b.Fatal(err)
					}
					n -= m
				}
			}
		})
	}
}

// BenchmarkSmallRequests measures pipelined small request/response round
// trips (a 100-byte echo), the per-request overhead of framing, handing off
// and writing. Allocations reported include the server's.
func BenchmarkSmallRequests(b *testing.B) {
	s, _ := startServer(b, Config{}, echoNoAlloc())
	c := dial(b, s)
	frame := testReq(1, opEcho, make([]byte, 100))
	var batch []byte
	for range 64 {
		batch = append(batch, frame...)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i += 64 {
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	}()
	n := (b.N + 63) / 64 * 64
	buf := make([]byte, 4+4+101) // size, correlation id, echoed body
	for range n {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoAllocsPerRequest fails if the steady-state request path allocates:
// after warm-up, a pipelined echo round trip must average well under one
// allocation, counting the server's goroutines.
func TestNoAllocsPerRequest(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures allocations")
	}
	s, _ := startServer(t, Config{}, echoNoAlloc())
	c := dial(t, s)
	frame := testReq(1, opEcho, make([]byte, 100))
	buf := make([]byte, 4+4+101)
	rt := func() {
		c.Write(frame)
		io.ReadFull(c, buf)
	}
	for range 1000 {
		rt()
	}
	if avg := testing.AllocsPerRun(2000, rt); avg > 0.5 {
		t.Fatalf("%.2f allocations per request", avg)
	}
}

// echoMsg is a reusable Msg, so that the echo handler itself allocates
// nothing: a []byte converted to an interface would.
type echoMsg struct{ body []byte }

func (m *echoMsg) AppendTo(b []byte) []byte { return append(b, m.body...) }

// echoNoAlloc echoes the body through Msgs kept in a per-connection ring
// (ConnInfo.State). The writer encodes a response after Handle returns, so a
// Msg is reused only after more responses than a connection can have in
// flight (the server must use the default MaxInFlight).
func echoNoAlloc() Handler {
	return handlerFunc(func(_ context.Context, r *Request) Response {
		ring, _ := r.Conn.State.(*echoRing)
		if ring == nil {
			ring = new(echoRing)
			r.Conn.State = ring
		}
		m := &ring.msgs[ring.next%len(ring.msgs)]
		ring.next++
		m.body = r.Body
		return Response{Msg: m}
	})
}

// echoRing holds more Msgs than a connection can have requests in flight.
type echoRing struct {
	msgs [DefaultMaxInFlight + 1]echoMsg
	next int
}
