package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

// syncBuffer is a log sink tests can read while the broker writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a broker served by netio on a loopback port.
type testServer struct {
	eng  *engine.Engine
	b    *Broker
	srv  *netio.Server
	addr string
	dir  string
	logs *syncBuffer
}

type serverOpts struct {
	cfg    Config
	engine engine.Options
	// listen, if set, is the listener address to bind (default 127.0.0.1:0).
	listen string
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.engine.Logger == nil {
		o.engine.Logger = log
	}
	eng, err := engine.Open(dir, o.engine)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Logger == nil {
		o.cfg.Logger = log
	}
	if o.cfg.DataDir == "" {
		o.cfg.DataDir = dir
	}
	b := New(eng, o.cfg)
	if o.listen == "" {
		o.listen = "127.0.0.1:0"
	}
	srv, err := netio.Listen(netio.Config{Addr: o.listen, Logger: log}, b)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	ts := &testServer{eng: eng, b: b, srv: srv, addr: srv.Addr().String(), dir: dir, logs: logs}
	t.Cleanup(func() {
		b.Close()
		srv.Close()
		eng.Close()
	})
	return ts
}

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t testing.TB, addr string) *kadm.Client {
	return kadm.NewClient(newClient(t, addr))
}

func createTopic(t testing.TB, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := newAdmin(t, addr).CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Err != nil {
		t.Fatalf("create %s: %v (%s)", topic, resp.Err, resp.ErrMessage)
	}
}

// consumeN reads n records of topic from its start (all partitions) and
// fails the test if they do not arrive in time.
func consumeN(t testing.TB, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)
	cl := newClient(t, addr, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(out), n, topic, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Errorf("fetch %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func strp(s string) *string { return &s }

// rawConn speaks the Kafka protocol with hand-made frames, so that tests
// choose versions and bodies exactly.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	br   *bufio.Reader
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func isFlexible(key, version int16) bool {
	r := kmsg.RequestForKey(key)
	if r == nil {
		return false
	}
	r.SetVersion(version)
	return r.IsFlexible()
}

// sendBytes writes a request frame with the given body and returns its
// correlation id.
func (r *rawConn) sendBytes(key, version int16, body []byte) int32 {
	r.t.Helper()
	r.corr++
	f := []byte{0, 0, 0, 0}
	f = binary.BigEndian.AppendUint16(f, uint16(key))
	f = binary.BigEndian.AppendUint16(f, uint16(version))
	f = binary.BigEndian.AppendUint32(f, uint32(r.corr))
	f = binary.BigEndian.AppendUint16(f, 4)
	f = append(f, "test"...)
	if isFlexible(key, version) {
		f = append(f, 0)
	}
	f = append(f, body...)
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	if _, err := r.c.Write(f); err != nil {
		r.t.Fatal(err)
	}
	return r.corr
}

func (r *rawConn) send(req kmsg.Request, version int16) int32 {
	req.SetVersion(version)
	return r.sendBytes(req.Key(), version, req.AppendTo(nil))
}

// recv reads one response frame and returns its correlation id and body.
func (r *rawConn) recv(key, version int16) (int32, []byte, error) {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(r.br, sz[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(sz[:])
	if n < 4 || n > 256<<20 {
		return 0, nil, fmt.Errorf("bad response size %d", n)
	}
	f := make([]byte, n)
	if _, err := io.ReadFull(r.br, f); err != nil {
		return 0, nil, err
	}
	corr := int32(binary.BigEndian.Uint32(f))
	body := f[4:]
	if key != 18 && isFlexible(key, version) {
		if len(body) == 0 || body[0] != 0 {
			return 0, nil, errors.New("missing response header tag byte")
		}
		body = body[1:]
	}
	return corr, body, nil
}

// roundTrip sends req at version and decodes the response at respVersion
// (the same unless the test expects a downgraded answer).
func (r *rawConn) roundTrip(req kmsg.Request, version int16) kmsg.Response {
	r.t.Helper()
	corr := r.send(req, version)
	return r.read(req, version, corr)
}

func (r *rawConn) read(req kmsg.Request, version int16, corr int32) kmsg.Response {
	r.t.Helper()
	got, body, err := r.recv(req.Key(), version)
	if err != nil {
		r.t.Fatalf("key %d v%d: %v", req.Key(), version, err)
	}
	if got != corr {
		r.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("key %d v%d: decode response: %v", req.Key(), version, err)
	}
	return resp
}

// expectClosed checks that the broker closes the connection without
// answering.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	n, err := r.br.Read(b[:])
	if err == nil || n > 0 {
		r.t.Fatalf("connection still open (read %d bytes, err %v)", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatal("connection not closed within 5s")
	}
}

type batchOpts struct {
	codec    int8
	pid      int64
	epoch    int16
	seq      int32
	txn      bool
	nrecords int
	value    []byte
	ts       int64 // first record's timestamp; default now
}

// makeBatch builds one record batch v2 as a producer sends it.
func makeBatch(t testing.TB, o batchOpts) []byte {
	t.Helper()
	if o.nrecords == 0 {
		o.nrecords = 1
	}
	if o.ts == 0 {
		o.ts = time.Now().UnixMilli()
	}
	bo := record.BuilderOptions{Codec: o.codec, ProducerID: o.pid, ProducerEpoch: o.epoch, BaseSequence: o.seq, Transactional: o.txn, PartitionLeaderEpoch: -1}
	if o.pid == 0 {
		bo.ProducerID = 0
	}
	bld := record.NewBuilder(bo)
	for i := range o.nrecords {
		v := o.value
		if v == nil {
			v = []byte("value-" + strconv.Itoa(i))
		}
		bld.Add(record.Record{Timestamp: o.ts + int64(i), Key: []byte("k" + strconv.Itoa(i)), Value: v})
	}
	b, err := bld.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fixCRC recomputes the CRC of a batch after a test changed it.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[record.PosCRC:], crc32.Checksum(b[record.PosAttributes:], castagnoli))
}

// produceRaw sends one partition's records in a Produce request and
// returns the partition's response.
func produceRaw(t testing.TB, rc *rawConn, version int16, acks int16, topic string, partition int32, recs []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = acks
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: recs}}}}
	resp := rc.roundTrip(req, version).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response shape: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// dropProxy forwards TCP connections to a target and, while armed, kills a
// connection instead of passing on every dropEvery-th Produce response, so
// that the client retries a batch the broker already appended.
type dropProxy struct {
	ln        net.Listener
	target    string
	dropEvery int

	mu       sync.Mutex
	produces int
	drops    int
	maxDrops int
	conns    []net.Conn
}

func newDropProxy(t testing.TB, dropEvery, maxDrops int) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, dropEvery: dropEvery, maxDrops: maxDrops}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *dropProxy) hostPort() (string, int32) {
	host, port, _ := net.SplitHostPort(p.ln.Addr().String())
	n, _ := strconv.Atoi(port)
	return host, int32(n)
}

func (p *dropProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *dropProxy) dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops
}

func (p *dropProxy) shouldDrop() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.produces++
	if p.drops < p.maxDrops && p.produces%p.dropEvery == 0 {
		p.drops++
		return true
	}
	return false
}

func readFrame(r io.Reader) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(sz[:])
	if n > 256<<20 {
		return nil, errors.New("frame too big")
	}
	f := make([]byte, 4+n)
	copy(f, sz[:])
	_, err := io.ReadFull(r, f[4:])
	return f, err
}

func (p *dropProxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, client, server)
	p.mu.Unlock()
	var mu sync.Mutex
	keys := map[int32]int16{} // correlation id -> api key
	kill := func() { client.Close(); server.Close() }
	go func() {
		defer kill()
		for {
			f, err := readFrame(client)
			if err != nil || len(f) < 12 {
				return
			}
			mu.Lock()
			keys[int32(binary.BigEndian.Uint32(f[8:]))] = int16(binary.BigEndian.Uint16(f[4:]))
			mu.Unlock()
			if _, err := server.Write(f); err != nil {
				return
			}
		}
	}()
	defer kill()
	for {
		f, err := readFrame(server)
		if err != nil || len(f) < 8 {
			return
		}
		corr := int32(binary.BigEndian.Uint32(f[4:]))
		mu.Lock()
		key, ok := keys[corr]
		delete(keys, corr)
		mu.Unlock()
		if ok && key == 0 && p.shouldDrop() {
			return // the broker appended; the client never hears of it
		}
		if _, err := client.Write(f); err != nil {
			return
		}
	}
}

// waitFor polls cond until it holds or the timeout passes (for log lines
// written asynchronously by the server).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func logged(ts *testServer, substr string) bool { return strings.Contains(ts.logs.String(), substr) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitParked waits until the number of requests parked in b's purgatory
// now and ever satisfies cond, woken by each change, for at most 10 s.
func waitParked(t testing.TB, b *Broker, cond func(n, total int) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		n, total, changed := b.parked.count()
		if cond(n, total) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for parked requests (now %d, ever %d)", n, total)
		}
	}
}

// waitParks waits until more than before requests have ever parked in b's
// purgatory: the request sent after reading before is parked (or was
// answered after parking). It returns the new total.
func waitParks(t testing.TB, b *Broker, before int) int {
	t.Helper()
	var got int
	waitParked(t, b, func(_, total int) bool { got = total; return total > before })
	return got
}

// waitIdle waits until no request is parked in b's purgatory.
func waitIdle(t testing.TB, b *Broker) {
	t.Helper()
	waitParked(t, b, func(n, _ int) bool { return n == 0 })
}
