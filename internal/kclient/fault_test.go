package kclient_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/internal/kclient"
)

// frame is a response frame of the given size field followed by body.
func frame(size uint32, body ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, size), body...)
}

// TestBadResponses: each way a peer can answer wrongly fails the request
// with an error naming the peer, without a hang, and the next request dials
// a new connection that works.
func TestBadResponses(t *testing.T) {
	corr := func(r peerRequest) []byte { return binary.BigEndian.AppendUint32(nil, uint32(r.corr)) }
	faults := []struct {
		name string
		// misbehave answers r on the first connection; returning closes it
		// unless hold is set, when the connection stays open until the
		// client closes it.
		misbehave func(pc *peerConn, r peerRequest) error
		hold      bool
	}{
		{name: "wrong correlation id", misbehave: func(pc *peerConn, r peerRequest) error {
			resp, _ := metadataAnswer(r)
			return pc.write(r.corr+1, r.flexible(), resp)
		}, hold: true},
		{name: "close before answering", misbehave: func(pc *peerConn, r peerRequest) error { return nil }},
		{name: "close inside the size field", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw([]byte{0, 0})
		}},
		{name: "close inside the frame", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(append(frame(100), corr(r)...))
		}},
		{name: "size shorter than a header", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(frame(3, 0, 0, 0))
		}, hold: true},
		{name: "size zero", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(frame(0))
		}, hold: true},
		{name: "negative size", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(frame(0xffffffff, corr(r)...))
		}, hold: true},
		{name: "huge size", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(frame(1<<30, corr(r)...))
		}, hold: true},
		{name: "largest size", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(frame(0x7fffffff, corr(r)...))
		}, hold: true},
		{name: "bad header tags", misbehave: func(pc *peerConn, r peerRequest) error {
			// Metadata v12 is flexible: the header claims 5 tags, the frame
			// holds none.
			return pc.raw(frame(5, append(corr(r), 5)...))
		}, hold: true},
		{name: "tag longer than the frame", misbehave: func(pc *peerConn, r peerRequest) error {
			return pc.raw(frame(8, append(corr(r), 1, 0, 100, 0)...))
		}, hold: true},
		{name: "two answers to one request", misbehave: func(pc *peerConn, r peerRequest) error {
			resp, _ := metadataAnswer(r)
			if err := pc.write(r.corr, r.flexible(), resp); err != nil {
				return err
			}
			return pc.write(r.corr, r.flexible(), resp)
		}, hold: true},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			// The first request of the first connection gets the fault.
			p := startPeer(t, func(pc *peerConn) {
				if pc.n > 0 {
					serveWell(pc)
					return
				}
				if pc.handshake() != nil {
					return
				}
				r, err := pc.read()
				if err != nil {
					return
				}
				if f.misbehave(pc, r) != nil || !f.hold {
					return
				}
				for {
					if _, err := pc.read(); err != nil {
						return
					}
				}
			})
			c := newClient(t, kclient.Config{})
			resp, err := c.Request(testCtx(t), p.addr, metadataReq("first"))
			if f.name == "two answers to one request" {
				// The first answer is right; the second breaks the
				// connection, which the next request may or may not
				// see before it is sent.
				if err != nil {
					t.Fatalf("first answer: %v", err)
				}
				checkMetadata(t, resp, "first")
				for range 2 {
					if resp, err = c.Request(testCtx(t), p.addr, metadataReq("again")); err == nil {
						break
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				checkMetadata(t, resp, "again")
				return
			}
			if err == nil {
				t.Fatalf("request succeeded: %+v", resp)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("request hung: %v", err)
			}
			if !strings.Contains(err.Error(), p.addr) {
				t.Errorf("error %q does not name the peer %s", err, p.addr)
			}
			t.Logf("error: %v", err)

			resp, err = c.Request(testCtx(t), p.addr, metadataReq("second"))
			if err != nil {
				t.Fatalf("request after the fault: %v", err)
			}
			checkMetadata(t, resp, "second")
			if n := p.accepts.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// TestOutOfOrder: a peer that answers two pipelined requests in reverse
// order breaks the connection; both requests fail.
func TestOutOfOrder(t *testing.T) {
	p := startPeer(t, func(pc *peerConn) {
		if pc.n > 0 {
			serveWell(pc)
			return
		}
		if pc.handshake() != nil {
			return
		}
		var rs []peerRequest
		for range 2 {
			r, err := pc.read()
			if err != nil {
				return
			}
			rs = append(rs, r)
		}
		for i := 1; i >= 0; i-- {
			resp, _ := metadataAnswer(rs[i])
			if pc.write(rs[i].corr, rs[i].flexible(), resp) != nil {
				return
			}
		}
		pc.read() // until the client closes
	})
	c := newClient(t, kclient.Config{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Request(testCtx(t), p.addr, metadataReq("t"))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("request %d: %v, want a broken connection", i, err)
		}
	}
	resp, err := c.Request(testCtx(t), p.addr, metadataReq("after"))
	if err != nil {
		t.Fatal(err)
	}
	checkMetadata(t, resp, "after")
}

// TestUndecodableBody: a well-framed response whose body does not decode
// fails that request only; the connection is kept.
func TestUndecodableBody(t *testing.T) {
	p := startPeer(t, func(pc *peerConn) {
		if pc.handshake() != nil {
			return
		}
		r, err := pc.read()
		if err != nil {
			return
		}
		body := binary.BigEndian.AppendUint32(nil, uint32(r.corr))
		body = append(body, 0) // header tags
		body = append(body, 0xff)
		if pc.raw(frame(uint32(len(body)), body...)) != nil {
			return
		}
		for pc.answer() == nil {
		}
	})
	c := newClient(t, kclient.Config{})
	if _, err := c.Request(testCtx(t), p.addr, metadataReq("bad")); err == nil {
		t.Fatal("undecodable body accepted")
	}
	resp, err := c.Request(testCtx(t), p.addr, metadataReq("good"))
	if err != nil {
		t.Fatal(err)
	}
	checkMetadata(t, resp, "good")
	if n := p.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestCancelOutstanding: a caller whose ctx ends while its response is
// outstanding gets ctx's error; the late response is dropped and the next
// request, pipelined behind it, gets its own answer on the same connection.
func TestCancelOutstanding(t *testing.T) {
	got := make(chan peerRequest, 2)
	release := make(chan struct{})
	p := startPeer(t, func(pc *peerConn) {
		if pc.handshake() != nil {
			return
		}
		var rs []peerRequest
		for range 2 {
			r, err := pc.read()
			if err != nil {
				return
			}
			rs = append(rs, r)
			got <- r
		}
		<-release
		for _, r := range rs {
			resp, _ := metadataAnswer(r)
			if pc.write(r.corr, r.flexible(), resp) != nil {
				return
			}
		}
		for pc.answer() == nil {
		}
	})
	c := newClient(t, kclient.Config{})

	ctx, cancel := context.WithCancel(testCtx(t))
	first := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, p.addr, metadataReq("cancelled"))
		first <- err
	}()
	<-got
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}

	type answer struct {
		resp kmsg.Response
		err  error
	}
	second := make(chan answer, 1)
	go func() {
		resp, err := c.Request(testCtx(t), p.addr, metadataReq("second"))
		second <- answer{resp, err}
	}()
	<-got
	close(release)
	a := <-second
	if a.err != nil {
		t.Fatal(a.err)
	}
	checkMetadata(t, a.resp, "second")
	resp, err := c.Request(testCtx(t), p.addr, metadataReq("third"))
	if err != nil {
		t.Fatal(err)
	}
	checkMetadata(t, resp, "third")
	if n := p.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestCtxDoneBeforeRequest: a ctx already ended sends nothing.
func TestCtxDoneBeforeRequest(t *testing.T) {
	p := startPeer(t, serveWell)
	c := newClient(t, kclient.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Request(ctx, p.addr, metadataReq("t")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := p.accepts.Load(); n != 0 {
		t.Errorf("%d connections, want none", n)
	}
}

// TestCloseInFlight: Close fails every outstanding request with ErrClosed,
// waits for the connection goroutines, and later requests fail too.
func TestCloseInFlight(t *testing.T) {
	const n = 8
	got := make(chan struct{}, n)
	p := startPeer(t, func(pc *peerConn) {
		if pc.handshake() != nil {
			return
		}
		for {
			if _, err := pc.read(); err != nil {
				return
			}
			got <- struct{}{}
		}
	})
	c := kclient.New(kclient.Config{Logger: quietLogger()})
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Request(testCtx(t), p.addr, metadataReq("t"))
			errs <- err
		}()
	}
	for range n {
		<-got
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, kclient.ErrClosed) {
			t.Errorf("outstanding request: %v, want ErrClosed", err)
		}
	}
	if _, err := c.Request(testCtx(t), p.addr, metadataReq("t")); !errors.Is(err, kclient.ErrClosed) {
		t.Errorf("request after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseWhileDialling: Close ends a dial in progress.
func TestCloseWhileDialling(t *testing.T) {
	dialing := make(chan struct{})
	c := kclient.New(kclient.Config{
		Logger:      quietLogger(),
		DialTimeout: time.Minute,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			close(dialing)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(testCtx(t), "127.0.0.1:1", metadataReq("t"))
		errc <- err
	}()
	<-dialing
	c.Close()
	if err := <-errc; !errors.Is(err, kclient.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// TestDialTimeout: DialTimeout bounds a dial that does not finish, and a
// caller's ctx bounds its wait for a dial.
func TestDialTimeout(t *testing.T) {
	block := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	c := newClient(t, kclient.Config{DialTimeout: 20 * time.Millisecond, Dial: block})
	_, err := c.Request(testCtx(t), "127.0.0.1:1", metadataReq("t"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "dial") {
		t.Fatalf("got %v, want a dial deadline error", err)
	}

	c = newClient(t, kclient.Config{DialTimeout: time.Minute, Dial: block})
	ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, "127.0.0.1:1", metadataReq("t")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", err)
	}
}

// TestHandshakeTimeout: a peer that accepts and never answers ApiVersions
// is given up on after DialTimeout.
func TestHandshakeTimeout(t *testing.T) {
	p := startPeer(t, func(pc *peerConn) { pc.read(); pc.read() })
	c := newClient(t, kclient.Config{DialTimeout: 50 * time.Millisecond})
	_, err := c.Request(testCtx(t), p.addr, metadataReq("t"))
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("got %v, want a handshake error", err)
	}
}

// TestApiVersionsFallback: a peer that does not speak ApiVersions v3 answers
// UNSUPPORTED_VERSION; the client retries with v0.
func TestApiVersionsFallback(t *testing.T) {
	seen := make(chan []int16, 1)
	p := startPeer(t, func(pc *peerConn) {
		if pc.handshake() != nil {
			return
		}
		seen <- pc.apiVersions
		for pc.answer() == nil {
		}
	})
	p.apiVersionsMax = 0
	c := newClient(t, kclient.Config{})
	resp, err := c.Request(testCtx(t), p.addr, metadataReq("t"))
	if err != nil {
		t.Fatal(err)
	}
	checkMetadata(t, resp, "t")
	if got := <-seen; len(got) != 2 || got[0] != 3 || got[1] != 0 {
		t.Fatalf("ApiVersions versions sent: %v, want [3 0]", got)
	}
}

// TestVersionRule: the version sent is min(kmsg max, peer max, cap); no
// common version, or a key the peer does not list, is ErrUnsupported.
func TestVersionRule(t *testing.T) {
	p := startPeer(t, serveWell)
	p.keys = []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 3, MinVersion: 5, MaxVersion: 9},
		{ApiKey: 18, MinVersion: 0, MaxVersion: 3},
	}
	c := newClient(t, kclient.Config{})
	for _, tc := range []struct {
		cap, want int16
		err       error
	}{
		{cap: 0, want: 9},
		{cap: 100, want: 9},
		{cap: 7, want: 7},
		{cap: 5, want: 5},
		{cap: 4, want: 4, err: kclient.ErrUnsupported},
	} {
		req := metadataReq("t")
		req.SetVersion(tc.cap)
		resp, err := c.Request(testCtx(t), p.addr, req)
		if !errors.Is(err, tc.err) {
			t.Errorf("cap %d: error %v, want %v", tc.cap, err, tc.err)
			continue
		}
		if err == nil {
			checkMetadata(t, resp, "t")
			if v := req.GetVersion(); v != tc.want {
				t.Errorf("cap %d: sent v%d, want v%d", tc.cap, v, tc.want)
			}
			if v := resp.GetVersion(); v != tc.want {
				t.Errorf("cap %d: response decoded at v%d, want v%d", tc.cap, v, tc.want)
			}
		}
	}
	if _, err := c.Request(testCtx(t), p.addr, kmsg.NewPtrDescribeClusterRequest()); !errors.Is(err, kclient.ErrUnsupported) {
		t.Errorf("key the peer does not list: %v, want ErrUnsupported", err)
	}
	if n := p.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (ErrUnsupported must not break it)", n)
	}
}

// TestIdleClose: a connection unused for IdleTimeout is closed, and the
// next request dials again.
func TestIdleClose(t *testing.T) {
	closed := make(chan int, 4)
	p := startPeer(t, func(pc *peerConn) {
		serveWell(pc)
		closed <- pc.n
	})
	c := newClient(t, kclient.Config{IdleTimeout: 20 * time.Millisecond})
	for i := range 2 {
		resp, err := c.Request(testCtx(t), p.addr, metadataReq("t"))
		if err != nil {
			t.Fatal(err)
		}
		checkMetadata(t, resp, "t")
		select {
		case n := <-closed:
			if n != i {
				t.Fatalf("connection %d closed, want %d", n, i)
			}
		case <-time.After(testTimeout):
			t.Fatal("idle connection not closed")
		}
	}
	if n := p.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
