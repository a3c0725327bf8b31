package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

// appendN appends n batches of per records of size-byte values to p and
// returns the bytes of all batches as stored.
func appendN(t testing.TB, p *engine.Partition, n, per, size int) {
	t.Helper()
	for i := range n {
		recs := make([]record.Record, per)
		for j := range recs {
			recs[j] = record.Record{Value: bytes.Repeat([]byte{byte('a' + (i+j)%26)}, size)}
		}
		if _, err := p.AppendRecords(0, recs...); err != nil {
			t.Fatal(err)
		}
	}
}

// storedBytes returns the partition's batches from offset to the log end
// (committed or not), as stored.
func storedBytes(t testing.TB, p *engine.Partition, offset int64) []byte {
	t.Helper()
	var out []byte
	for offset < p.EndOffset() {
		c, err := p.ReadReplica(offset, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		b := c.Bytes
		if c.File != nil {
			b = make([]byte, c.Len)
			if _, err := c.File.ReadAt(b, c.Pos); err != nil {
				t.Fatal(err)
			}
		}
		c.Release()
		out = append(out, b...)
		was := offset
		for rest := b; len(rest) > 0; {
			batch, r, err := record.Split(rest)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := record.ParseHeader(batch)
			offset = h.LastOffset() + 1
			rest = r
		}
		if offset <= was {
			t.Fatalf("no batch at offset %d", was)
		}
	}
	return out
}

func fetchReq(topic string, partition int32, offset int64, maxWait, minBytes, maxBytes, partMax int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWait, minBytes, maxBytes
	req.SessionEpoch = -1
	req.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{
		{Partition: partition, FetchOffset: offset, PartitionMaxBytes: partMax, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, LogStartOffset: -1},
	}}}
	return req
}

func TestFetchVersions(t *testing.T) {
	for _, store := range []string{"disk", "memory"} {
		t.Run(store, func(t *testing.T) {
			var opts engine.Options
			if store == "memory" {
				opts.Store = engine.NewMemoryStore()
			}
			ts := startServer(t, serverOpts{engine: opts})
			if err := ts.eng.CreateTopic("f", engine.TopicConfig{Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			p, _ := ts.eng.Partition("f", 0)
			appendN(t, p, 3, 4, 50)
			want := storedBytes(t, p, 0)
			rc := dialRaw(t, ts.addr)
			for v := int16(4); v <= 12; v++ {
				for _, iso := range []int8{0, 1} {
					req := fetchReq("f", 0, 5, 0, 1, 1<<20, 1<<20)
					req.IsolationLevel = iso
					req.Topics[0].Partitions = append(req.Topics[0].Partitions,
						kmsg.FetchRequestTopicPartition{Partition: 1, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1})
					req.Topics = append(req.Topics, kmsg.FetchRequestTopic{Topic: "nope", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0}}})
					resp := rc.roundTrip(req, v).(*kmsg.FetchResponse)
					if resp.ErrorCode != 0 || resp.SessionID != 0 || len(resp.Topics) != 2 {
						t.Fatalf("v%d: %+v", v, resp)
					}
					fp := resp.Topics[0].Partitions[0]
					// Offset 5 is in the second batch: it is sent from its start.
					if fp.ErrorCode != 0 || fp.HighWatermark != 12 || fp.LastStableOffset != 12 {
						t.Fatalf("v%d: partition %+v", v, fp)
					}
					if !bytes.Equal(fp.RecordBatches, want[len(want)*1/3:]) {
						t.Fatalf("v%d: %d record bytes, want the last two batches (%d)", v, len(fp.RecordBatches), len(want)*2/3)
					}
					if v >= 5 && fp.LogStartOffset != 0 {
						t.Errorf("v%d: log start %d", v, fp.LogStartOffset)
					}
					if v >= 11 && fp.PreferredReadReplica != -1 {
						t.Errorf("v%d: preferred read replica %d", v, fp.PreferredReadReplica)
					}
					if (fp.AbortedTransactions == nil) != (iso == 0) {
						t.Errorf("v%d isolation %d: aborted transactions %v", v, iso, fp.AbortedTransactions)
					}
					if e := resp.Topics[0].Partitions[1]; e.ErrorCode != 0 || e.HighWatermark != 0 || len(e.RecordBatches) != 0 {
						t.Errorf("v%d empty partition: %+v", v, e)
					}
					if e := resp.Topics[1].Partitions[0]; e.ErrorCode != kerr.UnknownTopicOrPartition.Code || e.HighWatermark != -1 {
						t.Errorf("v%d unknown topic: %+v", v, e)
					}
				}
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("f", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := ts.eng.Partition("f", 0)
	appendN(t, p, 2, 1, 10)
	rc := dialRaw(t, ts.addr)
	code := func(req *kmsg.FetchRequest, v int16) int16 {
		resp := rc.roundTrip(req, v).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	// Errors answer at once even with a long max wait.
	start := time.Now()
	if c := code(fetchReq("f", 0, 3, 10000, 1, 1<<20, 1<<20), 12); c != kerr.OffsetOutOfRange.Code {
		t.Errorf("offset past the end: %d", c)
	}
	if c := code(fetchReq("f", 0, -1, 10000, 1, 1<<20, 1<<20), 12); c != kerr.OffsetOutOfRange.Code {
		t.Errorf("negative offset: %d", c)
	}
	if c := code(fetchReq("f", 5, 0, 10000, 1, 1<<20, 1<<20), 12); c != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: %d", c)
	}
	epoch := fetchReq("f", 0, 0, 10000, 1, 1<<20, 1<<20)
	epoch.Topics[0].Partitions[0].CurrentLeaderEpoch = 5
	if c := code(epoch, 12); c != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("future leader epoch: %d", c)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("error fetches waited: %v", time.Since(start))
	}
	sess := fetchReq("f", 0, 0, 0, 1, 1<<20, 1<<20)
	sess.SessionID = 42
	resp := rc.roundTrip(sess, 12).(*kmsg.FetchResponse)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || len(resp.Topics) != 0 {
		t.Errorf("stale session: %+v", resp)
	}
}

func TestFetchByteLimits(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("f", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p0, _ := ts.eng.Partition("f", 0)
	p1, _ := ts.eng.Partition("f", 1)
	appendN(t, p0, 4, 1, 1000)
	appendN(t, p1, 4, 1, 1000)
	b0, b1 := storedBytes(t, p0, 0), storedBytes(t, p1, 0)
	batch := len(b0) / 4
	rc := dialRaw(t, ts.addr)
	both := func(maxBytes, partMax int32) (r0, r1 []byte) {
		req := fetchReq("f", 0, 0, 0, 1, maxBytes, partMax)
		req.Topics[0].Partitions = append(req.Topics[0].Partitions,
			kmsg.FetchRequestTopicPartition{Partition: 1, PartitionMaxBytes: partMax, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1})
		resp := rc.roundTrip(req, 12).(*kmsg.FetchResponse)
		ps := resp.Topics[0].Partitions
		return ps[0].RecordBatches, ps[1].RecordBatches
	}
	// Partition limit: two whole batches and the start of the third.
	r0, r1 := both(1<<20, int32(2*batch+100))
	if len(r0) != 2*batch+100 || !bytes.Equal(r0, b0[:len(r0)]) || !bytes.Equal(r1, b1[:len(r1)]) {
		t.Errorf("partition limit: %d and %d bytes (batch %d)", len(r0), len(r1), batch)
	}
	// A limit below one batch: the first partition's first batch comes
	// whole, the second partition gets nothing.
	r0, r1 = both(10, 10)
	if !bytes.Equal(r0, b0[:batch]) || len(r1) != 0 {
		t.Errorf("tiny limits: %d and %d bytes (batch %d)", len(r0), len(r1), batch)
	}
	// The response limit cuts across partitions.
	r0, r1 = both(int32(batch*5/2), 1<<20)
	if len(r0) != batch*5/2 || !bytes.Equal(r0, b0[:len(r0)]) || len(r1) != 0 {
		t.Errorf("response limit %d: got %d + %d bytes", batch*5/2, len(r0), len(r1))
	}
	// What the first partition leaves goes to the second.
	r0, r1 = both(int32(batch*7), int32(batch*3))
	if len(r0) != 3*batch || len(r1) != 3*batch || !bytes.Equal(r1, b1[:len(r1)]) {
		t.Errorf("shared limit: got %d + %d bytes (batch %d)", len(r0), len(r1), batch)
	}
	r0, r1 = both(int32(batch*5), int32(batch*3))
	if len(r0) != 3*batch || len(r1) != 2*batch {
		t.Errorf("shared limit: got %d + %d bytes (batch %d)", len(r0), len(r1), batch)
	}
}

// expectNoResponse checks that nothing arrives on rc for d.
func expectNoResponse(t *testing.T, rc *rawConn, d time.Duration) {
	t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(d))
	if _, err := rc.br.Peek(1); err == nil {
		t.Fatal("response arrived early")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatal(err)
	}
}

func TestFetchLongPoll(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("lp", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p, _ := ts.eng.Partition("lp", 1)
	rc := dialRaw(t, ts.addr)

	// Woken by an append.
	req := fetchReq("lp", 1, 0, 20000, 1, 1<<20, 1<<20)
	before := ts.b.parked.parks()
	corr := rc.send(req, 12)
	waitParks(t, ts.b, before)
	appendN(t, p, 1, 1, 10)
	woke := time.Now()
	resp := rc.read(req, 12, corr).(*kmsg.FetchResponse)
	t.Logf("raw fetch woke %v after the append", time.Since(woke))
	if fp := resp.Topics[0].Partitions[0]; len(fp.RecordBatches) == 0 || fp.HighWatermark != 1 {
		t.Fatalf("woken fetch: %+v", fp)
	}

	// min_bytes above one batch: waits for the second.
	one := len(storedBytes(t, p, 0))
	req = fetchReq("lp", 1, 1, 20000, int32(one+1), 1<<20, 1<<20)
	corr = rc.send(req, 11)
	appendN(t, p, 1, 1, 10)
	expectNoResponse(t, rc, 100*time.Millisecond)
	appendN(t, p, 1, 1, 10)
	resp = rc.read(req, 11, corr).(*kmsg.FetchResponse)
	if fp := resp.Topics[0].Partitions[0]; len(fp.RecordBatches) != 2*one {
		t.Fatalf("min bytes fetch: %d bytes, want %d", len(fp.RecordBatches), 2*one)
	}

	// max_wait_ms ends the wait with what there is.
	start := time.Now()
	resp = rc.roundTrip(fetchReq("lp", 0, 0, 150, 1, 1<<20, 1<<20), 12).(*kmsg.FetchResponse)
	if el := time.Since(start); el < 140*time.Millisecond || el > 3*time.Second {
		t.Errorf("max wait 150 ms took %v", el)
	}
	if fp := resp.Topics[0].Partitions[0]; fp.ErrorCode != 0 || len(fp.RecordBatches) != 0 {
		t.Errorf("expired fetch: %+v", fp)
	}

	// Close ends parked fetches at once.
	req = fetchReq("lp", 0, 0, 60000, 1, 1<<20, 1<<20)
	before = ts.b.parked.parks()
	corr = rc.send(req, 12)
	waitParks(t, ts.b, before)
	start = time.Now()
	ts.b.Close()
	rc.read(req, 12, corr)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("fetch returned %v after Close", el)
	}
	// After Close, fetches do not wait at all.
	start = time.Now()
	rc.roundTrip(fetchReq("lp", 0, 0, 60000, 1, 1<<20, 1<<20), 12)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("fetch after Close waited %v", el)
	}
}

// A parked fetch ends when its context does (the connection died).
func TestFetchContextCancel(t *testing.T) {
	eng, err := engine.Open(t.TempDir(), engine.Options{Store: engine.NewMemoryStore(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateTopic("c", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	b := New(eng, Config{Logger: discardLogger()})
	defer b.Close()
	req := fetchReq("c", 0, 0, 60000, 1, 1<<20, 1<<20)
	req.SetVersion(12)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := b.Handle(ctx, &netio.Request{APIKey: 1, APIVersion: 12, Flexible: true, Body: req.AppendTo(nil), Conn: &netio.ConnInfo{}})
	if resp.Deferred == (netio.Deferred{}) {
		t.Fatalf("an empty fetch with max wait 60 s was not deferred: %+v", resp)
	}
	waitParks(t, b, 0)
	start := time.Now()
	cancel()
	waitIdle(t, b)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("the parked fetch ended %v after its context", el)
	}
}

// The connection dying ends a parked fetch: it is answered (and its
// response dropped) at once, not when max_wait_ms ends.
func TestFetchConnectionDies(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	if err := ts.eng.CreateTopic("c", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	before := ts.b.parked.parks()
	rc.send(fetchReq("c", 0, 0, 60000, 1, 1<<20, 1<<20), 12)
	waitParks(t, ts.b, before)
	rc.c.Close()
	waitIdle(t, ts.b)
}

// A fetch of more partitions than one select can watch is still woken by
// an append to the last of them.
func TestFetchWakesAcrossManyPartitions(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	const parts = 2*maxSelectCases + 100
	if err := ts.eng.CreateTopic("many", engine.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	req := fetchReq("many", 0, 0, 20000, 1, 1<<20, 1<<20)
	for i := int32(1); i < parts; i++ {
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.FetchRequestTopicPartition{Partition: i, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1})
	}
	rc := dialRaw(t, ts.addr)
	for _, target := range []int32{parts - 1, 3} {
		before := ts.b.parked.parks()
		corr := rc.send(req, 12)
		waitParks(t, ts.b, before)
		p, _ := ts.eng.Partition("many", target)
		appendN(t, p, 1, 1, 10)
		start := time.Now()
		resp := rc.read(req, 12, corr).(*kmsg.FetchResponse)
		el := time.Since(start)
		t.Logf("%d-partition fetch answered %v after an append to partition %d", parts, el, target)
		if el > 5*time.Second {
			t.Errorf("woke %v after the append", el)
		}
		if len(resp.Topics[0].Partitions[target].RecordBatches) == 0 {
			t.Fatalf("partition %d: no records", target)
		}
		req.Topics[0].Partitions[target].FetchOffset = 1
	}
}

// A consumer parked on an empty partition gets a new record within a few
// milliseconds of its append.
func TestLongPollLatencyKgo(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "lat", 1, nil)
	p, err := ts.eng.Partition("lat", 0)
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, ts.addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"lat": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(10*time.Second))
	ctx := ctx10s(t)
	var worst time.Duration
	parks := 0
	for i := range 5 {
		got := make(chan time.Time, 1)
		go func() {
			fs := cl.PollFetches(ctx)
			if fs.NumRecords() != 1 {
				t.Errorf("round %d: %d records, errors %v", i, fs.NumRecords(), fs.Errors())
			}
			got <- time.Now()
		}()
		// The consumer's next fetch waits.
		parks = waitParks(t, ts.b, parks)
		start := time.Now()
		if _, err := p.AppendRecords(0, record.Record{Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
		lat := (<-got).Sub(start)
		worst = max(worst, lat)
		t.Logf("round %d: record delivered %v after its append", i, lat)
	}
	if worst > 500*time.Millisecond {
		t.Fatalf("long-poll latency %v, want < 500ms", worst)
	}
}

// BenchmarkConsume measures franz-go consuming 1 KiB records over loopback
// from a disk-backed partition (sendfile).
func BenchmarkConsume(b *testing.B) {
	ts := startServer(b, serverOpts{})
	if err := ts.eng.CreateTopic("c", engine.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	p, _ := ts.eng.Partition("c", 0)
	const per = 100
	appendN(b, p, (b.N+per-1)/per, per, 1024)
	cl := newClient(b, ts.addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"c": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(16<<20))
	ctx := context.Background()
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			b.Fatal(err)
		}
		n += fs.NumRecords()
	}
}

// BenchmarkFetchRaw measures the broker's fetch path alone: the same 1 MiB
// fetch of 1 KiB records over and over, read off the socket into a reused
// buffer and discarded.
func BenchmarkFetchRaw(b *testing.B) {
	for _, store := range []string{"disk", "memory"} {
		b.Run(store, func(b *testing.B) {
			var opts engine.Options
			if store == "memory" {
				opts.Store = engine.NewMemoryStore()
			}
			ts := startServer(b, serverOpts{engine: opts})
			if err := ts.eng.CreateTopic("c", engine.TopicConfig{}); err != nil {
				b.Fatal(err)
			}
			p, _ := ts.eng.Partition("c", 0)
			appendN(b, p, 20, 100, 1024) // ~2 MiB
			rc := dialRaw(b, ts.addr)
			req := fetchReq("c", 0, 0, 0, 1, 1<<20, 1<<20)
			req.SetVersion(12)
			body := req.AppendTo(nil)
			buf := make([]byte, 2<<20)
			var total int64
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				rc.sendBytes(1, 12, body)
				if _, err := io.ReadFull(rc.br, buf[:4]); err != nil {
					b.Fatal(err)
				}
				n := int(binary.BigEndian.Uint32(buf))
				if n > len(buf) {
					b.Fatalf("response of %d bytes", n)
				}
				if _, err := io.ReadFull(rc.br, buf[:n]); err != nil {
					b.Fatal(err)
				}
				total += int64(n)
			}
			b.SetBytes(total / int64(b.N))
		})
	}
}
