package broker

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// managedServer is a broker whose engine leaves the high watermark to the
// caller (as the replica layer will move it), so tests hold records
// uncommitted.
func managedServer(t testing.TB, topic string, partitions int32) *testServer {
	t.Helper()
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore(), ManagedHighWatermarks: true}})
	if err := ts.eng.CreateTopic(topic, engine.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	return ts
}

func fetchOne(t testing.TB, rc *rawConn, req *kmsg.FetchRequest, v int16) kmsg.FetchResponseTopicPartition {
	t.Helper()
	resp := rc.roundTrip(req, v).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch response shape: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

func listOffset(t testing.TB, rc *rawConn, v int16, replica int32, topic string, partition int32, ts int64, epoch int32) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = replica
	req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{
		{Partition: partition, Timestamp: ts, CurrentLeaderEpoch: epoch}}}}
	return rc.roundTrip(req, v).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
}

// Consumers read and are told only what is committed; followers read to the
// log end. Long polls wait for what their reader may see.
func TestFetchHighWatermark(t *testing.T) {
	ts := managedServer(t, "hw", 1)
	p, _ := ts.eng.Partition("hw", 0)
	appendN(t, p, 3, 1, 20) // offsets 0, 1, 2; high watermark 0
	all := storedBytes(t, p, 0)
	batch := len(all) / 3
	rc := dialRaw(t, ts.addr)

	consumer := func(offset int64, maxWait int32) *kmsg.FetchRequest {
		return fetchReq("hw", 0, offset, maxWait, 1, 1<<20, 1<<20)
	}
	follower := func(offset int64, maxWait int32) *kmsg.FetchRequest {
		r := consumer(offset, maxWait)
		r.ReplicaID = 1
		return r
	}
	for v := int16(4); v <= 12; v++ {
		fp := fetchOne(t, rc, consumer(0, 0), v)
		if fp.ErrorCode != 0 || fp.HighWatermark != 0 || fp.LastStableOffset != 0 || len(fp.RecordBatches) != 0 {
			t.Fatalf("v%d consumer, nothing committed: %+v", v, fp)
		}
		fp = fetchOne(t, rc, follower(0, 0), v)
		if fp.ErrorCode != 0 || fp.HighWatermark != 0 || !bytes.Equal(fp.RecordBatches, all) {
			t.Fatalf("v%d follower: hw %d, %d bytes of %d", v, fp.HighWatermark, len(fp.RecordBatches), len(all))
		}
	}
	if got := p.SetHighWatermark(2); got != 2 {
		t.Fatalf("high watermark %d", got)
	}
	fp := fetchOne(t, rc, consumer(0, 0), 12)
	if fp.HighWatermark != 2 || fp.LastStableOffset != 2 || fp.LogStartOffset != 0 || !bytes.Equal(fp.RecordBatches, all[:2*batch]) {
		t.Fatalf("consumer after hw 2: hw %d lso %d, %d bytes (batch %d)", fp.HighWatermark, fp.LastStableOffset, len(fp.RecordBatches), batch)
	}
	// Between the high watermark and the log end: nothing yet, no error.
	if fp := fetchOne(t, rc, consumer(3, 0), 12); fp.ErrorCode != 0 || len(fp.RecordBatches) != 0 {
		t.Fatalf("consumer at the log end: %+v", fp)
	}
	if fp := fetchOne(t, rc, consumer(4, 0), 12); fp.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("consumer past the log end: %+v", fp)
	}
	// ListOffsets latest: the high watermark for consumers, the log end for
	// followers.
	for v := int16(1); v <= 6; v++ {
		if o := listOffset(t, rc, v, -1, "hw", 0, -1, -1); o.ErrorCode != 0 || o.Offset != 2 {
			t.Fatalf("v%d consumer latest: %+v", v, o)
		}
		if o := listOffset(t, rc, v, 1, "hw", 0, -1, -1); o.ErrorCode != 0 || o.Offset != 3 {
			t.Fatalf("v%d follower latest: %+v", v, o)
		}
	}
	// A by-timestamp lookup finds no uncommitted record.
	if o := listOffset(t, rc, 6, -1, "hw", 0, 0, -1); o.Offset != 0 {
		t.Fatalf("timestamp 0: %+v", o)
	}

	// A consumer's long poll at the high watermark is not woken by an
	// append alone, only once the high watermark covers it.
	req := consumer(2, 20000)
	before := ts.b.parked.parks()
	corr := rc.send(req, 12)
	waitParks(t, ts.b, before)
	appendN(t, p, 1, 1, 20) // offset 3
	expectNoResponse(t, rc, 100*time.Millisecond)
	p.SetHighWatermark(4)
	fp = rc.read(req, 12, corr).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if fp.HighWatermark != 4 || !bytes.Equal(fp.RecordBatches, storedBytes(t, p, 2)) {
		t.Fatalf("woken consumer: hw %d, %d bytes", fp.HighWatermark, len(fp.RecordBatches))
	}
	// A follower's long poll at the log end is woken by the append.
	req = follower(4, 20000)
	before = ts.b.parked.parks()
	corr = rc.send(req, 12)
	waitParks(t, ts.b, before)
	appendN(t, p, 1, 1, 20) // offset 4
	fp = rc.read(req, 12, corr).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if fp.HighWatermark != 4 || !bytes.Equal(fp.RecordBatches, storedBytes(t, p, 4)) {
		t.Fatalf("woken follower: hw %d, %d bytes", fp.HighWatermark, len(fp.RecordBatches))
	}
}

func produceReq(acks int16, timeout int32, topic string, partition int32, recs []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, timeout
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: recs}}}}
	return req
}

func producePart(t testing.TB, resp kmsg.Response) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	r := resp.(*kmsg.ProduceResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response shape: %+v", r)
	}
	return r.Topics[0].Partitions[0]
}

// waitEnd waits, woken by the partition's changes, until its log end
// reaches end.
func waitEnd(t testing.TB, p *engine.Partition, end int64) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		ch := p.Changed()
		if p.EndOffset() >= end {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("log end %d, want %d", p.EndOffset(), end)
		}
	}
}

// An acks=all produce waits for the high watermark, deferred: the
// connection's later requests are handled meanwhile, and the responses
// still come in request order.
func TestProduceAcksAllWaitsForHighWatermark(t *testing.T) {
	ts := managedServer(t, "all", 2)
	p0, _ := ts.eng.Partition("all", 0)
	p1, _ := ts.eng.Partition("all", 1)
	rc := dialRaw(t, ts.addr)

	first := produceReq(-1, 20000, "all", 0, makeBatch(t, batchOpts{nrecords: 3}))
	before := ts.b.parked.parks()
	c1 := rc.send(first, 9)
	waitParks(t, ts.b, before)
	// A later request on the same connection is handled while the first
	// waits: its batch lands.
	second := produceReq(1, 20000, "all", 1, makeBatch(t, batchOpts{}))
	c2 := rc.send(second, 9)
	waitEnd(t, p1, 1)
	expectNoResponse(t, rc, 50*time.Millisecond) // the first is still waiting, and the second waits behind it
	p0.SetHighWatermark(2)                       // not yet past the batch (offsets 0-2)
	expectNoResponse(t, rc, 50*time.Millisecond)
	p0.SetHighWatermark(3)
	if r := producePart(t, rc.read(first, 9, c1)); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("acks=all: %+v", r)
	}
	if r := producePart(t, rc.read(second, 9, c2)); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("acks=1 behind it: %+v", r)
	}

	// Not committed within the timeout: REQUEST_TIMED_OUT, the offset kept
	// (the batch is in the log).
	start := time.Now()
	r := producePart(t, rc.roundTrip(produceReq(-1, 100, "all", 0, makeBatch(t, batchOpts{})), 9))
	if r.ErrorCode != kerr.RequestTimedOut.Code || r.BaseOffset != 3 || r.ErrorMessage == nil {
		t.Fatalf("timed out: %+v", r)
	}
	if el := time.Since(start); el < 90*time.Millisecond || el > 5*time.Second {
		t.Fatalf("timeout 100 ms answered after %v", el)
	}
	p0.SetHighWatermark(4)

	// The batch is lost to a truncation while waiting: NOT_LEADER_OR_FOLLOWER.
	lost := produceReq(-1, 20000, "all", 0, makeBatch(t, batchOpts{}))
	before = ts.b.parked.parks()
	c := rc.send(lost, 9)
	waitParks(t, ts.b, before)
	if _, err := p0.TruncateTo(4, false); err != nil {
		t.Fatal(err)
	}
	if r := producePart(t, rc.read(lost, 9, c)); r.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("truncated while waiting: %+v", r)
	}

	// A mix: the committed partition at once, the other when committed.
	mixed := produceReq(-1, 20000, "all", 0, makeBatch(t, batchOpts{}))
	mixed.Topics[0].Partitions = append(mixed.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: 1, Records: makeBatch(t, batchOpts{})})
	before = ts.b.parked.parks()
	c = rc.send(mixed, 9)
	waitParks(t, ts.b, before)
	p1.SetHighWatermark(2)
	expectNoResponse(t, rc, 50*time.Millisecond)
	p0.SetHighWatermark(5)
	resp := rc.read(mixed, 9, c).(*kmsg.ProduceResponse)
	if ps := resp.Topics[0].Partitions; ps[0].ErrorCode != 0 || ps[0].BaseOffset != 4 || ps[1].ErrorCode != 0 || ps[1].BaseOffset != 1 {
		t.Fatalf("two partitions: %+v", ps)
	}

	// Close answers a waiting produce at once with a retriable error.
	waiting := produceReq(-1, 60000, "all", 0, makeBatch(t, batchOpts{}))
	before = ts.b.parked.parks()
	c = rc.send(waiting, 9)
	waitParks(t, ts.b, before)
	start = time.Now()
	ts.b.Close()
	if r := producePart(t, rc.read(waiting, 9, c)); r.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("at Close: %+v", r)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Close answered after %v", el)
	}
}

// A connection that dies ends its parked produce; nothing leaks.
func TestProduceAcksAllConnectionDies(t *testing.T) {
	ts := managedServer(t, "die", 1)
	rc := dialRaw(t, ts.addr)
	before := ts.b.parked.parks()
	rc.send(produceReq(-1, 60000, "die", 0, makeBatch(t, batchOpts{})), 9)
	waitParks(t, ts.b, before)
	rc.c.Close()
	waitIdle(t, ts.b)
}

// follow stands in for followers: it moves the high watermark of p to the
// log end after every append, until ctx ends.
func follow(ctx context.Context, p *engine.Partition) {
	for {
		ch := p.Changed()
		p.SetHighWatermark(p.EndOffset())
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// followParked is follow for tests that must see produces wait: it moves
// the high watermark of p to the log end each time a request is parked.
func followParked(ctx context.Context, b *Broker, p *engine.Partition) {
	for {
		n, _, changed := b.parked.count()
		if n > 0 {
			p.SetHighWatermark(p.EndOffset())
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// franz-go's idempotent acks=all producer against a high watermark that
// something else moves.
func TestProduceAcksAllKgo(t *testing.T) {
	ts := managedServer(t, "kall", 1)
	p, _ := ts.eng.Partition("kall", 0)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); followParked(ctx, ts.b, p) }()
	defer func() { cancel(); wg.Wait() }()
	cl := newClient(t, ts.addr, kgo.DefaultProduceTopic("kall"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	const n = 500
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte{byte(i)}}
	}
	produceAll(t, cl, recs...)
	if hw := p.HighWatermark(); hw != n {
		t.Fatalf("high watermark %d after %d acknowledged records", hw, n)
	}
	if ts.b.parked.parks() == 0 {
		t.Fatal("no produce waited: the deferred path was not exercised")
	}
}
