package netio

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	readBufSize = 8 << 10 // bufio size: many small pipelined frames per read syscall
	coalesceMax = 4 << 10 // Bytes parts up to this size are copied next to the header
	// A batch of responses gathered into one write ends past these.
	batchMaxBytes = 64 << 10
	batchMaxItems = 64
	copyChunk     = 256 << 10 // read size of the pread fallback for File parts
)

var (
	errForced      = errors.New("netio: server closed")
	errDraining    = errors.New("netio: server shutting down")
	errIdle        = errors.New("netio: idle timeout")
	errSlowRequest = errors.New("netio: request frame not received within IdleTimeout")
	errCloseAsked  = errors.New("netio: handler asked to close the connection")
	errPanic       = errors.New("netio: panic while handling or encoding")
	errConnClosed  = errors.New("netio: connection closed")
	errBadPart     = errors.New("netio: invalid response part")
	errRespTooBig  = errors.New("netio: response larger than 2 GiB - 1")
	errTruncated   = errors.New("netio: file region shorter than its length")
	errNoSendfile  = errors.New("netio: sendfile not possible here")
)

var (
	readLabels   = pprof.WithLabels(context.Background(), pprof.Labels("netio", "read"))
	handleLabels = pprof.WithLabels(context.Background(), pprof.Labels("netio", "handle"))
	writeLabels  = pprof.WithLabels(context.Background(), pprof.Labels("netio", "write"))
)

// slot carries one request and then its response, from the moment the
// reader takes it until the response is written or dropped (finish). Slots
// are recycled through conn.free, whose capacity, MaxInFlight, bounds the
// requests in flight. A slot is in exactly one place at a time: free, the
// reader, reqs, the handler, out, the writer's batch, or (abandoned deferred)
// with the caller that will Complete it.
type slot struct {
	c    *conn // nil for a Request built by hand and deferred
	req  Request
	bufp *[]byte // the frame; released once the response is written
	size int64
	// resp is set by the handler, or, for a deferred request, by Complete
	// under d's lock; the writer reads it once d.state is dComplete.
	resp     Response
	deferred bool // Defer was called (set on the handler goroutine)
	panicked bool // Handle panicked or misused Defer: write nothing, close
	// times are for Config.Observer; given is set by the handler, or by
	// Complete under d's lock before the writer can see dComplete.
	times reqTimes

	d struct {
		sync.Mutex
		gen   uint64 // bumped by each Defer; written only by the handler goroutine
		state dstate
	}
}

// conn is one client connection. The reader, handler and writer goroutines
// each own the fields grouped under their name; the atomics are shared.
type conn struct {
	s      *Server
	nc     net.Conn
	info   ConnInfo
	log    *slog.Logger
	ctx    context.Context // given to Handle; cancelled by kill
	cancel context.CancelFunc

	free       chan *slot    // idle slots; cap = MaxInFlight
	reqs       chan *slot    // read, waiting to be handled; same cap, never blocks
	out        chan *slot    // handled, waiting to be written; same cap, never blocks
	released   chan struct{} // token sent when pendingBytes drops
	wake       chan struct{} // token sent by Complete; cap 1
	writerDone chan struct{} // closed when the writer has finished every item

	// Shared.
	inFlight     atomic.Int64 // requests read and not yet written or dropped
	pendingBytes atomic.Int64 // frame bytes read and not yet released
	lastWrite    atomic.Int64 // unix nanos of the last response written (or of open)
	draining     atomic.Bool
	closeAsked   atomic.Bool // a deferred response with Close was completed

	closeOnce sync.Once
	reason    error // why the connection closed; set once by kill

	// Reader.
	br       *bufio.Reader
	szb      [4]byte
	hdr      header
	slots    int     // slots allocated so far, <= cap(free)
	clientID *string // last client_id, reused while it repeats

	// Writer.
	vec      [][]byte    // bytes queued for the next write, in order
	vecBytes int         // total length of vec
	bufs     net.Buffers // vec handed to writev; consumed by WriteTo
	held     []*[]byte   // scratch buffers vec points into, returned after the batch
	batch    []*slot     // responses queued, finished (Done) after the batch is written
	sf       sendfileState
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	q := s.cfg.MaxInFlight
	c := &conn{
		s:          s,
		nc:         nc,
		info:       ConnInfo{ID: id, RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()},
		free:       make(chan *slot, q),
		reqs:       make(chan *slot, q),
		out:        make(chan *slot, q),
		released:   make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		br:         bufio.NewReaderSize(nc, readBufSize),
	}
	c.log = s.log.With("conn", id, "remote", addrString(c.info.RemoteAddr))
	c.ctx, c.cancel = context.WithCancel(s.baseCtx)
	c.lastWrite.Store(time.Now().UnixNano())
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.sf.init(raw)
		}
	}
	return c
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// run serves the connection until it is finished and returns when its
// reader, handler and writer are done (the writer waits for the handler, so
// a Handle call that ignores its context holds run up). Deferred responses
// not yet completed when the connection dies are left to Complete.
func (c *conn) run() {
	pprof.SetGoroutineLabels(readLabels)
	c.log.Debug("netio: connection opened")
	go c.handleLoop()
	go c.writeLoop()
	err := c.readLoop()
	close(c.reqs)
	if !errors.Is(err, errDraining) {
		c.kill(err) // drop what was read; nobody will read the answers
	}
	<-c.writerDone
	c.kill(errDraining)
	c.s.untrack(c)
	c.log.Debug("netio: connection closed", "reason", c.reason)
}

// kill closes the connection at once and cancels its context; the first
// reason wins.
func (c *conn) kill(reason error) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.cancel()
		c.nc.Close()
	})
}

// drain makes the reader stop after the frame it is reading; requests
// already read are still handled and answered.
func (c *conn) drain() {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// arm sets the read deadline. Checking draining after setting it closes the
// race with drain: either drain's deadline comes later, or we see the flag.
func (c *conn) arm(d time.Time) error {
	c.nc.SetReadDeadline(d)
	if c.draining.Load() {
		return errDraining
	}
	return nil
}

func (c *conn) idleDeadline() time.Time {
	if c.s.cfg.IdleTimeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(c.s.cfg.IdleTimeout)
}

// idleExtension decides, when the idle deadline fires before a frame began,
// whether the connection is really idle. It is not while a request is
// outstanding (a long poll) or while its last response is recent.
func (c *conn) idleExtension() (time.Time, bool) {
	idle := c.s.cfg.IdleTimeout
	if idle <= 0 {
		return time.Time{}, true
	}
	now := time.Now()
	if c.inFlight.Load() > 0 {
		return now.Add(idle), true
	}
	if d := time.Unix(0, c.lastWrite.Load()).Add(idle); d.After(now) {
		return d, true
	}
	return time.Time{}, false
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// acquire returns a free slot, allocating up to cap(free) of them, or nil
// when the connection died while waiting.
func (c *conn) acquire() *slot {
	select {
	case sl := <-c.free:
		return sl
	default:
	}
	if c.slots < cap(c.free) {
		c.slots++
		return &slot{c: c}
	}
	select {
	case sl := <-c.free:
		return sl
	case <-c.ctx.Done():
		return nil
	}
}

// readLoop reads frames until an error, the end of the stream or drain.
func (c *conn) readLoop() error {
	maxSize := int64(c.s.cfg.MaxRequestSize)
	for {
		sl := c.acquire()
		if sl == nil {
			return errConnClosed
		}
		if err := c.arm(c.idleDeadline()); err != nil {
			return err
		}
		size, err := c.readSize()
		if err != nil {
			switch {
			case errors.Is(err, errDraining), err == io.EOF, errors.Is(err, net.ErrClosed):
			case errors.Is(err, errIdle):
				c.log.Debug("netio: closing idle connection")
			default:
				c.log.Debug("netio: read failed", "err", err)
			}
			return err
		}
		if size < 0 {
			c.log.Warn("netio: closing connection", "err", errNegativeSize, "size", size)
			return errNegativeSize
		}
		if size > maxSize {
			c.log.Warn("netio: closing connection", "err", errFrameTooBig, "size", size, "max", maxSize)
			return errFrameTooBig
		}
		if err := c.waitBudget(size); err != nil {
			return err
		}
		bp := getBuf(int(size))
		if _, err := io.ReadFull(c.br, *bp); err != nil {
			putBuf(bp)
			switch {
			case isTimeout(err) && c.draining.Load():
				return errDraining
			case isTimeout(err):
				err = errSlowRequest
			case err == io.EOF:
				err = io.ErrUnexpectedEOF
			}
			c.log.Debug("netio: request frame incomplete", "err", err, "size", size)
			return err
		}
		body, err := parseHeader(*bp, &c.hdr)
		if err != nil {
			putBuf(bp)
			c.log.Warn("netio: closing connection", "err", err)
			return err
		}
		h := &c.hdr
		sl.req = Request{
			APIKey:        h.key,
			APIVersion:    h.version,
			CorrelationID: h.corr,
			ClientID:      c.clientIDString(h),
			Flexible:      h.flexible,
			Body:          body,
			Conn:          &c.info,
			sl:            sl,
		}
		sl.bufp, sl.size = bp, size
		if c.s.cfg.Observer != nil {
			sl.times.read = time.Now()
		}
		c.pendingBytes.Add(size)
		c.inFlight.Add(1)
		c.reqs <- sl
	}
}

// readSize reads a frame's size field. An idle deadline that fires before its
// first byte is extended while the connection is busy (see idleExtension).
func (c *conn) readSize() (int64, error) {
	n := 0
	for n < 4 {
		m, err := c.br.Read(c.szb[n:])
		n += m
		if err == nil {
			continue
		}
		switch {
		case isTimeout(err) && c.draining.Load():
			return 0, errDraining
		case isTimeout(err) && n == 0:
			d, ok := c.idleExtension()
			if !ok {
				return 0, errIdle
			}
			if err := c.arm(d); err != nil {
				return 0, err
			}
			continue
		case isTimeout(err):
			return 0, errSlowRequest
		case err == io.EOF && n > 0:
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return int64(int32(binary.BigEndian.Uint32(c.szb[:]))), nil
}

// waitBudget waits until the connection's frames read but not yet answered
// leave room for size more bytes under MaxRequestSize. A frame is always
// admitted when nothing else is pending.
func (c *conn) waitBudget(size int64) error {
	limit := int64(c.s.cfg.MaxRequestSize)
	waited := false
	for {
		p := c.pendingBytes.Load()
		if p == 0 || p+size <= limit {
			break
		}
		waited = true
		select {
		case <-c.released:
		case <-c.ctx.Done():
			return errConnClosed
		}
	}
	if waited {
		return c.arm(c.idleDeadline()) // the frame gets a fresh IdleTimeout
	}
	return nil
}

func (c *conn) clientIDString(h *header) *string {
	if h.clientIDNull {
		return nil
	}
	if c.clientID != nil && *c.clientID == string(h.clientID) {
		return c.clientID
	}
	s := string(h.clientID)
	c.clientID = &s
	return c.clientID
}

// handleLoop calls Handle for each request in order and passes the slots
// to the writer; it never blocks but in Handle (out has room for every
// slot). After a Close response or a panic, or once the connection is dead,
// the remaining requests are dropped unhandled.
func (c *conn) handleLoop() {
	pprof.SetGoroutineLabels(handleLabels)
	defer close(c.out)
	stopped := false
	for sl := range c.reqs {
		if stopped || c.closeAsked.Load() || c.ctx.Err() != nil {
			c.finish(sl)
			continue
		}
		c.handle(sl)
		stopped = sl.panicked || (!sl.deferred && sl.resp.Close)
		c.out <- sl
	}
}

// handle calls Handle for sl and records the outcome in sl.
func (c *conn) handle(sl *slot) {
	r := &sl.req
	if c.s.cfg.Observer != nil {
		sl.times.handled = time.Now()
	}
	resp, ok := c.call(r)
	if c.s.cfg.Observer != nil && !sl.deferred {
		sl.times.given = time.Now()
	}
	switch {
	case !ok:
		sl.panicked = true
	case sl.deferred || resp.Deferred.sl != nil:
		if !checkDeferred(sl, &resp) {
			c.log.Error("netio: closing connection", "err", errDeferMisuse,
				"api_key", r.APIKey, "api_version", r.APIVersion)
			sl.panicked = true
			if resp.Done != nil {
				c.callDone(resp.Done) // this Response is never written
			}
		}
	default:
		sl.resp = resp
	}
}

func (c *conn) call(r *Request) (resp Response, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("netio: Handle panicked; closing connection", "panic", p,
				"api_key", r.APIKey, "api_version", r.APIVersion, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	return c.s.h.Handle(c.ctx, r), true
}

// finish releases a request's frame and accounting, calls Done and recycles
// the slot. It runs exactly once per request read: on the handler (dropped
// unhandled), on the writer (written or dropped), or in Complete (deferred
// and abandoned).
func (c *conn) finish(sl *slot) {
	if sl.bufp != nil {
		putBuf(sl.bufp)
	}
	c.pendingBytes.Add(-sl.size)
	select {
	case c.released <- struct{}{}:
	default:
	}
	c.inFlight.Add(-1)
	c.observe(sl)
	if sl.resp.Done != nil {
		c.callDone(sl.resp.Done)
	}
	sl.req, sl.bufp, sl.size, sl.resp, sl.times = Request{}, nil, 0, Response{}, reqTimes{}
	sl.deferred, sl.panicked = false, false
	sl.d.Lock()
	sl.d.state = dNone
	sl.d.Unlock()
	c.free <- sl // never blocks: there are at most cap(free) slots
}

func (c *conn) callDone(done func()) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("netio: Response.Done panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	done()
}

// writeLoop writes responses in order until the handler closes out. While
// more responses are already waiting it gathers them into one write (up to
// batchMaxItems or batchMaxBytes); before waiting for a deferred response it
// writes what it gathered. Once the connection is dead it keeps draining
// out, dropping responses, so that every Done is called.
func (c *conn) writeLoop() {
	pprof.SetGoroutineLabels(writeLabels)
	defer close(c.writerDone)
	for sl := range c.out {
		// Once given up, sl belongs to Complete: read nothing of it after.
		if panicked := sl.panicked; sl.deferred && !c.awaitDeferred(sl) {
			if panicked {
				c.endBatch()
				c.kill(errPanic)
			}
			continue
		}
		if c.ctx.Err() == nil && !sl.panicked && !sl.resp.None {
			if err := c.writeResponse(sl); err != nil {
				if !errors.Is(err, errIO) {
					c.flush() // the responses before this one are fine: deliver them
				}
				c.fail(err)
			}
		}
		c.batch = append(c.batch, sl)
		if len(c.out) > 0 && c.vecBytes < batchMaxBytes && len(c.batch) < batchMaxItems &&
			!sl.resp.Close && !sl.panicked {
			continue
		}
		c.endBatch()
	}
	c.endBatch()
}

// endBatch writes what the batch queued, then finishes its responses.
func (c *conn) endBatch() {
	if len(c.vec) > 0 && c.ctx.Err() == nil {
		if err := c.flush(); err != nil {
			c.fail(err)
		}
	}
	if c.ctx.Err() == nil {
		c.lastWrite.Store(time.Now().UnixNano())
	}
	clear(c.vec)
	c.vec, c.vecBytes = c.vec[:0], 0
	for _, bp := range c.held {
		putBuf(bp)
	}
	clear(c.held)
	c.held = c.held[:0]
	for _, sl := range c.batch {
		switch {
		case sl.panicked:
			c.kill(errPanic)
		case sl.resp.Close:
			c.kill(errCloseAsked)
		}
		c.finish(sl)
	}
	clear(c.batch)
	c.batch = c.batch[:0]
}

// fail logs a write error and closes the connection.
func (c *conn) fail(err error) {
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		c.log.Debug("netio: write failed", "err", err)
	case isTimeout(err):
		c.log.Warn("netio: closing connection: client too slow to read response",
			"err", err, "write_timeout", c.s.cfg.WriteTimeout)
	default:
		c.log.Warn("netio: closing connection: response not written", "err", err)
	}
	c.kill(err)
}

// errIO marks errors of the connection itself, as opposed to a response
// that could not be encoded.
var errIO = errors.New("netio: write failed")

// writeResponse encodes one response frame and queues it in vec, writing
// out what is queued when a File part needs sendfile. Its scratch buffer is
// held until the batch is flushed.
func (c *conn) writeResponse(sl *slot) (err error) {
	bp := getBuf(0)
	c.held = append(c.held, bp)
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("netio: encoding response panicked", "panic", p,
				"api_key", sl.req.APIKey, "stack", string(debug.Stack()))
			err = errPanic
		}
	}()
	*bp, err = c.encode(sl, (*bp)[:0])
	return err
}

// queue adds p to the bytes waiting for the next write.
func (c *conn) queue(p []byte) {
	c.vec = append(c.vec, p)
	c.vecBytes += len(p)
}

// encode builds the frame of sl's response in b (header, Msg, small Bytes parts) and
// queues its pieces in vec; File parts write out what is queued and then go
// out with sendfile. It returns b, possibly grown, which vec may point into.
// Validation errors come before anything of this response is queued.
func (c *conn) encode(sl *slot, b []byte) ([]byte, error) {
	r := &sl.resp
	b = append(b, 0, 0, 0, 0) // size, filled in below
	b = appendResponseHeader(b, sl.req.APIKey, sl.req.CorrelationID, sl.req.Flexible)
	if r.Msg != nil {
		b = r.Msg.AppendTo(b)
	}
	total := int64(len(b) - 4)
	small := 0
	for i := range r.Parts {
		p := &r.Parts[i]
		switch {
		case p.File != nil:
			if len(p.Bytes) != 0 || p.Offset < 0 || p.Length < 0 {
				return b, fmt.Errorf("%w: part %d: file region offset %d length %d with %d bytes",
					errBadPart, i, p.Offset, p.Length, len(p.Bytes))
			}
			total += p.Length
		case p.Offset != 0 || p.Length != 0:
			return b, fmt.Errorf("%w: part %d: offset %d length %d without a file", errBadPart, i, p.Offset, p.Length)
		case len(p.Bytes) <= coalesceMax:
			small += len(p.Bytes)
			total += int64(len(p.Bytes))
		default:
			total += int64(len(p.Bytes))
		}
		if total > math.MaxInt32 {
			return b, errRespTooBig
		}
	}
	binary.BigEndian.PutUint32(b, uint32(total))
	// Grow once so that the slices of b queued in vec stay valid.
	b = slices.Grow(b, small)

	if wt := c.s.cfg.WriteTimeout; wt > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(wt))
	}
	mark := 0 // b[mark:] is not yet queued
	for i := range r.Parts {
		p := &r.Parts[i]
		switch {
		case p.File != nil:
			if p.Length == 0 {
				continue
			}
			if len(b) > mark {
				c.queue(b[mark:])
				mark = len(b)
			}
			if err := c.flush(); err != nil {
				return b, err
			}
			if err := c.writeFile(p); err != nil {
				return b, err
			}
		case len(p.Bytes) <= coalesceMax:
			b = append(b, p.Bytes...)
		default:
			if len(b) > mark {
				c.queue(b[mark:])
				mark = len(b)
			}
			c.queue(p.Bytes)
		}
	}
	if len(b) > mark {
		c.queue(b[mark:])
	}
	return b, nil
}

// flush writes vec with one write or writev and empties it. Its errors wrap
// errIO.
func (c *conn) flush() error {
	var err error
	switch len(c.vec) {
	case 0:
		return nil
	case 1:
		_, err = c.nc.Write(c.vec[0])
	default:
		c.bufs = c.vec
		_, err = c.bufs.WriteTo(c.nc)
		c.bufs = nil
	}
	clear(c.vec)
	c.vec, c.vecBytes = c.vec[:0], 0
	if err != nil {
		return fmt.Errorf("%w: %w", errIO, err)
	}
	return nil
}

// writeFile writes a File part with sendfile when possible, else with pread
// and write.
func (c *conn) writeFile(p *Part) error {
	off, n := p.Offset, p.Length
	if c.sf.usable() {
		sent, err := c.sf.send(p.File, off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNoSendfile) {
			return err
		}
		off, n = off+sent, n-sent
	}
	return c.copyFile(p.File, off, n)
}

// copyFile writes n bytes of f from off through a pooled buffer.
func (c *conn) copyFile(f *os.File, off, n int64) error {
	bp := getBuf(int(min(n, copyChunk)))
	defer putBuf(bp)
	buf := *bp
	for n > 0 {
		k := min(n, int64(len(buf)))
		m, err := f.ReadAt(buf[:k], off)
		if m > 0 {
			if _, werr := c.nc.Write(buf[:m]); werr != nil {
				return fmt.Errorf("%w: %w", errIO, werr)
			}
			off += int64(m)
			n -= int64(m)
		}
		switch {
		case n == 0:
			return nil
		case err == io.EOF || (err == nil && m == 0):
			return fmt.Errorf("%w: %d bytes missing at offset %d of %s", errTruncated, n, off, f.Name())
		case err != nil:
			return fmt.Errorf("netio: reading response file: %w", err)
		}
	}
	return nil
}
