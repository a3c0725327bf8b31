package broker

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

// errorCounts collects EachError.
func errorCounts(b *Broker) map[[2]int16]uint64 {
	out := map[[2]int16]uint64{}
	b.EachError(func(k, c int16, n uint64) { out[[2]int16{k, c}] = n })
	return out
}

// Produce and fetch count bytes per topic as the client sees them (bytes
// in: the batches; bytes out: the record bytes fetched), and the errors
// answered are counted by API key and code.
func TestStatsCountTraffic(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{AutoCreateTopics: true}})
	createTopic(t, ts.addr, "t", 1, nil)
	rc := dialRaw(t, ts.addr)
	var in int64
	for i := range 3 {
		batch := makeBatch(t, batchOpts{nrecords: i + 1})
		in += int64(len(batch))
		if rp := produceRaw(t, rc, 9, 1, "t", 0, batch); rp.ErrorCode != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(rp.ErrorCode))
		}
	}
	// Two client errors: an unknown partition and the internal topic.
	if rp := produceRaw(t, rc, 9, 1, "t", 5, makeBatch(t, batchOpts{})); rp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("produce to partition 5: code %d", rp.ErrorCode)
	}
	if rp := produceRaw(t, rc, 9, 1, "__consumer_offsets", 0, makeBatch(t, batchOpts{})); rp.ErrorCode == 0 {
		t.Fatal("produce to __consumer_offsets succeeded")
	}
	recs := consumeN(t, ts.addr, "t", 6)
	if len(recs) != 6 {
		t.Fatalf("consumed %d records", len(recs))
	}
	p, err := ts.eng.Partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Counters()
	if c.BytesIn.Load() != in || c.RecordsIn.Load() != 6 {
		t.Fatalf("bytes in %d records in %d, want %d, 6", c.BytesIn.Load(), c.RecordsIn.Load(), in)
	}
	// The consumer read the whole log (perhaps more than once: franz-go may
	// fetch again before the test closes it).
	if out := c.BytesOut.Load(); out < in {
		t.Fatalf("bytes out %d, want at least the %d produced", out, in)
	}
	if out := c.RecordsOut.Load(); out < 6 {
		t.Fatalf("records out %d, want at least the 6 produced", out)
	}
	errs := errorCounts(ts.b)
	if errs[[2]int16{0, kerr.UnknownTopicOrPartition.Code}] != 1 || len(errs) != 2 {
		t.Fatalf("errors %v, want one UNKNOWN_TOPIC_OR_PARTITION and one other for Produce", errs)
	}
}

// Broker-fault errors are logged at Warn with topic and partition, at most
// once per second per code, the next line counting those not logged.
func TestLogFaultRateLimited(t *testing.T) {
	ts := startServer(t, serverOpts{})
	req := &netio.Request{APIKey: 0, APIVersion: 9}
	for range 5 {
		ts.b.logFault(req, "produce", kerr.KafkaStorageError.Code, nil, "topic", "t", "partition", int32(3))
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, "client got an error caused by the broker"); n != 1 {
		t.Fatalf("%d fault lines, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "topic=t partition=3") || !strings.Contains(logs, "KAFKA_STORAGE_ERROR") {
		t.Fatalf("fault line lacks level, topic, partition or code:\n%s", logs)
	}
	// Another code has its own budget; the next line of the first code
	// after the interval says how many were not logged.
	ts.b.logFault(req, "fetch", kerr.NotLeaderForPartition.Code, nil, "topic", "t", "partition", int32(0))
	ts.b.counters.faultNext[codeIndex(kerr.KafkaStorageError.Code)].Store(0)
	ts.b.logFault(req, "produce", kerr.KafkaStorageError.Code, nil, "topic", "t", "partition", int32(3))
	logs = ts.logs.String()
	if n := strings.Count(logs, "client got an error caused by the broker"); n != 3 || !strings.Contains(logs, "not_logged_since_last=4") {
		t.Fatalf("want 3 fault lines, the last with not_logged_since_last=4:\n%s", logs)
	}
}

func TestCountISRChange(t *testing.T) {
	var s stats
	s.countISRChange(nil, []int32{1, 2}, true)         // new leadership
	s.countISRChange([]int32{1, 2}, []int32{1}, false) // same partition epoch
	s.countISRChange([]int32{1, 2}, []int32{1}, true)
	s.countISRChange([]int32{1}, []int32{1, 2, 3}, true)
	s.countISRChange([]int32{1, 2}, []int32{1, 3}, true) // same size
	if s.isrShrinks.Load() != 1 || s.isrExpands.Load() != 1 {
		t.Fatalf("shrinks %d expands %d, want 1, 1", s.isrShrinks.Load(), s.isrExpands.Load())
	}
}

func TestCodeIndex(t *testing.T) {
	for code, want := range map[int16]int{-1: 0, 0: 1, 6: 7, maxErrorCode: maxErrorCode + 1, maxErrorCode + 1: 0, -2: 0} {
		if got := codeIndex(code); got != want {
			t.Errorf("codeIndex(%d) = %d, want %d", code, got, want)
		}
	}
	var b Broker
	b.countError(200, 6) // an API key out of range is ignored
	b.countError(3, 0)   // no error
	b.countError(3, 6)
	b.countError(3, 999)
	got := errorCounts(&b)
	if len(got) != 2 || got[[2]int16{3, 6}] != 1 || got[[2]int16{3, -1}] != 1 {
		t.Fatalf("counts %v", got)
	}
}

// The error codes of group API responses are counted by API key.
func TestStatsCountGroupErrors(t *testing.T) {
	ts := startServer(t, serverOpts{})
	rc := dialRaw(t, ts.addr)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "nobody", 3
	resp := rc.roundTrip(hb, 4).(*kmsg.HeartbeatResponse)
	if resp.ErrorCode == 0 {
		t.Fatal("heartbeat of an unknown member succeeded")
	}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation, oc.MemberID = "g", 3, "nobody"
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = "t"
	for p := range int32(2) {
		op := kmsg.NewOffsetCommitRequestTopicPartition()
		op.Partition, op.Offset = p, 1
		ot.Partitions = append(ot.Partitions, op)
	}
	oc.Topics = append(oc.Topics, ot)
	ocr := rc.roundTrip(oc, 8).(*kmsg.OffsetCommitResponse)
	pcode := ocr.Topics[0].Partitions[0].ErrorCode
	if pcode == 0 {
		t.Fatal("commit of an unknown member succeeded")
	}
	errs := errorCounts(ts.b)
	if errs[[2]int16{12, resp.ErrorCode}] != 1 || errs[[2]int16{8, pcode}] != 2 {
		t.Fatalf("errors %v: want one %d for Heartbeat and two %d for OffsetCommit (one per partition)", errs, resp.ErrorCode, pcode)
	}
}
