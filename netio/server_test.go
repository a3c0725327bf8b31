package netio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// checkEcho checks one response frame (correlation id included) against the
// request it answers.
func checkEcho(resp []byte, corr int32, flexible bool, want []byte) error {
	if len(resp) < 4 {
		return fmt.Errorf("short response %d bytes", len(resp))
	}
	if got := int32(binary.BigEndian.Uint32(resp)); got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	body := resp[4:]
	if flexible {
		if len(body) == 0 || body[0] != 0 {
			return fmt.Errorf("corr %d: missing tag byte", corr)
		}
		body = body[1:]
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("corr %d: body %d bytes %.20q, want %d bytes %.20q", corr, len(body), body, len(want), want)
	}
	return nil
}

type sent struct {
	corr int32
	flex bool
	want []byte
}

// pipelineFrames builds n requests with mixed ops and returns the frames and
// the responses expected, in order.
func pipelineFrames(rng *rand.Rand, n, maxPayload int) ([]byte, []sent) {
	var frames []byte
	var exp []sent
	for i := range n {
		corr := int32(i + 1)
		payload := make([]byte, rng.IntN(maxPayload+1))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		flex := rng.IntN(2) == 0
		op := []byte{opEcho, opParts, opNone}[rng.IntN(3)]
		mk := testReq
		if flex {
			mk = testReqFlex
		}
		frames = append(frames, mk(corr, op, payload)...)
		if op != opNone {
			exp = append(exp, sent{corr, flex, payload})
		}
	}
	return frames, exp
}

func TestPipelinedResponsesInOrder(t *testing.T) {
	h := newTestHandler()
	s, _ := startServer(t, Config{}, h)
	for _, tc := range []struct {
		name       string
		conns      int
		maxPayload int
	}{
		{"small", 4, 900},
		{"large", 3, 40000}, // crosses bufio, coalescing and writev sizes
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for k := range tc.conns {
				c := dial(t, s)
				rng := rand.New(rand.NewPCG(uint64(k), 7))
				frames, exp := pipelineFrames(rng, 100, tc.maxPayload)
				wg.Go(func() {
					// Small: everything fits the socket buffers, so send all
					// 100 frames before reading anything.
					if tc.maxPayload < 1000 {
						if _, err := c.Write(frames); err != nil {
							t.Error(err)
							return
						}
					} else {
						go c.Write(frames)
					}
					for _, e := range exp {
						resp, err := readFrame(c)
						if err != nil {
							t.Error(err)
							return
						}
						if err := checkEcho(resp, e.corr, e.flex, e.want); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
	if n := h.overlaps.Load(); n != 0 {
		t.Errorf("%d concurrent Handle calls on one connection", n)
	}
	if n := h.disorder.Load(); n != 0 {
		t.Errorf("%d requests handled out of arrival order", n)
	}
	h.waitDone(t)
}

func TestRequestHeaderParsing(t *testing.T) {
	h := newTestHandler()
	s, _ := startServer(t, Config{}, h)
	c := dial(t, s)
	long := string(bytes.Repeat([]byte("x"), 1000))
	cases := []struct {
		name string
		hdr  reqHeader
	}{
		{"v1 null client id", reqHeader{version: 3}},
		{"v1 empty client id", reqHeader{version: 3, clientID: strp("")}},
		{"v1 client id", reqHeader{version: 3, clientID: strp("abc")}},
		{"v1 long client id", reqHeader{version: 8, clientID: &long}},
		{"v2 no tags", reqHeader{version: 9, clientID: strp("abc"), flexible: true}},
		{"v2 null client id", reqHeader{version: 10, flexible: true}},
		{"v2 tags", reqHeader{version: 9, clientID: strp("k"), flexible: true,
			tags: [][]byte{{}, bytes.Repeat([]byte{7}, 300), {1, 2, 3}}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.hdr.corr = int32(1000 + i)
			got := roundTrip(t, c, appendFrame(nil, tc.hdr, []byte{opHeader}))
			if tc.hdr.flexible {
				if len(got) == 0 || got[0] != 0 {
					t.Fatalf("flexible response lacks its tag byte: % x", got)
				}
				got = got[1:]
			}
			var want []byte
			want = binary.BigEndian.AppendUint16(want, uint16(tc.hdr.key))
			want = binary.BigEndian.AppendUint16(want, uint16(tc.hdr.version))
			want = binary.BigEndian.AppendUint32(want, uint32(tc.hdr.corr))
			if tc.hdr.flexible {
				want = append(want, 1)
			} else {
				want = append(want, 0)
			}
			if tc.hdr.clientID == nil {
				want = append(want, '-')
			} else {
				want = append(append(want, '+'), *tc.hdr.clientID...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("handler saw % x, want % x", got, want)
			}
		})
	}
}

func TestClientIDStringReusedAndConnState(t *testing.T) {
	var mu sync.Mutex
	var ids []*string
	var states []any
	h := handlerFunc(func(_ context.Context, r *Request) Response {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.ClientID)
		if r.Conn.State == nil {
			r.Conn.State = len(states)
		}
		states = append(states, r.Conn.State)
		return Response{}
	})
	s, _ := startServer(t, Config{}, h)
	c := dial(t, s)
	for i, id := range []string{"a", "a", "b", "b"} {
		roundTrip(t, c, appendFrame(nil, reqHeader{version: 3, corr: int32(i), clientID: strp(id)}, nil))
	}
	if ids[0] != ids[1] || ids[2] != ids[3] || *ids[1] != "a" || *ids[2] != "b" {
		t.Errorf("client ids not reused: %p %p %p %p", ids[0], ids[1], ids[2], ids[3])
	}
	for _, st := range states {
		if st != 0 {
			t.Errorf("ConnInfo.State not kept: %v", states)
		}
	}
}

type handlerFunc func(context.Context, *Request) Response

func (f handlerFunc) Handle(ctx context.Context, r *Request) Response { return f(ctx, r) }

func TestBadFramesCloseConnection(t *testing.T) {
	const maxReq = 1 << 20
	h := newTestHandler()
	s, rec := startServer(t, Config{MaxRequestSize: maxReq}, h)
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	frame := func(payload []byte) []byte { return append(be32(uint32(len(payload))), payload...) }
	hdr := func(key, version int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		return binary.BigEndian.AppendUint32(b, 1)
	}
	cases := []struct {
		name      string
		send      []byte
		closeSend bool // half-close after sending
		log       string
	}{
		{"size 2 GiB reads as negative", be32(0x80000000), false, "negative frame size"},
		{"size -1", be32(0xffffffff), false, "negative frame size"},
		{"size 2 GiB - 1", be32(0x7fffffff), false, "exceeds MaxRequestSize"},
		{"size max+1", be32(maxReq + 1), false, "exceeds MaxRequestSize"},
		{"size 0", be32(0), false, "header truncated"},
		{"short header", frame([]byte{0, 0, 0, 3, 0, 0, 0, 1, 0}), false, "header truncated"},
		{"unknown api key", frame(append(hdr(0x7fff, 0), 0xff, 0xff)), false, "unknown api key"},
		{"negative api key", frame(append(hdr(-1, 0), 0xff, 0xff)), false, "unknown api key"},
		{"client id longer than frame", frame(append(hdr(0, 3), 0, 100, 'a')), false, "client_id length"},
		{"client id length -2", frame(append(hdr(0, 3), 0xff, 0xfe)), false, "client_id length"},
		{"tag count beyond frame", frame(append(hdr(0, 9), 0xff, 0xff, 5)), false, "tagged fields"},
		{"tag size beyond frame", frame(append(hdr(0, 9), 0xff, 0xff, 1, 0, 50, 1)), false, "tagged fields"},
		{"tag count not a uvarint", frame(append(hdr(0, 9), 0xff, 0xff, 0x80)), false, "tagged fields"},
		{"garbage", frame(bytes.Repeat([]byte{0xee}, 64)), false, "unknown api key"},
		{"truncated frame then EOF", append(be32(100), 1, 2, 3), true, "request frame incomplete"},
		{"truncated size then EOF", []byte{0, 0}, true, "unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			c := dial(t, s)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.closeSend {
				c.(*net.TCPConn).CloseWrite()
			}
			expectClosed(t, c)
			rec.waitFor(t, tc.log)
			runtime.ReadMemStats(&ms1)
			if d := ms1.TotalAlloc - ms0.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d bytes for a rejected frame", d)
			}
		})
	}
	t.Run("size max is accepted", func(t *testing.T) {
		c := dial(t, s)
		f := testReq(7, opEcho, nil)
		pad := maxReq - (len(f) - 4)
		f = append(f, make([]byte, pad)...)
		binary.BigEndian.PutUint32(f, maxReq)
		body := roundTrip(t, c, f)
		if len(body) != pad {
			t.Fatalf("echo of %d bytes, want %d", len(body), pad)
		}
	})
	h.waitDone(t)
}

func TestQueuedBytesBoundedWithoutDeadlock(t *testing.T) {
	// MaxRequestSize barely above the frame size: each frame must wait for
	// the previous one to be answered, yet all get answered.
	h := newTestHandler()
	s, _ := startServer(t, Config{MaxRequestSize: 4096}, h)
	c := dial(t, s)
	payload := bytes.Repeat([]byte{'q'}, 3000)
	var frames []byte
	for i := range 200 {
		frames = append(frames, testReq(int32(i), opEcho, payload)...)
	}
	go c.Write(frames)
	for i := range 200 {
		resp, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkEcho(resp, int32(i), false, payload); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	h := newTestHandler()
	s, rec := startServer(t, Config{}, h)
	c1 := dial(t, s)
	var frames []byte
	frames = append(frames, testReq(1, opEcho, []byte("before"))...)
	frames = append(frames, testReq(2, opPanic, nil)...)
	frames = append(frames, testReq(3, opEcho, []byte("after"))...)
	if _, err := c1.Write(frames); err != nil {
		t.Fatal(err)
	}
	resp, err := readFrame(c1)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEcho(resp, 1, false, []byte("before")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c1)
	rec.waitFor(t, "Handle panicked", "test panic")

	c2 := dial(t, s)
	if got := roundTrip(t, c2, testReq(4, opEcho, []byte("ok"))); string(got) != "ok" {
		t.Fatalf("second connection: %q", got)
	}
	h.waitDone(t)
}

func TestResponseClose(t *testing.T) {
	h := newTestHandler()
	s, rec := startServer(t, Config{}, h)
	for _, tc := range []struct {
		op      byte
		answers int
	}{{opClose, 2}, {opCloseNone, 1}} {
		c := dial(t, s)
		var frames []byte
		frames = append(frames, testReq(1, opEcho, []byte("a"))...)
		frames = append(frames, testReq(2, tc.op, []byte("b"))...)
		frames = append(frames, testReq(3, opEcho, []byte("c"))...)
		if _, err := c.Write(frames); err != nil {
			t.Fatal(err)
		}
		for i := range tc.answers {
			resp, err := readFrame(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkEcho(resp, int32(i+1), false, []byte{"ab"[i]}); err != nil {
				t.Fatal(err)
			}
		}
		expectClosed(t, c)
	}
	rec.waitFor(t, "handler asked to close")
	h.waitDone(t)
}

func TestBadPartClosesConnection(t *testing.T) {
	h := newTestHandler()
	s, rec := startServer(t, Config{}, h)
	c := dial(t, s)
	c.Write(testReq(1, opBadPart, nil))
	expectClosed(t, c)
	rec.waitFor(t, "invalid response part")

	// Responses gathered into the same write before the bad one still go out.
	for range 20 {
		c := dial(t, s)
		var frames []byte
		for i := range 10 {
			frames = append(frames, testReq(int32(i), opEcho, []byte{byte(i)})...)
		}
		frames = append(frames, testReq(10, opBadPart, nil)...)
		c.Write(frames)
		for i := range 10 {
			resp, err := readFrame(c)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if err := checkEcho(resp, int32(i), false, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		expectClosed(t, c)
	}
	h.waitDone(t)
}

func TestMaxConns(t *testing.T) {
	h := newTestHandler()
	s, rec := startServer(t, Config{MaxConns: 2}, h)
	c1, c2 := dial(t, s), dial(t, s)
	roundTrip(t, c1, testReq(1, opEcho, nil))
	roundTrip(t, c2, testReq(1, opEcho, nil))
	c3 := dial(t, s)
	expectClosed(t, c3)
	rec.waitFor(t, "connection refused", "too many connections")

	c1.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dial(t, s)
		c.Write(testReq(1, opEcho, nil))
		if _, err := readFrame(c); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after one closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.waitDone(t)
}

func TestIdleTimeout(t *testing.T) {
	const idle = 150 * time.Millisecond
	h := newTestHandler()
	s, rec := startServer(t, Config{IdleTimeout: idle}, h)
	var wg sync.WaitGroup
	wg.Go(func() { // silent: closed after about idle
		c := dial(t, s)
		start := time.Now()
		expectClosed(t, c)
		if el := time.Since(start); el < idle-20*time.Millisecond || el > 20*idle {
			t.Errorf("idle connection closed after %v, want about %v", el, idle)
		}
	})
	wg.Go(func() { // a request outstanding for 3×idle: not idle
		c := dial(t, s)
		c.Write(testReq(1, opSleep, int64Arg(int64(3*idle))))
		resp, err := readFrame(c)
		if err != nil {
			t.Errorf("long request: %v", err)
			return
		}
		if err := checkEcho(resp, 1, false, int64Arg(int64(3*idle))); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() { // chatty: never idle
		c := dial(t, s)
		last := time.Now()
		for i := range 10 {
			c.Write(testReq(int32(i), opEcho, nil))
			if _, err := readFrame(c); err != nil {
				// Legitimate only if this machine stalled us for IdleTimeout.
				if gap := time.Since(last); gap < idle {
					t.Errorf("chatty request %d, %v after the previous one: %v", i, gap, err)
				}
				return
			}
			last = time.Now()
			time.Sleep(idle / 5)
		}
	})
	wg.Wait()
	rec.waitFor(t, "closing idle connection")
	h.waitDone(t)
}

func TestWriteTimeoutDisconnectsSlowReader(t *testing.T) {
	h := newTestHandler()
	h.big = make([]byte, 64<<20)
	s, rec := startServer(t, Config{WriteTimeout: 200 * time.Millisecond}, h)
	c := dial(t, s)
	c.Write(testReq(1, opBig, int64Arg(int64(len(h.big)))))
	rec.waitFor(t, "too slow")
	h.waitDone(t)
}

func TestShutdownFinishesInFlightRequests(t *testing.T) {
	h := newTestHandler()
	log, _ := newLogRecorder(t)
	s, err := Listen(Config{Addr: "127.0.0.1:0", Logger: log}, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	c := dial(t, s)
	idle := dial(t, s)
	roundTrip(t, idle, testReq(1, opEcho, nil))
	var frames []byte
	frames = append(frames, testReq(1, opSleep, int64Arg(int64(300*time.Millisecond)))...)
	frames = append(frames, testReq(2, opEcho, []byte("queued"))...)
	c.Write(frames)
	<-h.started
	waitInFlight(t, s, 2) // request 2 is read and queued

	shut := make(chan error, 1)
	start := time.Now()
	go func() { shut <- s.Shutdown(context.Background()) }()
	for i, want := range [][]byte{int64Arg(int64(300 * time.Millisecond)), []byte("queued")} {
		resp, err := readFrame(c)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		if err := checkEcho(resp, int32(i+1), false, want); err != nil {
			t.Fatal(err)
		}
	}
	expectClosed(t, c)
	expectClosed(t, idle)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("Shutdown returned after %v, before the slow handler", el)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Error("still accepting after Shutdown")
	}
	if err := s.Serve(); err == nil {
		t.Error("second Serve succeeded")
	}
	h.waitDone(t)
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	h := newTestHandler()
	s, _ := startServer(t, Config{}, h)
	c := dial(t, s)
	c.Write(testReq(1, opWaitCtx, nil))
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	expectClosed(t, c)
	h.waitDone(t) // the handler saw its context cancelled and its response was dropped
}

func TestDoneCalledExactlyOnceWhenConnectionDies(t *testing.T) {
	h := newTestHandler()
	h.big = make([]byte, 8<<20)
	s, _ := startServer(t, Config{MaxInFlight: 4}, h)
	scenarios := map[string]func(c net.Conn){
		"client leaves with requests queued": func(c net.Conn) {
			var frames []byte
			for i := range 30 {
				frames = append(frames, testReq(int32(i), opSleep, int64Arg(int64(2*time.Millisecond)))...)
			}
			c.Write(frames)
			time.Sleep(10 * time.Millisecond)
		},
		"client stops reading big responses": func(c net.Conn) {
			var frames []byte
			for i := range 10 {
				frames = append(frames, testReq(int32(i), opBig, int64Arg(int64(len(h.big))))...)
			}
			c.Write(frames)
			time.Sleep(50 * time.Millisecond)
		},
		"long poll cancelled": func(c net.Conn) {
			c.Write(testReq(1, opWaitCtx, nil))
			<-h.started
		},
		"none and close": func(c net.Conn) {
			var frames []byte
			frames = append(frames, testReq(1, opNone, nil)...)
			frames = append(frames, testReq(2, opCloseNone, nil)...)
			frames = append(frames, testReq(3, opEcho, nil)...)
			c.Write(frames)
			expectClosed(t, c)
		},
	}
	for name, run := range scenarios {
		t.Run(name, func(t *testing.T) {
			for len(h.started) > 0 {
				<-h.started
			}
			c := dial(t, s)
			run(c)
			c.(*net.TCPConn).SetLinger(0) // reset, not FIN
			c.Close()
			h.waitDone(t)
		})
	}
}

func TestServeAfterCloseReturnsNil(t *testing.T) {
	s, err := Listen(Config{Addr: "127.0.0.1:0"}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Serve(); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
}

func TestListenError(t *testing.T) {
	if _, err := Listen(Config{Addr: "256.0.0.1:0"}, newTestHandler()); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.MaxRequestSize != 100<<20 || c.IdleTimeout != 10*time.Minute || c.MaxConns != 10000 ||
		c.WriteTimeout != time.Minute || c.MaxInFlight != 16 || c.Addr != ":9092" || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	neg := Config{IdleTimeout: -1, MaxConns: -1, WriteTimeout: -1}.withDefaults()
	if neg.IdleTimeout != -1 || neg.MaxConns != -1 || neg.WriteTimeout != -1 {
		t.Fatalf("negative values must disable: %+v", neg)
	}
}

func TestPipeConnection(t *testing.T) {
	// Any net.Conn works; IdleTimeout and WriteTimeout disabled.
	h := newTestHandler()
	log, _ := newLogRecorder(t)
	s, err := Listen(Config{Addr: "127.0.0.1:0", Logger: log, IdleTimeout: -1, WriteTimeout: -1}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() { s.serveConn(server); close(done) }()
	frames, exp := pipelineFrames(rand.New(rand.NewPCG(1, 2)), 50, 10000)
	go client.Write(frames)
	for _, e := range exp {
		resp, err := readFrame(client)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkEcho(resp, e.corr, e.flex, e.want); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	io.Copy(io.Discard, client)
	h.waitDone(t)
}

// waitInFlight waits until the server's only connection has n requests read
// and not yet answered.
func waitInFlight(t *testing.T, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		var got int64
		for c := range s.mu.conns {
			got += c.inFlight.Load()
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
