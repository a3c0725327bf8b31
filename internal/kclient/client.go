package kclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	// ErrClosed is returned by Request once Close has been called, and by
	// the requests that were outstanding when it was.
	ErrClosed = errors.New("kclient: client closed")

	// ErrUnsupported is returned by Request when the peer does not serve the
	// request's API key, or serves no version of it that both kmsg and the
	// caller's cap allow (see the package doc). Nothing was sent.
	ErrUnsupported = errors.New("kclient: request version not supported by peer")
)

// Defaults of Config's fields.
const (
	defaultClientID    = "easel-broker"
	defaultDialTimeout = 5 * time.Second
	defaultIdleTimeout = 5 * time.Minute
)

// Config configures a Client. The zero value is usable.
type Config struct {
	// ClientID is the client_id of every request header (Kafka's client.id);
	// peers log it. Default "easel-broker".
	ClientID string

	// DialTimeout bounds connecting to a peer and the ApiVersions handshake
	// that follows, whatever the ctx of the Request that caused the dial
	// (which bounds only that caller's wait). Default 5s.
	DialTimeout time.Duration

	// IdleTimeout closes a connection that no Request has used for this
	// long (Kafka's connections.max.idle.ms). Keep it below the peers' own
	// idle timeout (netio's default is 10 min) so that the client, not the
	// peer, closes. Negative: never. Default 5 min.
	IdleTimeout time.Duration

	// Dial opens connections. Default: a net.Dialer. Tests and fault
	// injection wrap it; it must honour ctx.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Logger receives a line when a connection breaks with requests
	// outstanding (Warn), and when one is opened, closed for idleness or
	// closed by the peer while unused (Debug). Default slog.Default().
	Logger *slog.Logger
}

// Client sends Kafka requests to brokers, keeping one pipelined connection
// per address. It is safe for concurrent use. Close it to release its
// connections and goroutines.
type Client struct {
	cfg       Config
	formatter *kmsg.RequestFormatter
	log       *slog.Logger

	// dialCtx is the parent of every dial; Close cancels it.
	dialCtx    context.Context
	cancelDial context.CancelFunc

	// wg counts the dial, reader and writer goroutines. Add is called only
	// under mu while mu.closed is false, so no Add follows Close's Wait.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool
		// conns holds the connection of each address that is being dialled
		// or is usable. A connection leaves it when it breaks or its dial
		// fails, so that the next Request dials again.
		conns map[string]*conn
	}
}

// New returns a Client with cfg. It opens no connection until the first
// Request.
func New(cfg Config) *Client {
	if cfg.ClientID == "" {
		cfg.ClientID = defaultClientID
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{
		cfg:       cfg,
		formatter: kmsg.NewRequestFormatter(kmsg.FormatterClientID(cfg.ClientID)),
		log:       cfg.Logger,
	}
	c.dialCtx, c.cancelDial = context.WithCancel(context.Background())
	c.mu.conns = make(map[string]*conn)
	return c
}

// Request sends req to the broker at addr (host:port) and returns its
// response, decoded at the version req was sent with. The version is chosen
// as the package doc describes and is left set on req.
//
// ctx bounds waiting for the connection and for the response; when it ends
// Request returns an error wrapping ctx.Err(). Errors name the API and addr;
// they wrap ErrUnsupported, ErrClosed, ctx.Err() or the connection's failure.
// A response that does not decode is an error too (the connection is kept).
//
// A ProduceRequest with Acks 0 returns (nil, nil) once it is written.
func (c *Client) Request(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	resp, _, err := c.RequestInto(ctx, addr, req, nil)
	return resp, err
}

// RequestInto is Request reading the response into buf when its capacity
// holds the response frame, and returning the buffer the frame was read into
// (buf, or a new one when buf was too small) for a later call: a caller that
// sends many large requests, such as a follower's fetches, allocates no
// buffer per response. The response's byte slices (a FetchResponse's
// RecordBatches) alias that buffer, so the caller must be done with the
// response before passing the buffer again. On an error it gets no buffer
// back and must not use buf again: a request given up may still be read
// into it.
func (c *Client) RequestInto(ctx context.Context, addr string, req kmsg.Request, buf []byte) (kmsg.Response, []byte, error) {
	resp, frame, err := c.request(ctx, addr, req, buf)
	if err != nil {
		return nil, nil, fmt.Errorf("kclient: %s to %s: %w", kmsg.NameForKey(req.Key()), addr, err)
	}
	return resp, frame, nil
}

func (c *Client) request(ctx context.Context, addr string, req kmsg.Request, buf []byte) (kmsg.Response, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	cn, err := c.conn(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	defer cn.release()

	v, err := cn.version(req)
	if err != nil {
		return nil, nil, err
	}
	req.SetVersion(v)
	call := &call{
		frame: c.formatter.AppendRequest(nil, req, 0), // the writer sets the correlation id
		// ApiVersions responses always have header v0.
		flexible: req.IsFlexible() && req.Key() != apiVersionsKey,
		buf:      buf,
		done:     make(chan result, 1),
	}
	if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		call.noResponse = true
	}
	r := cn.roundTrip(ctx, call)
	if r.err != nil || call.noResponse {
		return nil, nil, r.err
	}
	resp := req.ResponseKind()
	resp.SetVersion(v)
	if err := resp.ReadFrom(r.body); err != nil {
		return nil, nil, fmt.Errorf("decode v%d response: %w", v, err)
	}
	return resp, r.frame, nil
}

// conn returns the usable connection to addr, dialling it if there is none,
// with one more Request counted as using it; the caller must release it.
func (c *Client) conn(ctx context.Context, addr string) (*conn, error) {
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		cn := c.mu.conns[addr]
		if cn == nil {
			cn = newConn(c, addr)
			c.mu.conns[addr] = cn
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				cn.dial()
			}()
		}
		c.mu.Unlock()

		select {
		case <-cn.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if cn.dialErr != nil {
			return nil, cn.dialErr
		}
		if cn.acquire() {
			return cn, nil
		}
		// It broke between the map lookup and now; it is (being) removed.
		c.forget(cn)
	}
}

// forget removes cn from the map if it is still there.
func (c *Client) forget(cn *conn) {
	c.mu.Lock()
	if c.mu.conns[cn.addr] == cn {
		delete(c.mu.conns, cn.addr)
	}
	c.mu.Unlock()
}

// Close closes every connection and waits for the client's goroutines to
// exit. Requests outstanding or started later fail with ErrClosed. Close is
// idempotent; it always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	conns := c.mu.conns
	c.mu.conns = nil
	c.mu.Unlock()

	c.cancelDial()
	for _, cn := range conns {
		select {
		case <-cn.ready:
			if cn.dialErr == nil {
				cn.fail(ErrClosed)
			}
		default:
			// Still dialling: the dial goroutine sees closed and gives up.
		}
	}
	c.wg.Wait()
	return nil
}
