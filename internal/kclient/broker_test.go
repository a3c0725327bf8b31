package kclient_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/internal/kclient"
	"github.com/easel-io/easel/record"
)

// brokerVersions asks the broker, through c itself, which versions it
// serves.
func brokerVersions(t *testing.T, c *kclient.Client, addr string) map[int16][2]int16 {
	t.Helper()
	resp, err := c.Request(testCtx(t), addr, kmsg.NewPtrApiVersionsRequest())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int16][2]int16{}
	for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
		out[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	return out
}

// checkVersion fails the test unless req went out at the highest version
// both kmsg and the broker support.
func checkVersion(t *testing.T, served map[int16][2]int16, req kmsg.Request) {
	t.Helper()
	want := min(req.MaxVersion(), served[req.Key()][1])
	if got := req.GetVersion(); got != want {
		t.Errorf("%s sent at v%d, want v%d (kmsg max %d, broker serves %v)",
			kmsg.NameForKey(req.Key()), got, want, req.MaxVersion(), served[req.Key()])
	}
}

func produceReq(topic string, acks int16, values ...string) *kmsg.ProduceRequest {
	b := record.NewBuilder(record.BuilderOptions{})
	for _, v := range values {
		b.Add(record.Record{Timestamp: time.Now().UnixMilli(), Value: []byte(v)})
	}
	batch, err := b.AppendTo(nil)
	if err != nil {
		panic(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = acks
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = 0
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func fetchReq(topic string, offset int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 2000
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = 0
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// fetchValues returns the record values of a one-partition Fetch response.
func fetchValues(t *testing.T, resp kmsg.Response) []string {
	t.Helper()
	f := resp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(f.ErrorCode); err != nil {
		t.Fatal(err)
	}
	if len(f.Topics) != 1 || len(f.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch response %+v", f.Topics)
	}
	p := f.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatal(err)
	}
	var vals []string
	rest := p.RecordBatches
	for len(rest) > 0 {
		batch, r, err := record.Split(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = r
		it := record.NewIterator(batch, 0)
		for it.Next() {
			vals = append(vals, string(it.Record().Value))
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return vals
}

func createTopic(t *testing.T, c *kclient.Client, addr, topic string, served map[int16][2]int16) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 5000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = 1
	rt.ReplicationFactor = 1
	req.Topics = append(req.Topics, rt)
	resp, err := c.Request(testCtx(t), addr, req)
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, served, req)
	ct := resp.(*kmsg.CreateTopicsResponse)
	if len(ct.Topics) != 1 {
		t.Fatalf("CreateTopics answered %d topics", len(ct.Topics))
	}
	if err := kerr.ErrorForCode(ct.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// TestBroker runs CreateTopics, Metadata, Produce (acks=1) and Fetch against
// a real broker, each at the version the broker advertises.
func TestBroker(t *testing.T) {
	addr := startBroker(t)
	var dials countingDialer
	c := newClient(t, kclient.Config{Dial: dials.dial})
	served := brokerVersions(t, c, addr)
	if served[18][1] != 3 {
		t.Fatalf("broker serves ApiVersions %v; the test expects v3", served[18])
	}
	createTopic(t, c, addr, "orders", served)

	mreq := metadataReq("orders")
	resp, err := c.Request(testCtx(t), addr, mreq)
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, served, mreq)
	md := resp.(*kmsg.MetadataResponse)
	if len(md.Topics) != 1 || kerr.ErrorForCode(md.Topics[0].ErrorCode) != nil || len(md.Topics[0].Partitions) != 1 {
		t.Fatalf("metadata of orders: %+v", md.Topics)
	}

	preq := produceReq("orders", 1, "a", "b", "c")
	resp, err = c.Request(testCtx(t), addr, preq)
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, served, preq)
	pr := resp.(*kmsg.ProduceResponse)
	if p := pr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce: error %d, base offset %d", p.ErrorCode, p.BaseOffset)
	}

	freq := fetchReq("orders", 0)
	resp, err = c.Request(testCtx(t), addr, freq)
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, served, freq)
	if got := fmt.Sprint(fetchValues(t, resp)); got != "[a b c]" {
		t.Fatalf("fetched %s, want [a b c]", got)
	}
	if n := dials.n.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1 reused", n)
	}
}

// TestBrokerVersionCap: a version set on the request caps the one sent.
func TestBrokerVersionCap(t *testing.T) {
	addr := startBroker(t)
	c := newClient(t, kclient.Config{})
	req := metadataReq("x")
	req.SetVersion(4)
	if _, err := c.Request(testCtx(t), addr, req); err != nil {
		t.Fatal(err)
	}
	if v := req.GetVersion(); v != 4 {
		t.Fatalf("sent v%d, want the cap v4", v)
	}
}

// TestBrokerAcks0: an acks=0 produce returns once written, and the broker
// has it by the time a later request on the connection is handled.
func TestBrokerAcks0(t *testing.T) {
	addr := startBroker(t)
	c := newClient(t, kclient.Config{})
	createTopic(t, c, addr, "fire", brokerVersions(t, c, addr))
	resp, err := c.Request(testCtx(t), addr, produceReq("fire", 0, "x", "y"))
	if err != nil || resp != nil {
		t.Fatalf("acks=0 produce: %v, %v; want nil, nil", resp, err)
	}
	resp, err = c.Request(testCtx(t), addr, fetchReq("fire", 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(fetchValues(t, resp)); got != "[x y]" {
		t.Fatalf("fetched %s, want [x y]", got)
	}
}

// TestBrokerPipelined sends many concurrent requests; they share one
// connection and each gets its own answer.
func TestBrokerPipelined(t *testing.T) {
	addr := startBroker(t)
	var dials countingDialer
	c := newClient(t, kclient.Config{Dial: dials.dial})
	const goroutines, each = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				topic := fmt.Sprintf("t-%d-%d", g, i)
				resp, err := c.Request(testCtx(t), addr, metadataReq(topic))
				if err != nil {
					errs <- err
					return
				}
				m := resp.(*kmsg.MetadataResponse)
				if len(m.Topics) != 1 || *m.Topics[0].Topic != topic {
					errs <- fmt.Errorf("request for %s answered with %+v", topic, m.Topics)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := dials.n.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
}

// TestBrokerRequestInto: a response that fits is read into the caller's
// buffer, one that does not into a new buffer that is returned, and the
// records alias the buffer returned.
func TestBrokerRequestInto(t *testing.T) {
	addr := startBroker(t)
	c := newClient(t, kclient.Config{})
	served := brokerVersions(t, c, addr)
	createTopic(t, c, addr, "orders", served)
	if _, err := c.Request(testCtx(t), addr, produceReq("orders", 1, "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	// within reports whether b lies in buf: whether clearing buf clears b.
	within := func(b, buf []byte) bool {
		keep := slices.Clone(buf[:cap(buf)])
		clear(buf[:cap(buf)])
		zero := len(b) > 0 && !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
		copy(buf[:cap(buf)], keep)
		return zero
	}

	small := make([]byte, 0, 8)
	resp, frame, err := c.RequestInto(testCtx(t), addr, fetchReq("orders", 0), small)
	if err != nil {
		t.Fatal(err)
	}
	recs := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
	if got := fmt.Sprint(fetchValues(t, resp)); got != "[a b c]" {
		t.Fatalf("fetched %s, want [a b c]", got)
	}
	if cap(frame) <= cap(small) || !within(recs, frame) || within(recs, small) {
		t.Fatalf("a response larger than the buffer: frame of cap %d, records in it %v, in the small buffer %v", cap(frame), within(recs, frame), within(recs, small))
	}

	big := make([]byte, 0, 1<<20)
	resp, frame, err = c.RequestInto(testCtx(t), addr, fetchReq("orders", 0), big)
	if err != nil {
		t.Fatal(err)
	}
	recs = resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
	if got := fmt.Sprint(fetchValues(t, resp)); got != "[a b c]" {
		t.Fatalf("fetched %s, want [a b c]", got)
	}
	if cap(frame) != cap(big) || !within(recs, big) {
		t.Fatalf("a response that fits was not read into the buffer given (frame cap %d)", cap(frame))
	}

	// Reused again: the previous response's bytes are overwritten.
	if _, err := c.Request(testCtx(t), addr, produceReq("orders", 1, "d")); err != nil {
		t.Fatal(err)
	}
	resp, _, err = c.RequestInto(testCtx(t), addr, fetchReq("orders", 3), frame)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(fetchValues(t, resp)); got != "[d]" {
		t.Fatalf("fetched %s, want [d]", got)
	}
}
