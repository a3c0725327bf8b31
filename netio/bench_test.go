package netio

import (
	"context"
	"encoding/binary"
	"io"
	"net"
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
	benchPipelined(b, dial(b, s))
}

// BenchmarkPipelinedDeferred is BenchmarkSmallRequests with the echo
// answered immediately, deferred and completed inside Handle, or deferred
// and completed by another goroutine (as a purgatory would), to show what
// deferring costs per request.
func BenchmarkPipelinedDeferred(b *testing.B) {
	for _, m := range []echoMode{echoImmediate, echoDeferInline, echoDeferAsync} {
		b.Run(m.String(), func(b *testing.B) {
			s, _ := startServer(b, Config{}, echoNoAllocMode(m))
			benchPipelined(b, dial(b, s))
		})
	}
}

// benchPipelined writes b.N echo requests in batches of 64 on c while
// reading the responses.
func benchPipelined(b *testing.B, c net.Conn) {
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
// allocation, counting the server's goroutines, whether the response is
// immediate or deferred.
func TestNoAllocsPerRequest(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures allocations")
	}
	for _, m := range []echoMode{echoImmediate, echoDeferInline, echoDeferAsync} {
		t.Run(m.String(), func(t *testing.T) {
			s, _ := startServer(t, Config{}, echoNoAllocMode(m))
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
		})
	}
}

// echoMode says how echoNoAllocMode answers.
type echoMode int

const (
	echoImmediate   echoMode = iota // return the response from Handle
	echoDeferInline                 // Defer, Complete, then return
	echoDeferAsync                  // Defer; a per-connection goroutine completes
)

func (m echoMode) String() string {
	return [...]string{"immediate", "deferred-inline", "deferred-async"}[m]
}

// echoMsg is a reusable Msg, so that the echo handler itself allocates
// nothing: a []byte converted to an interface would.
type echoMsg struct{ body []byte }

func (m *echoMsg) AppendTo(b []byte) []byte { return append(b, m.body...) }

// echoNoAlloc echoes the body through Msgs kept in a per-connection ring
// (ConnInfo.State). The writer encodes a response after Handle returns, so a
// Msg is reused only after more responses than a connection can have in
// flight (the server must use the default MaxInFlight).
func echoNoAlloc() Handler { return echoNoAllocMode(echoImmediate) }

// echoNoAllocMode is echoNoAlloc answering as m says. In echoDeferAsync the
// connection's completer goroutine ends with the connection's context.
func echoNoAllocMode(m echoMode) Handler {
	return handlerFunc(func(ctx context.Context, r *Request) Response {
		ring, _ := r.Conn.State.(*echoRing)
		if ring == nil {
			ring = new(echoRing)
			r.Conn.State = ring
			if m == echoDeferAsync {
				ring.jobs = make(chan echoJob, DefaultMaxInFlight)
				go ring.complete(ctx)
			}
		}
		msg := &ring.msgs[ring.next%len(ring.msgs)]
		ring.next++
		msg.body = r.Body
		switch m {
		case echoDeferInline:
			d := r.Defer()
			d.Complete(Response{Msg: msg})
			return Response{Deferred: d}
		case echoDeferAsync:
			d := r.Defer()
			ring.jobs <- echoJob{d, msg} // never blocks: at most MaxInFlight are deferred
			return Response{Deferred: d}
		}
		return Response{Msg: msg}
	})
}

// echoRing holds more Msgs than a connection can have requests in flight.
type echoRing struct {
	msgs [DefaultMaxInFlight + 1]echoMsg
	next int
	jobs chan echoJob // echoDeferAsync: deferred echoes to complete
}

type echoJob struct {
	d   Deferred
	msg *echoMsg
}

// complete completes the deferred echoes in order until ctx is done, then
// drops those left.
func (r *echoRing) complete(ctx context.Context) {
	for {
		select {
		case j := <-r.jobs:
			j.d.Complete(Response{Msg: j.msg})
		case <-ctx.Done():
			for {
				select {
				case j := <-r.jobs:
					j.d.Complete(Response{Msg: j.msg})
				default:
					return
				}
			}
		}
	}
}
