package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/record"
)

// The raw generator: produce requests are kmsg-encoded once per partition
// around one pre-built record batch, then re-sent with only the correlation id
// patched, as a writev of (prefix, batch, suffix), pipelined over a few TCP
// connections. Fetch responses are decoded only down to each partition's
// record bytes, whose batch headers are walked to count records and find the
// next offset; the records themselves are never decoded.
const (
	rawConns      = 4         // most TCP connections per generator
	rawDepth      = 8         // most produce requests in flight per connection
	rawMaxFrame   = 256 << 20 // largest response accepted
	rawFetchBytes = 32 << 20  // fetch max_bytes
	rawPartBytes  = 8 << 20   // fetch partition_max_bytes
	rawClientID   = "bench-raw"
)

var errRawFrame = errors.New("peers: bad response frame")

// rawConn is one Kafka connection speaking requests and responses in order.
type rawConn struct {
	c    net.Conn
	br   *bufio.Reader
	corr int32
	rbuf []byte
	wbuf []byte
}

func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// appendHeader appends a request's size placeholder and header (v1, or v2 for
// flexible requests).
func appendHeader(dst []byte, key, version int16, corr int32, flexible bool) []byte {
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(key))
	dst = binary.BigEndian.AppendUint16(dst, uint16(version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(rawClientID)))
	dst = append(dst, rawClientID...)
	if flexible {
		dst = append(dst, 0)
	}
	return dst
}

// write sends req with the next correlation id.
func (rc *rawConn) write(req kmsg.Request) (int32, error) {
	rc.corr++
	b := appendHeader(rc.wbuf[:0], req.Key(), req.GetVersion(), rc.corr, req.IsFlexible())
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	rc.wbuf = b
	_, err := rc.c.Write(b)
	return rc.corr, err
}

// readFrame reads one response and returns its body after the correlation id
// (valid until the next read), checking the id.
func (rc *rawConn) readFrame(corr int32) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(rc.br, hdr[:]); err != nil {
		return nil, err
	}
	size := int(int32(binary.BigEndian.Uint32(hdr[:4])))
	if size < 4 || size > rawMaxFrame {
		return nil, fmt.Errorf("%w: size %d", errRawFrame, size)
	}
	if got := int32(binary.BigEndian.Uint32(hdr[4:])); got != corr {
		return nil, fmt.Errorf("%w: correlation id %d, want %d", errRawFrame, got, corr)
	}
	if cap(rc.rbuf) < size-4 {
		rc.rbuf = make([]byte, size-4)
	}
	body := rc.rbuf[:size-4]
	if _, err := io.ReadFull(rc.br, body); err != nil {
		return nil, err
	}
	return body, nil
}

// roundTrip sends req and decodes its response (ApiVersions' response header
// is always v0).
func (rc *rawConn) roundTrip(req kmsg.Request) (kmsg.Response, error) {
	corr, err := rc.write(req)
	if err != nil {
		return nil, err
	}
	body, err := rc.readFrame(corr)
	if err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		body, err = skipTags(body)
		if err != nil {
			return nil, err
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, err
	}
	return resp, nil
}

// skipTags skips the tag section of a flexible response header. The
// harness never sends tags, so only an empty section is expected.
func skipTags(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no tag section", errRawFrame)
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n != 0 {
		return nil, fmt.Errorf("%w: unexpected response header tags", errRawFrame)
	}
	return b[k:], nil
}

// rawProduceConn is one pipelined produce connection: the owning worker
// writes, a reader goroutine matches responses to sends in order.
type rawProduceConn struct {
	rc      *rawConn
	pending chan rawPending // capacity rawDepth: the in-flight window
	vec     [3][]byte
	corr    int32
	done    chan struct{} // closed when the connection failed or closed
	once    sync.Once
}

func (pc *rawProduceConn) fail() { pc.once.Do(func() { close(pc.done) }) }

type rawPending struct {
	part int
	t0   int64
	corr int32
}

// rawProducer sends one pre-built batch per request, each partition's to its
// leader.
type rawProducer struct {
	srv    *kafkaServer
	w      workload
	a      *acker
	l      *sendLog
	n      int      // records per batch
	batch  []byte   // shared by every request
	prefix [][]byte // per partition: frame size, header, body up to the records
	suffix [][]byte // per partition: body after the records
	// conns[wi][li] is worker wi's connection to leader li (nil if none
	// of its partitions is led there); leader[part] is part's li.
	conns  [][]*rawProduceConn
	leader []int
	all    []*rawProduceConn // every connection
	wg     sync.WaitGroup
	// inflight counts sends not yet acknowledged (or failed).
	inflight atomic.Int64
	mu       sync.Mutex
	closed   bool
}

// newRawProducer dials up to rawConns connections to each partition
// leader (leaders[part] is its address).
func newRawProducer(srv *kafkaServer, topic string, leaders []string, w workload, a *acker, l *sendLog) (*rawProducer, error) {
	n := recordsPerBatch(w.Size)
	if w.Partitions > 1000 {
		n = max(1, n/4) // keep requests small when spreading over many partitions
	}
	batch, err := buildBatch(w, 0, n)
	if err != nil {
		return nil, err
	}
	enc, err := encodeProduce(srv, topic, w, batch)
	if err != nil {
		return nil, err
	}
	p := &rawProducer{srv: srv, w: w, a: a, l: l, n: n, batch: batch, prefix: enc.prefix, suffix: enc.suffix}
	var addrs []string
	for _, a := range leaders {
		i := slices.Index(addrs, a)
		if i < 0 {
			i = len(addrs)
			addrs = append(addrs, a)
		}
		p.leader = append(p.leader, i)
	}
	nw := min(w.Partitions, rawConns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for wi := range nw {
		p.conns = append(p.conns, make([]*rawProduceConn, len(addrs)))
		for part := wi; part < w.Partitions; part += nw {
			li := p.leader[part]
			if p.conns[wi][li] != nil {
				continue
			}
			rc, err := dialRaw(ctx, addrs[li])
			if err != nil {
				p.close()
				return nil, err
			}
			_ = rc.c.SetDeadline(time.Time{})
			pc := &rawProduceConn{rc: rc, pending: make(chan rawPending, rawDepth), done: make(chan struct{})}
			p.conns[wi][li] = pc
			p.all = append(p.all, pc)
			p.wg.Add(1)
			go p.reader(pc)
		}
	}
	return p, nil
}

// encodedProduce holds, per partition, a produce request encoded around
// batch: prefix (frame size, header with correlation id 0, body up to the
// records) and suffix (the body after them).
type encodedProduce struct{ prefix, suffix [][]byte }

// encodeProduce encodes one produce request per partition of topic carrying
// batch, with kmsg at the server's produce version.
func encodeProduce(srv *kafkaServer, topic string, w workload, batch []byte) (encodedProduce, error) {
	var enc encodedProduce
	acks := int16(1)
	if w.Acks == "all" {
		acks = -1
	}
	for part := range w.Partitions {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(srv.produceV)
		req.Acks = acks
		req.TimeoutMillis = 30000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = int32(part)
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		full := appendHeader(nil, req.Key(), req.GetVersion(), 0, req.IsFlexible())
		full = req.AppendTo(full)
		binary.BigEndian.PutUint32(full, uint32(len(full)-4))
		i := bytes.LastIndex(full, batch)
		if i < 0 {
			return enc, errors.New("peers: raw: batch not found in the encoded request")
		}
		enc.prefix = append(enc.prefix, full[:i:i])
		enc.suffix = append(enc.suffix, full[i+len(batch):])
	}
	return enc, nil
}

func (p *rawProducer) workers() int        { return len(p.conns) }
func (p *rawProducer) recordsPerSend() int { return p.n }

// corrOffset is where the correlation id sits in a request frame.
const corrOffset = 8

func (p *rawProducer) send(wi, part int, t0 int64) error {
	pc := p.conns[wi][p.leader[part]]
	select {
	case <-pc.done:
		return errors.New("peers: raw: connection closed")
	default:
	}
	if p.l != nil {
		p.l.sent(part, t0, p.n)
	}
	pc.corr++
	p.inflight.Add(1)
	select {
	case pc.pending <- rawPending{part: part, t0: t0, corr: pc.corr}:
	case <-pc.done:
		p.inflight.Add(-1)
		return errors.New("peers: raw: connection closed")
	}
	pre := p.prefix[part]
	binary.BigEndian.PutUint32(pre[corrOffset:], uint32(pc.corr))
	pc.vec = [3][]byte{pre, p.batch, p.suffix[part]}
	bufs := net.Buffers(pc.vec[:])
	_, err := bufs.WriteTo(pc.rc.c)
	return err
}

// reader matches produce responses to sends.
func (p *rawProducer) reader(pc *rawProduceConn) {
	defer p.wg.Done()
	defer pc.fail()
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(p.srv.produceV)
	flexible := resp.IsFlexible()
	for pend := range pc.pending {
		body, err := pc.rc.readFrame(pend.corr)
		if err == nil && flexible {
			body, err = skipTags(body)
		}
		if err == nil {
			resp.Default()
			resp.SetVersion(p.srv.produceV)
			err = resp.UnsafeReadFrom(body)
		}
		if err == nil {
			for _, t := range resp.Topics {
				for _, pr := range t.Partitions {
					if e := errCode(pr.ErrorCode); e != nil && err == nil {
						err = e
					}
				}
			}
		}
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if !closed {
				p.a.ack(pend.part, pend.t0, p.n, fmt.Errorf("peers: raw produce: %w", err))
			}
			p.inflight.Add(-1)
			pc.fail()
			_ = pc.rc.c.Close()
			for range pc.pending { // drain until close so that senders never block
				p.inflight.Add(-1)
			}
			return
		}
		p.a.ack(pend.part, pend.t0, p.n, nil)
		p.inflight.Add(-1)
	}
}

func (p *rawProducer) flush(ctx context.Context) error {
	for p.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}

func (p *rawProducer) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for _, pc := range p.all {
		close(pc.pending)
		_ = pc.rc.c.Close()
	}
	p.wg.Wait()
	return nil
}

// rawConsumer fetches every partition from offset 0 from its leader over a
// few connections (partition p on connection p % conns to its leader), one
// fetch in flight per connection.
type rawConsumer struct {
	srv        *kafkaServer
	topic      string
	leaders    []string // per partition, its leader's address
	partitions int
	pastHW     atomic.Int64 // fetch responses holding batches past the high watermark
}

func (c *rawConsumer) close() error { return nil }

// warning reports broker misbehaviour seen while consuming.
func (c *rawConsumer) warning() string {
	if n := c.pastHW.Load(); n > 0 {
		return fmt.Sprintf("broker bug: %d fetch responses held batches past the high watermark (not counted until below it)", n)
	}
	return ""
}

// batchesBelow cuts b after the last whole batch that ends below hw.
func batchesBelow(b []byte, hw int64) []byte {
	n := 0
	for rest := b; ; {
		recs, next := countBatches(rest[:min(len(rest), batchLen(rest))])
		if recs == 0 || next > hw {
			return b[:n]
		}
		n += batchLen(rest)
		rest = b[n:]
	}
}

// batchLen is the size of the batch at the start of b, or 0 if b does not
// hold a whole one.
func batchLen(b []byte) int {
	if len(b) < record.HeaderSize {
		return 0
	}
	size := record.LogOverhead + int(int32(binary.BigEndian.Uint32(b[record.PosBatchLength:])))
	if size < record.HeaderSize || size > len(b) {
		return 0
	}
	return size
}

func (c *rawConsumer) run(ctx context.Context, got func(part, recs int)) error {
	nc := min(c.partitions, rawConns)
	type conn struct {
		addr  string
		parts []int32
	}
	var conns []conn
	for ci := range nc {
		var mine []conn
		for p := ci; p < c.partitions; p += nc {
			i := slices.IndexFunc(mine, func(cn conn) bool { return cn.addr == c.leaders[p] })
			if i < 0 {
				i = len(mine)
				mine = append(mine, conn{addr: c.leaders[p]})
			}
			mine[i].parts = append(mine[i].parts, int32(p))
		}
		conns = append(conns, mine...)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, cn := range conns {
		wg.Go(func() { errs[i] = c.fetchLoop(ctx, cn.addr, cn.parts, got) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// fetchLoop fetches the partitions mine from the broker at addr.
func (c *rawConsumer) fetchLoop(ctx context.Context, addr string, mine []int32, got func(part, recs int)) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rc, err := dialRaw(dctx, addr)
	cancel()
	if err != nil {
		return err
	}
	_ = rc.c.SetDeadline(time.Time{})
	defer rc.c.Close()
	stop := context.AfterFunc(ctx, func() { _ = rc.c.SetDeadline(time.Now()) })
	defer stop()

	offsets := make(map[int32]int64, len(mine))
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(c.srv.fetchV)
	req.ReplicaID = -1
	req.MaxWaitMillis = 100
	req.MinBytes = 1
	req.MaxBytes = rawFetchBytes
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = c.topic
	for _, p := range mine {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = p
		fp.PartitionMaxBytes = rawPartBytes
		rt.Partitions = append(rt.Partitions, fp)
	}
	req.Topics = []kmsg.FetchRequestTopic{rt}
	resp := kmsg.NewPtrFetchResponse()
	for ctx.Err() == nil {
		for i := range req.Topics[0].Partitions {
			fp := &req.Topics[0].Partitions[i]
			fp.FetchOffset = offsets[fp.Partition]
		}
		corr, err := rc.write(req)
		if err != nil {
			return err
		}
		body, err := rc.readFrame(corr)
		if err == nil && req.IsFlexible() {
			body, err = skipTags(body)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		resp.Default()
		resp.SetVersion(c.srv.fetchV)
		if err := resp.UnsafeReadFrom(body); err != nil {
			return fmt.Errorf("peers: raw fetch response: %w", err)
		}
		if err := errCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("peers: raw fetch: %w", err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := errCode(p.ErrorCode); err != nil {
					return fmt.Errorf("peers: raw fetch partition %d at offset %d (high watermark %d, log start %d): %w",
						p.Partition, offsets[p.Partition], p.HighWatermark, p.LogStartOffset, err)
				}
				b := p.RecordBatches
				if _, next := countBatches(b); next > p.HighWatermark {
					// Records past the high watermark are not committed: a
					// consumer must not see them. Count up to it and note it.
					c.pastHW.Add(1)
					b = batchesBelow(b, p.HighWatermark)
				}
				recs, next := countBatches(b)
				if recs > 0 && next > offsets[p.Partition] {
					offsets[p.Partition] = next
					got(int(p.Partition), recs)
				}
			}
		}
	}
	return nil
}
