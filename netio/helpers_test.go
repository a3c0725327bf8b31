package netio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ---- logging ----

// logRecorder is a slog.Handler that keeps every record's text so tests can
// assert on log lines, and echoes them to t.Log when tests run verbose.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]string
	ended *bool // the test has ended: t.Log would panic
	attrs []slog.Attr
	t     testing.TB
}

func newLogRecorder(t testing.TB) (*slog.Logger, *logRecorder) {
	r := &logRecorder{mu: new(sync.Mutex), lines: new([]string), ended: new(bool), t: t}
	t.Cleanup(func() {
		r.mu.Lock()
		*r.ended = true
		r.mu.Unlock()
	})
	return slog.New(r), r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", rec.Level, rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "stack" {
			fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.lines = append(*r.lines, sb.String())
	if testing.Verbose() && !*r.ended {
		r.t.Log(sb.String())
	}
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return &c
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// waitFor polls until some log line contains every substring.
func (r *logRecorder) waitFor(t testing.TB, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, l := range *r.lines {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("no log line contains %q", subs)
}

// ---- server ----

func startServer(t testing.TB, cfg Config, h Handler) (*Server, *logRecorder) {
	t.Helper()
	log, rec := newLogRecorder(t)
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	s, err := Listen(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		waitConnsGone(t, s)
	})
	return s, rec
}

// waitConnsGone fails if connection goroutines outlive a closed server.
func waitConnsGone(t testing.TB, s *Server) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.live.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("connections still running 5s after Close")
	}
}

func dial(t testing.TB, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ---- wire helpers, written independently of the server's code ----

// reqHeader is a request header to build by hand.
type reqHeader struct {
	key, version int16
	corr         int32
	clientID     *string
	flexible     bool
	tags         [][]byte // tagged fields numbered 0, 1, ...; only when flexible
}

func strp(s string) *string { return &s }

// appendFrame appends a whole request frame: size, header, body.
func appendFrame(dst []byte, h reqHeader, body []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.key))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.corr))
	if h.clientID == nil {
		dst = binary.BigEndian.AppendUint16(dst, 0xffff)
	} else {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(*h.clientID)))
		dst = append(dst, *h.clientID...)
	}
	if h.flexible {
		dst = binary.AppendUvarint(dst, uint64(len(h.tags)))
		for i, tg := range h.tags {
			dst = binary.AppendUvarint(dst, uint64(i))
			dst = binary.AppendUvarint(dst, uint64(len(tg)))
			dst = append(dst, tg...)
		}
	}
	dst = append(dst, body...)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// Test requests use Produce (key 0): v3 has header v1, v9 header v2.
func testReq(corr int32, op byte, arg []byte) []byte {
	return appendFrame(nil, reqHeader{key: 0, version: 3, corr: corr, clientID: strp("test")}, append([]byte{op}, arg...))
}

func testReqFlex(corr int32, op byte, arg []byte) []byte {
	return appendFrame(nil, reqHeader{key: 0, version: 9, corr: corr, clientID: strp("test"), flexible: true}, append([]byte{op}, arg...))
}

func readFrame(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > 1<<28 {
		return nil, fmt.Errorf("bad response size %d", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

// roundTrip writes frame and reads one response; it checks the correlation id
// and returns the body after a v0 response header.
func roundTrip(t testing.TB, c net.Conn, frame []byte) []byte {
	t.Helper()
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	resp, err := readFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	want := binary.BigEndian.Uint32(frame[8:])
	if got := binary.BigEndian.Uint32(resp); got != want {
		t.Fatalf("correlation id %d, want %d", got, want)
	}
	return resp[4:]
}

// expectClosed reads until the server closes the connection and fails if a
// whole response arrives first or nothing happens within the deadline.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 10s")
	}
	if len(b) >= 8 {
		t.Fatalf("got %d bytes before close, want none", len(b))
	}
}

// ---- test handler ----

// Operations, chosen by the first body byte of a Produce request. Other api
// keys are decoded with kmsg.
const (
	opEcho      = 'e' // Msg aliasing the request body
	opParts     = 'b' // the argument as several Bytes parts
	opNone      = 'n' // no response
	opClose     = 'c' // echo, then close
	opCloseNone = 'C' // close without a response
	opPanic     = 'p'
	opSleep     = 's' // sleep (arg: int64 ns) honoring ctx, then echo
	opWaitCtx   = 'w' // block until ctx is done, then echo
	opHeader    = 'h' // describe the parsed header
	opFile      = 'f' // arg: (offset int64, length int64)* → Bytes + File parts
	opBadPart   = 'x' // a File part with negative length
	opBig       = 'g' // a large shared Bytes part (arg: int64 size)

	// Deferred responses.
	opDefer      = 'd' // defer; a goroutine echoes after a delay (arg: int64 ns) or once ctx is done
	opDeferNow   = 'i' // defer and Complete (echo) before Handle returns
	opDeferClose = 'D' // defer; a goroutine echoes with Close
	opHold       = 'H' // defer and hand the request to the test on held (or to opDefer's goroutine)
	opDeferBad   = 'm' // defer but return a plain echo (a handler bug); a goroutine completes later
	opDeferPanic = 'P' // defer, let a goroutine complete later, then panic
)

// heldReq is a deferred request handed to the test by opHold.
type heldReq struct {
	corr int32
	arg  []byte // aliases the request body, valid until Complete
	d    Deferred
}

type rawMsg []byte

func (m rawMsg) AppendTo(b []byte) []byte { return append(b, m...) }

type testHandler struct {
	file    *os.File
	big     []byte
	started chan int32 // receives the correlation id of each opSleep/opWaitCtx start
	created atomic.Int64
	done    atomic.Int64
	doubles atomic.Int64
	apiMax  map[int16]int16
	// Advertised in Metadata; set before the first request is sent.
	brokerHost string
	brokerPort int32
	handling   sync.Map // *ConnInfo → *atomic.Int32, to catch concurrent Handle calls
	overlaps   atomic.Int64
	lastCorr   sync.Map // *ConnInfo → int32, to check arrival order
	disorder   atomic.Int64
	held       chan heldReq // receives opHold requests; nil: they complete like opDefer
	seen       chan int32   // if non-nil, receives the correlation id of every request handled
	promised   atomic.Int64 // deferred requests not yet completed
	// maxWait, if set, bounds every wait of opSleep, opWaitCtx and the
	// deferring ops. A reader parked at MaxInFlight does not notice that
	// its client left, so a wait that ends only with ctx could last forever.
	maxWait time.Duration
}

// wait waits for d (bounded by maxWait) or until ctx is done.
func (h *testHandler) wait(ctx context.Context, d time.Duration) {
	if h.maxWait > 0 {
		d = min(d, h.maxWait)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func newTestHandler() *testHandler {
	return &testHandler{started: make(chan int32, 1000)}
}

func (h *testHandler) signalStart(corr int32) {
	select {
	case h.started <- corr:
	default: // nobody listens (fuzzing)
	}
}

func (h *testHandler) withDone(r Response) Response {
	h.created.Add(1)
	var once atomic.Bool
	r.Done = func() {
		if !once.CompareAndSwap(false, true) {
			h.doubles.Add(1)
		}
		h.done.Add(1)
	}
	return r
}

// waitDone waits until every deferred request was completed and every Done
// created was called.
func (h *testHandler) waitDone(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.promised.Load() != 0 || h.done.Load() != h.created.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("Done called %d times for %d responses; %d deferred requests not completed",
				h.done.Load(), h.created.Load(), h.promised.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if d := h.doubles.Load(); d != 0 {
		t.Fatalf("Done called twice %d times", d)
	}
}

func (h *testHandler) Handle(ctx context.Context, req *Request) Response {
	v, _ := h.handling.LoadOrStore(req.Conn, new(atomic.Int32))
	active := v.(*atomic.Int32)
	if active.Add(1) != 1 {
		h.overlaps.Add(1)
	}
	defer active.Add(-1)
	if prev, ok := h.lastCorr.Load(req.Conn); ok && prev.(int32) >= req.CorrelationID && req.CorrelationID != 0 {
		h.disorder.Add(1)
	}
	h.lastCorr.Store(req.Conn, req.CorrelationID)
	if h.seen != nil {
		h.seen <- req.CorrelationID
	}

	if req.APIKey != 0 {
		return h.kmsgResponse(req)
	}
	if len(req.Body) == 0 {
		return Response{}
	}
	op, arg := req.Body[0], req.Body[1:]
	switch op {
	case opEcho:
		return h.withDone(Response{Msg: rawMsg(arg)})
	case opParts:
		var parts []Part
		for len(arg) > 0 {
			n := min(len(arg), 1+len(arg)/3)
			parts = append(parts, Part{Bytes: arg[:n]}, Part{})
			arg = arg[n:]
		}
		return h.withDone(Response{Parts: parts})
	case opNone:
		return h.withDone(Response{None: true})
	case opClose:
		return h.withDone(Response{Msg: rawMsg(arg), Close: true})
	case opCloseNone:
		return h.withDone(Response{None: true, Close: true})
	case opPanic:
		panic("test panic")
	case opSleep:
		if len(arg) < 8 {
			break
		}
		h.signalStart(req.CorrelationID)
		h.wait(ctx, time.Duration(binary.BigEndian.Uint64(arg)))
		return h.withDone(Response{Msg: rawMsg(arg)})
	case opWaitCtx:
		h.signalStart(req.CorrelationID)
		h.wait(ctx, math.MaxInt64)
		return h.withDone(Response{Msg: rawMsg(arg)})
	case opHeader:
		var b []byte
		b = binary.BigEndian.AppendUint16(b, uint16(req.APIKey))
		b = binary.BigEndian.AppendUint16(b, uint16(req.APIVersion))
		b = binary.BigEndian.AppendUint32(b, uint32(req.CorrelationID))
		if req.Flexible {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		if req.ClientID == nil {
			b = append(b, '-')
		} else {
			b = append(b, '+')
			b = append(b, *req.ClientID...)
		}
		return h.withDone(Response{Msg: rawMsg(b)})
	case opFile:
		var parts []Part
		for i := 0; len(arg) >= 16; i++ {
			off := int64(binary.BigEndian.Uint64(arg))
			n := int64(binary.BigEndian.Uint64(arg[8:]))
			arg = arg[16:]
			parts = append(parts, Part{Bytes: []byte{byte(i)}}, Part{File: h.file, Offset: off, Length: n})
		}
		parts = append(parts, Part{Bytes: bytes.Repeat([]byte{'z'}, 5000)})
		return h.withDone(Response{Parts: parts})
	case opBadPart:
		return h.withDone(Response{Parts: []Part{{File: h.file, Length: -1}}})
	case opBig:
		if len(arg) < 8 {
			break
		}
		n := min(binary.BigEndian.Uint64(arg), uint64(len(h.big)))
		return h.withDone(Response{Parts: []Part{{Bytes: h.big[:n]}}})
	case opDefer, opDeferClose:
		d := req.Defer()
		h.completeLater(ctx, d, arg, op == opDeferClose)
		return Response{Deferred: d}
	case opDeferNow:
		d := req.Defer()
		d.Complete(h.withDone(Response{Msg: rawMsg(arg)}))
		return Response{Deferred: d}
	case opHold:
		d := req.Defer()
		h.promised.Add(1)
		select {
		case h.held <- heldReq{req.CorrelationID, arg, d}:
		default:
			h.promised.Add(-1)
			h.completeLater(ctx, d, arg, false)
		}
		return Response{Deferred: d}
	case opDeferBad:
		h.completeLater(ctx, req.Defer(), arg, false)
		return h.withDone(Response{Msg: rawMsg(arg)})
	case opDeferPanic:
		h.completeLater(ctx, req.Defer(), arg, false)
		panic("test panic after Defer")
	}
	return h.withDone(Response{Msg: rawMsg("unknown op")})
}

// completeLater completes d with an echo of arg from a new goroutine, after
// the delay in arg's first 8 bytes (none if shorter) or once ctx is done.
func (h *testHandler) completeLater(ctx context.Context, d Deferred, arg []byte, closeConn bool) {
	var delay time.Duration
	if len(arg) >= 8 {
		delay = time.Duration(binary.BigEndian.Uint64(arg) % uint64(time.Second))
	}
	h.promised.Add(1)
	go func() {
		if delay > 0 {
			h.wait(ctx, delay)
		}
		h.complete(d, Response{Msg: rawMsg(arg), Close: closeConn})
	}()
}

// complete completes d with r, counting r's Done, for a request deferred
// with completeLater or opHold.
func (h *testHandler) complete(d Deferred, r Response) {
	d.Complete(h.withDone(r))
	h.promised.Add(-1)
}

// kmsgResponse answers ApiVersions and Metadata the way a broker would.
func (h *testHandler) kmsgResponse(req *Request) Response {
	kreq := kmsg.RequestForKey(req.APIKey)
	if req.APIVersion < 0 || req.APIVersion > kreq.MaxVersion() {
		return Response{None: true, Close: true}
	}
	kreq.SetVersion(req.APIVersion)
	if err := kreq.ReadFrom(req.Body); err != nil {
		return Response{None: true, Close: true}
	}
	switch r := kreq.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		for _, k := range []int16{0, 3, 18} {
			resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{
				ApiKey: k, MinVersion: 0, MaxVersion: h.apiMax[k],
			})
		}
		return h.withDone(Response{Msg: resp})
	case *kmsg.MetadataRequest:
		resp := r.ResponseKind().(*kmsg.MetadataResponse)
		resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: h.brokerHost, Port: h.brokerPort}}
		resp.ControllerID = 0
		for _, tp := range r.Topics {
			t := kmsg.NewMetadataResponseTopic()
			t.Topic = tp.Topic
			t.ErrorCode = 3 // UNKNOWN_TOPIC_OR_PARTITION
			resp.Topics = append(resp.Topics, t)
		}
		return h.withDone(Response{Msg: resp})
	}
	return Response{None: true, Close: true}
}

func int64Arg(v ...int64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint64(b, uint64(x))
	}
	return b
}
