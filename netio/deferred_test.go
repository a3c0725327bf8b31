package netio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- helpers ----

// recvN receives n values from ch, failing after a deadline.
func recvN[T any](t testing.TB, ch <-chan T, n int) []T {
	t.Helper()
	var got []T
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case v := <-ch:
			got = append(got, v)
		case <-timeout:
			t.Fatalf("received %d of %d values within 10s: %v", len(got), n, got)
		}
	}
	return got
}

// expectNothing fails if ch yields a value within d. It is the negative half
// of a check whose positive half (the value arriving later, in order) is
// asserted separately.
func expectNothing[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: got %v", what, v)
	case <-time.After(d):
	}
}

// waitNoConns waits until the server tracks no connection: every connection
// goroutine has returned.
func waitNoConns(t testing.TB, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.mu.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkNoLeak fails the test if, once its other cleanups (such as closing
// its server) have run, more goroutines run than when it was called. Call it
// before starting the test's server.
func checkNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				var b strings.Builder
				pprof.Lookup("goroutine").WriteTo(&b, 1)
				t.Errorf("%d goroutines running, %d before the test:\n%s", runtime.NumGoroutine(), base, b.String())
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
}

// mustPanic fails unless f panics with a message containing want.
func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		p := recover()
		if p == nil || !strings.Contains(fmt.Sprint(p), want) {
			t.Fatalf("panic %v, want one containing %q", p, want)
		}
	}()
	f()
}

// deferServer starts a server whose test handler reports every request it
// handles on seen and hands opHold requests to the test on held.
func deferServer(t *testing.T, cfg Config) (*Server, *testHandler, *logRecorder) {
	t.Helper()
	h := newTestHandler()
	h.seen = make(chan int32, 1000)
	h.held = make(chan heldReq, 1000)
	s, rec := startServer(t, cfg, h)
	return s, h, rec
}

func payload(corr int32) []byte { return fmt.Appendf(nil, "response %d", corr) }

// readEchoes reads one echo response per corr, in order.
func readEchoes(t testing.TB, c net.Conn, corrs ...int32) {
	t.Helper()
	for _, corr := range corrs {
		resp, err := readFrame(c)
		if err != nil {
			t.Fatalf("reading response %d: %v", corr, err)
		}
		if err := checkEcho(resp, corr, false, payload(corr)); err != nil {
			t.Fatal(err)
		}
	}
}

func seq(from, to int32) []int32 {
	var s []int32
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// ---- tests ----

func TestDeferredPipelining(t *testing.T) {
	cases := []struct {
		name     string
		n        int32
		hold     []int32 // requests deferred and completed by the test
		complete []int32 // the order in which the test completes them
	}{
		{"first of 2", 2, []int32{1}, []int32{1}},
		{"first of 10", 10, []int32{1}, []int32{1}},
		{"first of MaxInFlight", DefaultMaxInFlight, []int32{1}, []int32{1}},
		{"last of 5", 5, []int32{5}, []int32{5}},
		{"several, completed in reverse", 12, []int32{1, 4, 5, 9}, []int32{9, 5, 4, 1}},
		{"several, completed out of order", 12, []int32{2, 3, 7, 12}, []int32{7, 12, 3, 2}},
		{"all", 8, seq(1, 8), []int32{8, 6, 4, 2, 1, 3, 5, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, h, _ := deferServer(t, Config{})
			c := dial(t, s)
			var frames []byte
			for corr := int32(1); corr <= tc.n; corr++ {
				op := byte(opEcho)
				if slices.Contains(tc.hold, corr) {
					op = opHold
				}
				frames = append(frames, testReq(corr, op, payload(corr))...)
			}
			if _, err := c.Write(frames); err != nil {
				t.Fatal(err)
			}
			// Every request is handled while the deferred ones wait.
			if got := recvN(t, h.seen, int(tc.n)); !slices.Equal(got, seq(1, tc.n)) {
				t.Fatalf("handled %v", got)
			}
			held := map[int32]heldReq{}
			for _, hr := range recvN(t, h.held, len(tc.hold)) {
				held[hr.corr] = hr
			}
			if tc.hold[0] == 1 {
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if n, _ := c.Read(make([]byte, 1)); n != 0 {
					t.Fatal("a response arrived before request 1 was completed")
				}
			}
			// Complete them in the given order; the responses still come in
			// request order, each as soon as the ones before it are ready.
			next := int32(1)
			for i, corr := range tc.complete {
				hr := held[corr]
				h.complete(hr.d, Response{Msg: rawMsg(hr.arg)})
				ready := next
				for ready <= tc.n && !slices.Contains(tc.complete[i+1:], ready) {
					ready++
				}
				readEchoes(t, c, seq(next, ready-1)...)
				next = ready
			}
			if next != tc.n+1 {
				t.Fatalf("responses up to %d read, want %d", next-1, tc.n)
			}
			h.waitDone(t)
		})
	}
}

func TestDeferredMaxInFlight(t *testing.T) {
	for _, k := range []int{1, 2, 5} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			s, h, _ := deferServer(t, Config{MaxInFlight: k})
			c := dial(t, s)
			var frames []byte
			for corr := range int32(k) {
				frames = append(frames, testReq(corr+1, opHold, payload(corr+1))...)
			}
			frames = append(frames, testReq(int32(k+1), opEcho, payload(int32(k+1)))...)
			if _, err := c.Write(frames); err != nil {
				t.Fatal(err)
			}
			held := recvN(t, h.held, k)
			recvN(t, h.seen, k)
			expectNothing(t, h.seen, 50*time.Millisecond, "request handled beyond MaxInFlight")
			waitInFlight(t, s, int64(k)) // the reader has not begun request k+1

			h.complete(held[0].d, Response{Msg: rawMsg(held[0].arg)})
			if got := recvN(t, h.seen, 1); got[0] != int32(k+1) {
				t.Fatalf("handled %d after the first completion, want %d", got[0], k+1)
			}
			for _, hr := range held[1:] {
				h.complete(hr.d, Response{Msg: rawMsg(hr.arg)})
			}
			readEchoes(t, c, seq(1, int32(k+1))...)
			h.waitDone(t)
		})
	}
}

// TestDeferredMaxInFlightStream runs many deferred requests through a
// connection held at its bound, completing them in random order, and checks
// that no more than k are ever read and not yet answered.
func TestDeferredMaxInFlightStream(t *testing.T) {
	const k, n = 4, 200
	s, h, _ := deferServer(t, Config{MaxInFlight: k})
	c := dial(t, s)
	var frames []byte
	for corr := int32(1); corr <= n; corr++ {
		frames = append(frames, testReq(corr, opHold, payload(corr))...)
	}
	go c.Write(frames)
	read := make(chan error, 1)
	go func() {
		for corr := int32(1); corr <= n; corr++ {
			resp, err := readFrame(c)
			if err == nil {
				err = checkEcho(resp, corr, false, payload(corr))
			}
			if err != nil {
				read <- err
				return
			}
		}
		read <- nil
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	var received []heldReq // in arrival (= request) order
	completed := map[int32]bool{}
	unwritten := 0 // received[unwritten:] wait for themselves or an earlier one
	for len(completed) < n {
		for unwritten < len(received) && completed[received[unwritten].corr] {
			unwritten++
		}
		inFlight := len(received) - unwritten
		if inFlight == k {
			select {
			case hr := <-h.held:
				t.Fatalf("request %d handled with %d in flight, MaxInFlight %d", hr.corr, inFlight, k)
			default:
			}
		}
		if len(received) < n && inFlight < k {
			received = append(received, recvN(t, h.held, 1)...)
			continue
		}
		var open []heldReq
		for _, hr := range received[unwritten:] {
			if !completed[hr.corr] {
				open = append(open, hr)
			}
		}
		hr := open[rng.IntN(len(open))]
		completed[hr.corr] = true
		h.complete(hr.d, Response{Msg: rawMsg(hr.arg)})
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	h.waitDone(t)
}

func TestDeferredConnectionDies(t *testing.T) {
	reset := func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	cases := []struct {
		name string
		// run sends requests and kills the connection; it completes some of
		// the held requests itself and returns the rest.
		run func(t *testing.T, s *Server, h *testHandler, c net.Conn) []heldReq
	}{
		{"client resets", func(t *testing.T, s *Server, h *testHandler, c net.Conn) []heldReq {
			c.Write(testReq(1, opHold, payload(1)))
			held := recvN(t, h.held, 1)
			reset(c)
			return held
		}},
		{"client resets with a completed response waiting behind", func(t *testing.T, s *Server, h *testHandler, c net.Conn) []heldReq {
			c.Write(append(testReq(1, opHold, payload(1)), testReq(2, opHold, payload(2))...))
			held := recvN(t, h.held, 2)
			h.complete(held[1].d, Response{Msg: rawMsg(held[1].arg)}) // waits behind 1
			reset(c)
			return held[:1]
		}},
		{"server closed", func(t *testing.T, s *Server, h *testHandler, c net.Conn) []heldReq {
			c.Write(testReq(1, opHold, payload(1)))
			held := recvN(t, h.held, 1)
			s.Close()
			expectClosed(t, c)
			return held
		}},
		{"response with Close completed while others wait", func(t *testing.T, s *Server, h *testHandler, c net.Conn) []heldReq {
			c.Write(append(testReq(1, opHold, payload(1)), testReq(2, opHold, payload(2))...))
			held := recvN(t, h.held, 2)
			h.complete(held[0].d, Response{Msg: rawMsg(held[0].arg), Close: true})
			readEchoes(t, c, 1)
			expectClosed(t, c)
			return held[1:]
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeak(t)
			s, h, _ := deferServer(t, Config{})
			c := dial(t, s)
			rest := tc.run(t, s, h, c)
			waitNoConns(t, s)
			// Nothing is left to write these: Complete drops them and runs
			// Done before it returns.
			for _, hr := range rest {
				before := h.done.Load()
				h.complete(hr.d, Response{Msg: rawMsg(hr.arg)})
				if d := h.done.Load() - before; d != 1 {
					t.Fatalf("Complete on a dead connection ran Done %d times", d)
				}
			}
			h.waitDone(t)
		})
	}
}

func TestDeferredShutdown(t *testing.T) {
	cases := []struct {
		name     string
		deadline time.Duration // for Shutdown; 0: none; <0: Close instead
		wantErr  error
	}{
		{"graceful waits for completion", 0, nil},
		{"deadline drops", 100 * time.Millisecond, context.DeadlineExceeded},
		{"close drops", -1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeak(t)
			s, h, _ := deferServer(t, Config{})
			c := dial(t, s)
			c.Write(append(testReq(1, opHold, payload(1)), testReq(2, opEcho, payload(2))...))
			held := recvN(t, h.held, 1)
			recvN(t, h.seen, 2)

			var completed atomic.Bool
			shut := make(chan error, 1)
			go func() {
				switch {
				case tc.deadline < 0:
					shut <- s.Close()
				case tc.deadline == 0:
					shut <- s.Shutdown(context.Background())
				default:
					ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
					defer cancel()
					shut <- s.Shutdown(ctx)
				}
			}()
			if tc.deadline != 0 {
				if err := <-shut; !errors.Is(err, tc.wantErr) {
					t.Fatalf("shutdown: %v, want %v", err, tc.wantErr)
				}
				expectClosed(t, c)
				waitNoConns(t, s)
				h.complete(held[0].d, Response{Msg: rawMsg(held[0].arg)})
				h.waitDone(t)
				return
			}
			expectNothing(t, shut, 50*time.Millisecond, "Shutdown returned with a deferred response outstanding")
			completed.Store(true)
			h.complete(held[0].d, Response{Msg: rawMsg(held[0].arg)})
			readEchoes(t, c, 1, 2)
			expectClosed(t, c)
			if err := <-shut; err != nil || !completed.Load() {
				t.Fatalf("Shutdown: %v (completed %v)", err, completed.Load())
			}
			h.waitDone(t)
		})
	}
}

func TestDeferredConcurrentCompletes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		conns int
	}{
		{"default MaxInFlight", Config{}, 4},
		{"MaxInFlight 3", Config{MaxInFlight: 3}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			s, _ := startServer(t, tc.cfg, h)
			var wg sync.WaitGroup
			for k := range tc.conns {
				c := dial(t, s)
				rng := rand.New(rand.NewPCG(uint64(k), 11))
				var frames []byte
				var exp []sent
				for i := range 300 {
					corr := int32(i + 1)
					var arg []byte
					op := []byte{opDefer, opDefer, opDeferNow, opEcho, opParts, opNone}[rng.IntN(6)]
					if op == opDefer {
						arg = int64Arg(rng.Int64N(int64(300 * time.Microsecond)))
					}
					arg = append(arg, payload(corr)...)
					frames = append(frames, testReq(corr, op, arg)...)
					if op != opNone {
						exp = append(exp, sent{corr, false, arg})
					}
				}
				wg.Go(func() {
					go c.Write(frames)
					for _, e := range exp {
						resp, err := readFrame(c)
						if err == nil {
							err = checkEcho(resp, e.corr, false, e.want)
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if n := h.overlaps.Load(); n != 0 {
				t.Errorf("%d concurrent Handle calls on one connection", n)
			}
			if n := h.disorder.Load(); n != 0 {
				t.Errorf("%d requests handled out of arrival order", n)
			}
			h.waitDone(t)
		})
	}
}

// TestDeferredMisuse checks that handler bugs around Defer close only the
// connection, after the responses before them, and leak nothing.
func TestDeferredMisuse(t *testing.T) {
	th := newTestHandler()
	stashed := make(chan Deferred, 1)
	var stash Deferred // request 2's, returned again for request 3; handler goroutine only
	misuse := handlerFunc(func(ctx context.Context, r *Request) Response {
		switch r.Body[0] {
		case 't': // Defer twice
			r.Defer()
			r.Defer()
		case 'x': // Defer, complete, and return a Done beside the Deferred
			d := r.Defer()
			d.Complete(th.withDone(Response{}))
			return th.withDone(Response{Deferred: d})
		case 'o': // defer properly; the test completes it
			stash = r.Defer()
			stashed <- stash
			return Response{Deferred: stash}
		case 'a': // answer with another request's Deferred
			return Response{Deferred: stash}
		}
		return th.Handle(ctx, r)
	})
	cases := []struct {
		name   string
		frames []byte
		log    string
		// mid runs before the connection is expected to close.
		mid func(t *testing.T, c net.Conn)
	}{
		{"Defer then a plain response", testReq(2, opDeferBad, payload(2)), "netio: closing connection", nil},
		{"Defer then panic", testReq(2, opDeferPanic, payload(2)), "test panic after Defer", nil},
		{"Defer with a Done", testReq(2, 'x', nil), "netio: closing connection", nil},
		{"Defer twice", testReq(2, 't', nil), "Defer called twice", nil},
		{"Deferred of another request", append(testReq(2, 'o', nil), testReq(3, 'a', nil)...),
			"netio: closing connection",
			func(t *testing.T, c net.Conn) {
				// Request 3's bug closes the connection once request 2,
				// before it, is answered.
				d := recvN(t, stashed, 1)[0]
				th.promised.Add(1)
				th.complete(d, Response{Msg: rawMsg(payload(2))})
				readEchoes(t, c, 2)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeak(t)
			s, rec := startServer(t, Config{}, misuse)
			c := dial(t, s)
			c.Write(append(testReq(1, opEcho, payload(1)), tc.frames...))
			readEchoes(t, c, 1)
			if tc.mid != nil {
				tc.mid(t, c)
			}
			expectClosed(t, c)
			rec.waitFor(t, tc.log)
			waitNoConns(t, s)
			th.waitDone(t)
		})
	}
}

func TestDeferredCompleteTwicePanics(t *testing.T) {
	const twice = "Complete called twice"
	t.Run("before written", func(t *testing.T) {
		s, h, _ := deferServer(t, Config{})
		c := dial(t, s)
		c.Write(append(testReq(1, opHold, payload(1)), testReq(2, opHold, payload(2))...))
		held := recvN(t, h.held, 2)
		h.complete(held[1].d, Response{Msg: rawMsg(held[1].arg)}) // waits behind 1
		mustPanic(t, twice, func() { held[1].d.Complete(Response{}) })
		h.complete(held[0].d, Response{Msg: rawMsg(held[0].arg)})
		readEchoes(t, c, 1, 2)
		h.waitDone(t)
	})
	t.Run("after written and after the slot is reused", func(t *testing.T) {
		s, h, _ := deferServer(t, Config{MaxInFlight: 1}) // one slot: always reused
		c := dial(t, s)
		c.Write(testReq(1, opHold, payload(1)))
		first := recvN(t, h.held, 1)[0]
		h.complete(first.d, Response{Msg: rawMsg(first.arg)})
		readEchoes(t, c, 1)
		mustPanic(t, twice, func() { first.d.Complete(Response{}) })

		c.Write(testReq(2, opHold, payload(2)))
		second := recvN(t, h.held, 1)[0]
		if second.d.sl != first.d.sl {
			t.Fatal("slot not reused")
		}
		mustPanic(t, twice, func() { first.d.Complete(Response{}) }) // stale: must not complete request 2
		h.complete(second.d, Response{Msg: rawMsg(second.arg)})
		readEchoes(t, c, 2)
		h.waitDone(t)
	})
	t.Run("zero Deferred", func(t *testing.T) {
		mustPanic(t, "zero Deferred", func() { Deferred{}.Complete(Response{}) })
	})
	t.Run("deferred Response", func(t *testing.T) {
		r := &Request{}
		d := r.Defer()
		mustPanic(t, "deferred Response", func() { d.Complete(Response{Deferred: d}) })
	})
}

func TestDeferredRequestBuiltByHand(t *testing.T) {
	r := &Request{Body: []byte("x")}
	d := r.Defer()
	mustPanic(t, "Defer called twice", func() { r.Defer() })
	var done int
	d.Complete(Response{Done: func() { done++ }})
	if done != 1 {
		t.Fatalf("Done ran %d times, want 1", done)
	}
	mustPanic(t, "Complete called twice", func() { d.Complete(Response{}) })
}

func TestDeferredKeepsConnectionFromIdling(t *testing.T) {
	const idle = 100 * time.Millisecond
	s, h, rec := deferServer(t, Config{IdleTimeout: idle})
	c := dial(t, s)
	c.Write(testReq(1, opHold, payload(1)))
	hr := recvN(t, h.held, 1)[0]
	time.Sleep(3 * idle) // what is tested: the connection outlives IdleTimeout
	h.complete(hr.d, Response{Msg: rawMsg(hr.arg)})
	readEchoes(t, c, 1)
	start := time.Now()
	expectClosed(t, c) // and idles out once nothing is outstanding
	if el := time.Since(start); el < idle/2 {
		t.Errorf("closed %v after the response, want about %v", el, idle)
	}
	rec.waitFor(t, "closing idle connection")
	h.waitDone(t)
}

func TestDeferredBodyValidUntilWritten(t *testing.T) {
	// The response aliases the request body; later frames of the same size
	// would reuse a released buffer and corrupt it.
	s, h, _ := deferServer(t, Config{MaxInFlight: 64})
	c := dial(t, s)
	var frames []byte
	for corr := int32(1); corr <= 50; corr++ {
		op := byte(opEcho)
		if corr%5 == 1 {
			op = opHold
		}
		frames = append(frames, testReq(corr, op, bytes.Repeat([]byte{byte(corr)}, 700))...)
	}
	c.Write(frames)
	held := recvN(t, h.held, 10)
	recvN(t, h.seen, 50)
	for _, hr := range held {
		h.complete(hr.d, Response{Msg: rawMsg(hr.arg)})
	}
	for corr := int32(1); corr <= 50; corr++ {
		resp, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkEcho(resp, corr, false, bytes.Repeat([]byte{byte(corr)}, 700)); err != nil {
			t.Fatal(err)
		}
	}
	h.waitDone(t)
}
