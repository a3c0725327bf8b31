package kclient_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/internal/kclient"
	"github.com/easel-io/easel/netio"
)

// testTimeout bounds every wait of a test; a test that reaches it has hung.
const testTimeout = 10 * time.Second

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker serves a real single-node broker on a loopback port and
// returns its address.
func startBroker(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	log := quietLogger()
	eng, err := engine.Open(dir, engine.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(eng, broker.Config{DataDir: dir, Logger: log})
	srv, err := netio.Listen(netio.Config{Addr: "127.0.0.1:0", Logger: log}, b)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		b.Close()
		srv.Close()
		eng.Close()
	})
	return srv.Addr().String()
}

// countingDialer counts the connections a Client opens.
type countingDialer struct {
	n atomic.Int32
	d net.Dialer
}

func (c *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, addr)
}

// newClient returns a Client closed at the end of the test.
func newClient(t testing.TB, cfg kclient.Config) *kclient.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	c := kclient.New(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakePeer is a Kafka peer made of raw frames: a test scripts, per
// connection, how it answers.
type fakePeer struct {
	t    testing.TB
	ln   net.Listener
	addr string
	// serve runs on its own goroutine for each accepted connection
	// (peerConn.n counts them from 0). The connection is closed when it
	// returns.
	serve func(pc *peerConn)
	// keys is what the peer's ApiVersions lists; apiVersionsMax the
	// highest ApiVersions version it answers (higher gets v0 with
	// UNSUPPORTED_VERSION).
	keys           []kmsg.ApiVersionsResponseApiKey
	apiVersionsMax int16

	accepts atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	closed  bool
}

func defaultKeys() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 0, MinVersion: 3, MaxVersion: 9},  // Produce
		{ApiKey: 3, MinVersion: 0, MaxVersion: 12}, // Metadata
		{ApiKey: 18, MinVersion: 0, MaxVersion: 3}, // ApiVersions
		{ApiKey: 19, MinVersion: 0, MaxVersion: 5}, // CreateTopics
	}
}

// startPeer listens on a loopback port and runs serve for each connection.
// Fields such as keys may be changed before the first Request.
func startPeer(t testing.TB, serve func(pc *peerConn)) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{t: t, ln: ln, addr: ln.Addr().String(), serve: serve, keys: defaultKeys(), apiVersionsMax: 3}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *fakePeer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		n := int(p.accepts.Add(1)) - 1
		pc := &peerConn{p: p, n: n, c: c, br: bufio.NewReader(c)}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			p.serve(pc)
		}()
	}
}

func (p *fakePeer) close() {
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// peerConn is one connection accepted by a fakePeer.
type peerConn struct {
	p  *fakePeer
	n  int
	c  net.Conn
	br *bufio.Reader
	// apiVersions records the ApiVersions versions the client sent.
	apiVersions []int16
}

// peerRequest is a request as the fake peer read it.
type peerRequest struct {
	key, version int16
	corr         int32
	body         []byte
}

func (r peerRequest) flexible() bool { return isFlexible(r.key, r.version) }

func isFlexible(key, version int16) bool {
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	return req.IsFlexible()
}

// read reads one request frame.
func (pc *peerConn) read() (peerRequest, error) {
	var size [4]byte
	if _, err := io.ReadFull(pc.br, size[:]); err != nil {
		return peerRequest{}, err
	}
	f := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(pc.br, f); err != nil {
		return peerRequest{}, err
	}
	if len(f) < 10 {
		return peerRequest{}, fmt.Errorf("request frame of %d bytes", len(f))
	}
	r := peerRequest{
		key:     int16(binary.BigEndian.Uint16(f)),
		version: int16(binary.BigEndian.Uint16(f[2:])),
		corr:    int32(binary.BigEndian.Uint32(f[4:])),
	}
	idLen := int(int16(binary.BigEndian.Uint16(f[8:])))
	rest := f[10:]
	if idLen > 0 {
		rest = rest[idLen:]
	}
	if r.flexible() {
		if len(rest) == 0 || rest[0] != 0 {
			return r, errors.New("request header tags not empty")
		}
		rest = rest[1:]
	}
	r.body = rest
	return r, nil
}

// handshake answers the client's ApiVersions exchange.
func (pc *peerConn) handshake() error {
	for {
		r, err := pc.read()
		if err != nil {
			return err
		}
		if r.key != 18 {
			return fmt.Errorf("first request has key %d, not ApiVersions", r.key)
		}
		pc.apiVersions = append(pc.apiVersions, r.version)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ApiKeys = pc.p.keys
		if r.version > pc.p.apiVersionsMax {
			resp.SetVersion(0)
			resp.ErrorCode = 35 // UNSUPPORTED_VERSION
			if err := pc.write(r.corr, false, resp); err != nil {
				return err
			}
			continue
		}
		resp.SetVersion(r.version)
		return pc.write(r.corr, false, resp)
	}
}

// write sends resp as the answer to corr, with header v1 if flexible.
func (pc *peerConn) write(corr int32, flexible bool, resp kmsg.Response) error {
	f := []byte{0, 0, 0, 0}
	f = binary.BigEndian.AppendUint32(f, uint32(corr))
	if flexible {
		f = append(f, 0)
	}
	f = resp.AppendTo(f)
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	_, err := pc.c.Write(f)
	return err
}

// raw writes b as is.
func (pc *peerConn) raw(b []byte) error {
	_, err := pc.c.Write(b)
	return err
}

// metadataAnswer is the fake peer's answer to a Metadata request: the
// requested topics, each with UNKNOWN_TOPIC_OR_PARTITION, so that a test
// can tell which request a response answers.
func metadataAnswer(r peerRequest) (kmsg.Response, error) {
	if r.key != 3 {
		return nil, fmt.Errorf("fake peer: key %d, want Metadata", r.key)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(r.version)
	if err := req.ReadFrom(r.body); err != nil {
		return nil, err
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(r.version)
	for _, rt := range req.Topics {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic = rt.Topic
		t.ErrorCode = 3
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// answer reads one Metadata request and answers it properly.
func (pc *peerConn) answer() error {
	r, err := pc.read()
	if err != nil {
		return err
	}
	resp, err := metadataAnswer(r)
	if err != nil {
		return err
	}
	return pc.write(r.corr, r.flexible(), resp)
}

// serveWell handshakes and answers Metadata requests until the client
// closes the connection.
func serveWell(pc *peerConn) {
	if pc.handshake() != nil {
		return
	}
	for pc.answer() == nil {
	}
}

// metadataReq is a Metadata request for topic.
func metadataReq(topic string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	return req
}

// checkMetadata fails the test unless resp answers a metadataReq(topic).
func checkMetadata(t testing.TB, resp kmsg.Response, topic string) {
	t.Helper()
	m, ok := resp.(*kmsg.MetadataResponse)
	if !ok {
		t.Fatalf("response %T, want *kmsg.MetadataResponse", resp)
	}
	if len(m.Topics) != 1 || m.Topics[0].Topic == nil || *m.Topics[0].Topic != topic {
		t.Fatalf("response answers topics %+v, want only %q", m.Topics, topic)
	}
}
