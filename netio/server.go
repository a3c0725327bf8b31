package netio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults applied by Listen to zero Config fields.
const (
	DefaultAddr           = ":9092"
	DefaultMaxRequestSize = 100 << 20 // socket.request.max.bytes
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultMaxConns       = 10000
	DefaultWriteTimeout   = time.Minute
	DefaultMaxInFlight    = 16
)

// Config configures a Server. The zero value of every field selects its
// default.
type Config struct {
	// Addr is the TCP address to listen on, such as "127.0.0.1:0".
	// Default ":9092".
	Addr string

	// MaxRequestSize bounds the size field of a request frame (Kafka's
	// socket.request.max.bytes). A larger or negative size closes the
	// connection before anything is allocated for it. It also bounds the
	// bytes of requests that one connection may have read but not yet
	// answered (a single frame is always let through). Default 100 MiB.
	MaxRequestSize int

	// IdleTimeout closes a connection on which no request arrived and no
	// response was written for this long while no request was outstanding
	// (Kafka's connections.max.idle.ms). A frame, once started, must also
	// arrive whole within it. Negative disables it. Default 10 minutes.
	IdleTimeout time.Duration

	// MaxConns bounds the open connections; connections accepted beyond it
	// are closed at once, with a log line. Negative means no limit.
	// Default 10000.
	MaxConns int

	// WriteTimeout bounds the writing of one response; a client that does not
	// read it in time is disconnected. Size it for the largest response at
	// the slowest client you want to keep. Negative disables it.
	// Default 1 minute.
	WriteTimeout time.Duration

	// MaxInFlight bounds the requests of one connection that have been read
	// (or are being read) and whose responses are not yet written or
	// dropped: those queued for Handle, the one being handled, deferred
	// ones not yet completed, and those waiting for the writer. When it is
	// reached the reader stops reading and TCP pushes back on the client.
	// Too low a value stalls clients that pipeline deeply (each deferred
	// long poll or acks=all Produce holds one until it completes; Kafka
	// clients keep about 5 in flight); a high value lets one connection hold
	// more responses in memory at once (their frames stay bounded by
	// MaxRequestSize). While at the bound the reader does not read, so a
	// client that disconnects is noticed only once a response is written
	// (or fails to be): bound every wait in Handle and before Complete, as
	// Kafka's request timeouts do. Default 16.
	MaxInFlight int

	// Logger receives connection events at Debug and errors at Warn (panics
	// in Handle at Error). Default slog.Default().
	Logger *slog.Logger

	// Observer, if set, is told of connections and of each request's
	// queue, handle and send times, for metrics. Default none.
	Observer Observer
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxRequestSize <= 0 {
		c.MaxRequestSize = DefaultMaxRequestSize
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ConnInfo describes one client connection.
type ConnInfo struct {
	// ID numbers the server's connections from 1 in accept order.
	ID uint64
	// RemoteAddr is the client's address.
	RemoteAddr net.Addr
	// LocalAddr is the server's end of the connection.
	LocalAddr net.Addr
	// State is for the Handler's own per-connection data (for example
	// authentication state). netio never touches it; Handle calls of one
	// connection never overlap, so they may use it without locking. Code
	// that completes a Deferred runs concurrently with later Handle calls:
	// it must not touch State without its own synchronization.
	State any
}

// Request is one parsed request frame.
//
// The *Request and its Body stay valid until the request's response has been
// written or dropped; after that netio reuses them, so do not retain them. A
// handler that defers its response may use them until it calls Complete.
type Request struct {
	// APIKey and APIVersion name the request type and version; APIKey is
	// one kmsg knows (others close the connection), APIVersion is as sent.
	APIKey     int16
	APIVersion int16
	// CorrelationID is echoed in the response header.
	CorrelationID int32
	// ClientID is nil when the client sent a null client_id. The string is
	// immutable and may be retained.
	ClientID *string
	// Flexible reports that the request used header v2; the response header
	// then carries a tag byte (except for ApiVersions).
	Flexible bool
	// Body is the request after its header, undecoded. It stays valid until
	// this request's response has been written or dropped, so the Response
	// may alias it (for example strings from kmsg's UnsafeReadFrom); after
	// that its memory is reused.
	Body []byte
	// Conn describes the connection the request came on.
	Conn *ConnInfo

	sl *slot // the connection's slot for this request; nil if built by hand
}

// Part is one piece of a pre-encoded response body: either Bytes, or the
// region [Offset, Offset+Length) of File, sent with sendfile(2) where the
// connection allows it (a Part mixing the two, or with a negative Offset or
// Length, closes the connection). File regions are read at their explicit
// offset, never at the file's seek position, so many connections may share
// one *os.File.
//
// The file should stay open until the response's Done is called. netio
// borrows its descriptor through SyscallConn (never Fd, which would switch
// the file to blocking mode), so a concurrent Close cannot pull the
// descriptor from under a send; a file already closed, or shorter than the
// region, closes the connection, since the frame size is already promised.
type Part struct {
	// Bytes is sent as is when File is nil.
	Bytes []byte
	// File, Offset and Length name a region of a file to send.
	File   *os.File
	Offset int64
	Length int64
}

// Response is what a Handler returns for a request, or passes to
// Deferred.Complete. The body written is the encoding of Msg (if set)
// followed by Parts; a zero Response writes a frame with an empty body. Msg
// is encoded, and Parts are read, after Handle returns (or Complete is
// called), on the connection's writer goroutine: leave them unchanged until
// Done is called.
type Response struct {
	// Msg encodes the body (kmsg.Response satisfies this).
	Msg interface{ AppendTo([]byte) []byte }
	// Parts is a pre-encoded body, or the rest of it after Msg.
	Parts []Part
	// None sends nothing (Produce with acks=0).
	None bool
	// Close closes the connection after writing this response, or instead
	// of writing it when None is set. No later request is handled; when a
	// deferred response closes, the requests after it that were already
	// handled have their responses dropped.
	Close bool
	// Done, if non-nil, is called exactly once after the response was
	// written or dropped (the connection died first): release segment
	// references here. It runs on a connection goroutine, or on the
	// goroutine calling Complete when the connection is already gone, and
	// should not block.
	Done func()
	// Deferred, when returned from Handle, says the response will be given
	// later through Deferred.Complete; every other field must then be zero.
	// See Request.Defer.
	Deferred Deferred
}

// Handler handles requests. Handle is called for one request of a connection
// at a time, in arrival order; different connections call it concurrently.
// A request that must wait (a long poll, acks=all) should not block Handle,
// which would hold up every later request of the connection, but defer its
// response (Request.Defer). ctx is cancelled when the connection dies or the
// server is closed forcefully, so long polls, deferred or not, should watch
// it; it stays usable after Handle returns, until the connection is gone.
type Handler interface {
	Handle(ctx context.Context, req *Request) Response
}

// Server accepts Kafka connections and serves them with a Handler.
type Server struct {
	cfg        Config
	h          Handler
	ln         net.Listener
	log        *slog.Logger
	baseCtx    context.Context // parent of every connection's context
	cancelBase context.CancelFunc
	closedCh   chan struct{} // closed when shutdown begins
	nextID     atomic.Uint64
	live       sync.WaitGroup // one per tracked connection

	mu struct {
		sync.Mutex
		conns   map[*conn]struct{}
		closing bool
		serving bool
	}
}

var (
	errServing     = errors.New("netio: Serve already called")
	errTooManyConn = errors.New("netio: too many connections")
)

// Listen binds cfg.Addr over TCP and returns a Server that serves it with h
// once Serve is called.
func Listen(cfg Config, h Handler) (*Server, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("netio: listen: %w", err)
	}
	return newServer(cfg, h, ln), nil
}

func newServer(cfg Config, h Handler, ln net.Listener) *Server {
	s := &Server{cfg: cfg, h: h, ln: ln, log: cfg.Logger, closedCh: make(chan struct{})}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.mu.conns = make(map[*conn]struct{})
	return s
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Shutdown or Close, then returns nil. It
// returns an error if accepting fails for another reason, or if Serve was
// already called.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.mu.serving {
		s.mu.Unlock()
		return errServing
	}
	s.mu.serving = true
	s.mu.Unlock()

	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("netio: accept: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("netio: accept failed, retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-s.closedCh:
				return nil
			}
			continue
		}
		backoff = 0
		if c := s.track(nc); c != nil {
			go c.run()
		}
	}
}

// temporaryAcceptError reports accept errors worth retrying: resource
// exhaustion and timeouts.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closing
}

// track registers a new connection, or closes nc and returns nil when the
// server is closing or full.
func (s *Server) track(nc net.Conn) *conn {
	s.mu.Lock()
	if s.mu.closing {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	if s.cfg.MaxConns > 0 && len(s.mu.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		s.log.Warn("netio: connection refused", "remote", nc.RemoteAddr().String(),
			"err", errTooManyConn, "max_conns", s.cfg.MaxConns)
		nc.Close()
		if o := s.cfg.Observer; o != nil {
			o.ConnRefused()
		}
		return nil
	}
	c := newConn(s, nc, s.nextID.Add(1))
	s.mu.conns[c] = struct{}{}
	s.live.Add(1)
	s.mu.Unlock()
	if o := s.cfg.Observer; o != nil {
		o.ConnAccepted()
	}
	return c
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	if o := s.cfg.Observer; o != nil {
		o.ConnClosed()
	}
	s.live.Done()
}

// serveConn serves nc (any net.Conn, such as one end of net.Pipe) on the
// calling goroutine until the connection is finished. Used by tests.
func (s *Server) serveConn(nc net.Conn) {
	if c := s.track(nc); c != nil {
		c.run()
	}
}

// beginClose marks the server closing and closes the listener, once.
func (s *Server) beginClose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closing {
		return
	}
	s.mu.closing = true
	close(s.closedCh)
	s.ln.Close()
}

// Shutdown stops accepting connections and stops reading new requests; the
// requests already read are handled and their responses written, deferred
// ones once they are completed, then the connections are closed. If ctx ends
// first, Shutdown closes every connection and cancels the contexts given to
// Handle, and returns ctx's error without waiting for Handle calls that
// ignore their context; deferred responses not yet completed are dropped
// (their Done runs when they are completed).
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	s.mu.Lock()
	for c := range s.mu.conns {
		c.drain()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.live.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancelBase()
		return nil
	case <-ctx.Done():
		s.forceClose()
		return ctx.Err()
	}
}

// Close closes the listener and every connection at once, cancelling the
// contexts given to Handle; responses not yet written are dropped (their Done
// is still called, for a deferred response when it is completed). It does
// not wait for Handle calls to return.
func (s *Server) Close() error {
	s.beginClose()
	s.forceClose()
	return nil
}

func (s *Server) forceClose() {
	s.cancelBase()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.mu.conns {
		c.kill(errForced)
	}
}
