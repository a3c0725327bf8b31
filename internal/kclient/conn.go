package kclient

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

// sendQueue is how many requests may wait for a connection's writer; more
// callers block (each bounded by its ctx).
const sendQueue = 64

// maxWriteBatch bounds how many waiting requests the writer gathers into one
// writev.
const maxWriteBatch = 64

// errIdle is the sticky error of a connection closed for idleness. No caller
// sees it unless it raced the close, in which case it is retried (see
// Client.conn).
var errIdle = errors.New("kclient: connection closed after being idle")

// versionRange is what a peer serves of one API key.
type versionRange struct{ min, max int16 }

// result is what a call's caller receives: a response body (in frame, the
// whole buffer it was read into) or an error.
type result struct {
	body, frame []byte
	err         error
}

// call is one request on a connection.
type call struct {
	// frame is the encoded request; the writer patches its correlation id.
	frame []byte
	// flexible: the response header has a tagged-field section (v1).
	flexible bool
	// buf, if its capacity is enough, receives the response frame
	// (RequestInto) instead of a new allocation.
	buf []byte
	// noResponse: acks=0 produce; done gets a result once it is written.
	noResponse bool
	// corr is set by the writer before the call joins pending.
	corr int32
	// abandoned is set by a caller that stopped waiting; the writer skips
	// the call if it has not written it yet.
	abandoned atomic.Bool
	// done receives at most one result; it is buffered so that the sender
	// never blocks on a caller that left.
	done chan result
}

// conn is one connection to a peer: a dial goroutine that connects and
// handshakes, then a writer and a reader goroutine.
type conn struct {
	cl   *Client
	addr string

	// ready is closed when the dial ends; dialErr, nc, br, versions and
	// nextCorr are written before and only read after (br and nextCorr
	// then belong to the reader and the writer).
	ready    chan struct{}
	dialErr  error
	nc       net.Conn
	br       *bufio.Reader
	versions map[int16]versionRange
	nextCorr int32

	sendq chan *call    // callers to the writer
	dead  chan struct{} // closed when mu.err is set

	mu struct {
		sync.Mutex
		// err is sticky: once set the connection is closed and dead is.
		err error
		// pending are the calls written and not answered, in write order,
		// which is the order of their responses.
		// Invariant: empty once err is set.
		pending []*call
		// active counts the Requests using the connection (acquire to
		// release); idleSince is when it last fell to 0.
		active    int
		idleSince time.Time
		idle      *time.Timer
	}
}

func newConn(c *Client, addr string) *conn {
	return &conn{
		cl:    c,
		addr:  addr,
		ready: make(chan struct{}),
		sendq: make(chan *call, sendQueue),
		dead:  make(chan struct{}),
	}
}

// dial connects, handshakes and starts the reader and writer, or records
// why it could not. It runs on its own goroutine and closes ready.
func (cn *conn) dial() {
	c := cn.cl
	ctx, cancel := context.WithTimeout(c.dialCtx, c.cfg.DialTimeout)
	defer cancel()
	nc, err := c.cfg.Dial(ctx, "tcp", cn.addr)
	if err == nil {
		cn.nc, cn.br = nc, bufio.NewReaderSize(nc, 64<<10)
		if err = cn.handshake(ctx); err != nil {
			nc.Close()
			err = fmt.Errorf("api versions handshake: %w", err)
		}
	} else {
		err = fmt.Errorf("dial: %w", err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		if nc != nil && err == nil {
			nc.Close()
		}
		err = ErrClosed
	}
	if err != nil {
		cn.dialErr = err
		if c.mu.conns[cn.addr] == cn {
			delete(c.mu.conns, cn.addr)
		}
		close(cn.ready)
		return
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		cn.readLoop()
	}()
	go func() {
		defer c.wg.Done()
		cn.writeLoop()
	}()
	close(cn.ready)
	c.log.Debug("kclient: connected", "addr", cn.addr, "local", nc.LocalAddr().String())
}

// handshake exchanges ApiVersions on the new connection and records the
// peer's version ranges. It honours ctx through the connection's deadline.
func (cn *conn) handshake(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		cn.nc.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(time.Unix(1, 0)) })
	err := cn.exchangeVersions()
	if !stop() {
		return ctx.Err() // the deadline was forced into the past
	}
	if err != nil {
		return err
	}
	return cn.nc.SetDeadline(time.Time{})
}

func (cn *conn) exchangeVersions() error {
	for _, v := range []int16{3, 0} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(v)
		req.ClientSoftwareName = "easel"
		req.ClientSoftwareVersion = softwareVersion()
		cn.nextCorr++
		if _, err := cn.nc.Write(cn.cl.formatter.AppendRequest(nil, req, cn.nextCorr)); err != nil {
			return err
		}
		frame, err := readFrame(cn.br, maxResponseSize)
		if err != nil {
			return err
		}
		corr, body, err := parseHeader(frame, false)
		if err != nil {
			return err
		}
		if corr != cn.nextCorr {
			return fmt.Errorf("%w: correlation id %d, expected %d", errFrame, corr, cn.nextCorr)
		}
		// A peer that does not speak v answers in v0 with
		// UNSUPPORTED_VERSION; the error code comes first in every version.
		if v > 0 && len(body) >= 2 && int16(binary.BigEndian.Uint16(body)) == kerr.UnsupportedVersion.Code {
			continue
		}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		if err := resp.ReadFrom(body); err != nil {
			return fmt.Errorf("decode v%d response: %w", v, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		cn.versions = make(map[int16]versionRange, len(resp.ApiKeys))
		for _, k := range resp.ApiKeys {
			cn.versions[k.ApiKey] = versionRange{k.MinVersion, k.MaxVersion}
		}
		return nil
	}
	return fmt.Errorf("peer supports neither v3 nor v0: %w", kerr.UnsupportedVersion)
}

// version returns the version to send req at (see the package doc).
func (cn *conn) version(req kmsg.Request) (int16, error) {
	r, ok := cn.versions[req.Key()]
	if !ok {
		return 0, fmt.Errorf("%w: peer does not serve api key %d", ErrUnsupported, req.Key())
	}
	v := min(req.MaxVersion(), r.max)
	if limit := req.GetVersion(); limit > 0 {
		v = min(v, limit)
	}
	if v < r.min || v < 0 {
		return 0, fmt.Errorf("%w: peer serves v%d-v%d, client at most v%d (cap %d)",
			ErrUnsupported, r.min, r.max, req.MaxVersion(), req.GetVersion())
	}
	return v, nil
}

// acquire counts one more Request using cn, unless cn is broken.
func (cn *conn) acquire() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.mu.err != nil {
		return false
	}
	cn.mu.active++
	return true
}

// release ends a Request's use of cn and arms the idle timer when it was
// the last.
func (cn *conn) release() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.mu.active--
	if cn.mu.active > 0 || cn.mu.err != nil || cn.cl.cfg.IdleTimeout < 0 {
		return
	}
	cn.mu.idleSince = time.Now()
	if cn.mu.idle == nil {
		cn.mu.idle = time.AfterFunc(cn.cl.cfg.IdleTimeout, cn.idleCheck)
	} else {
		cn.mu.idle.Reset(cn.cl.cfg.IdleTimeout)
	}
}

// idleCheck closes cn if no Request has used it for IdleTimeout. It runs
// when the idle timer fires, which may be late or stale.
func (cn *conn) idleCheck() {
	cn.mu.Lock()
	if cn.mu.err != nil || cn.mu.active > 0 {
		cn.mu.Unlock()
		return
	}
	if left := cn.cl.cfg.IdleTimeout - time.Since(cn.mu.idleSince); left > 0 {
		cn.mu.idle.Reset(left)
		cn.mu.Unlock()
		return
	}
	pending := cn.breakLocked(errIdle)
	cn.mu.Unlock()
	cn.cl.log.Debug("kclient: closing idle connection", "addr", cn.addr, "idle_timeout", cn.cl.cfg.IdleTimeout)
	cn.finish(pending, errIdle)
}

// roundTrip hands c to the writer and waits for its result.
func (cn *conn) roundTrip(ctx context.Context, c *call) result {
	select {
	case cn.sendq <- c:
	case <-ctx.Done():
		return result{err: ctx.Err()}
	case <-cn.dead:
		return result{err: cn.err()}
	}
	select {
	case r := <-c.done:
		return r
	case <-ctx.Done():
		c.abandoned.Store(true)
		return result{err: ctx.Err()}
	case <-cn.dead:
		select {
		case r := <-c.done: // answered just before the break
			return r
		default:
			return result{err: cn.err()}
		}
	}
}

func (cn *conn) err() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.mu.err
}

// fail breaks cn with cause unless it is already broken; extra are calls
// the reader took from pending that must fail too.
func (cn *conn) fail(cause error, extra ...*call) {
	cn.mu.Lock()
	if cn.mu.err != nil {
		err := cn.mu.err
		cn.mu.Unlock()
		for _, c := range extra {
			c.done <- result{err: err}
		}
		return
	}
	if cause != ErrClosed {
		cause = fmt.Errorf("connection lost: %w", cause)
	}
	pending := append(cn.breakLocked(cause), extra...)
	n := len(pending)
	cn.mu.Unlock()
	if cause != ErrClosed {
		// A peer closing a connection nobody waits on (its own idle
		// timeout) is routine; one with requests outstanding is not.
		level := slog.LevelDebug
		if n > 0 {
			level = slog.LevelWarn
		}
		cn.cl.log.Log(context.Background(), level, "kclient: connection lost", "addr", cn.addr, "outstanding", n, "err", cause)
	}
	cn.finish(pending, cause)
}

// breakLocked sets the sticky error and returns the pending calls, which
// the caller must pass to finish after unlocking.
func (cn *conn) breakLocked(err error) []*call {
	cn.mu.err = err
	close(cn.dead)
	if cn.mu.idle != nil {
		cn.mu.idle.Stop()
	}
	pending := cn.mu.pending
	cn.mu.pending = nil
	return pending
}

// finish completes breaking cn: it closes the socket, which ends the reader
// and writer, takes cn out of the client's map and fails pending with err.
func (cn *conn) finish(pending []*call, err error) {
	cn.nc.Close()
	cn.cl.forget(cn)
	for _, c := range pending {
		c.done <- result{err: err}
	}
}

// writeLoop writes the requests callers queue, in order, gathering those
// already waiting into one writev.
func (cn *conn) writeLoop() {
	var (
		bufs  net.Buffers
		calls []*call
	)
	for {
		select {
		case c := <-cn.sendq:
			calls = append(calls[:0], c)
		case <-cn.dead:
			return
		}
	gather:
		for len(calls) < maxWriteBatch {
			select {
			case c := <-cn.sendq:
				calls = append(calls, c)
			default:
				break gather
			}
		}
		bufs = bufs[:0]
		cn.mu.Lock()
		if cn.mu.err != nil {
			cn.mu.Unlock()
			return
		}
		for _, c := range calls {
			if c.abandoned.Load() {
				continue
			}
			cn.nextCorr++
			c.corr = cn.nextCorr
			binary.BigEndian.PutUint32(c.frame[8:], uint32(c.corr))
			if !c.noResponse {
				// Before the write: the response may come before Write returns.
				cn.mu.pending = append(cn.mu.pending, c)
			}
			bufs = append(bufs, c.frame)
		}
		cn.mu.Unlock()
		if len(bufs) == 0 {
			continue
		}
		b := bufs // WriteTo consumes its receiver
		if _, err := b.WriteTo(cn.nc); err != nil {
			cn.fail(fmt.Errorf("write: %w", err))
			return
		}
		for i, c := range calls {
			if c.noResponse && !c.abandoned.Load() {
				c.done <- result{}
			}
			calls[i] = nil
		}
		clear(bufs)
	}
}

// readLoop reads responses and hands each to the oldest pending call.
func (cn *conn) readLoop() {
	for {
		n, err := readSize(cn.br, maxResponseSize)
		if err != nil {
			cn.fail(fmt.Errorf("read: %w", err))
			return
		}
		cn.mu.Lock()
		if len(cn.mu.pending) == 0 {
			cn.mu.Unlock()
			cn.fail(fmt.Errorf("%w: a response arrived with no request outstanding", errFrame))
			return
		}
		c := cn.mu.pending[0]
		cn.mu.pending[0] = nil
		cn.mu.pending = cn.mu.pending[1:]
		cn.mu.Unlock()

		frame, err := readBody(cn.br, n, c.buf)
		if err != nil {
			cn.fail(fmt.Errorf("read: %w", err), c)
			return
		}
		corr, body, err := parseHeader(frame, c.flexible)
		if err == nil && corr != c.corr {
			err = fmt.Errorf("%w: correlation id %d, expected %d", errFrame, corr, c.corr)
		}
		if err != nil {
			cn.fail(err, c)
			return
		}
		c.done <- result{body: body, frame: frame}
	}
}

var (
	versionOnce sync.Once
	version     string
)

// softwareVersion is the ClientSoftwareVersion of the handshake: the module
// version of the binary, reduced to the characters KIP-511 allows.
func softwareVersion() string {
	versionOnce.Do(func() {
		version = "devel"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		v := bi.Main.Version
		if bi.Main.Path != "github.com/easel-io/easel" {
			for _, m := range bi.Deps {
				if m.Path == "github.com/easel-io/easel" {
					v = m.Version
				}
			}
		}
		b := []byte(v)
		for i, ch := range b {
			ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-'
			if !ok {
				b[i] = '-'
			}
		}
		for len(b) > 0 && !isAlnum(b[0]) {
			b = b[1:]
		}
		for len(b) > 0 && !isAlnum(b[len(b)-1]) {
			b = b[:len(b)-1]
		}
		if len(b) > 0 {
			version = string(b)
		}
	})
	return version
}

func isAlnum(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
}
