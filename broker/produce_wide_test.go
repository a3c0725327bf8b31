package broker

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceManyPartitionsInOneRequest sends big requests spanning many
// partitions: every partition gets its batch at the right offset,
// per-partition errors stay with their partition, and a partition named
// twice keeps the request's order.
func TestProduceManyPartitionsInOneRequest(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "wide", 8, nil)
	rc := dialRaw(t, ts.addr)
	value := bytes.Repeat([]byte("v"), 64<<10)
	send := func(parts []int32, corrupt int32) *kmsg.ProduceResponse {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = -1
		req.TimeoutMillis = 5000
		rt := kmsg.ProduceRequestTopic{Topic: "wide"}
		for _, p := range parts {
			b := makeBatch(t, batchOpts{pid: -1, epoch: -1, seq: -1, nrecords: 1, value: value})
			if p == corrupt {
				b[len(b)-1] ^= 1
			}
			rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: b})
		}
		req.Topics = []kmsg.ProduceRequestTopic{rt, {Topic: "no-such-topic", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: makeBatch(t, batchOpts{pid: -1, epoch: -1, seq: -1})}}}}
		return rc.roundTrip(req, 9).(*kmsg.ProduceResponse)
	}
	for round := range int64(3) {
		resp := send([]int32{0, 1, 2, 3, 4, 5, 6, 7, 99}, 5)
		for i, p := range resp.Topics[0].Partitions {
			var want int16
			switch p.Partition {
			case 5:
				want = kerr.CorruptMessage.Code
			case 99:
				want = kerr.UnknownTopicOrPartition.Code
			}
			if p.Partition != int32(i) && p.Partition != 99 {
				t.Fatalf("response partition %d at index %d", p.Partition, i)
			}
			if p.ErrorCode != want {
				t.Fatalf("round %d partition %d: error %d, want %d", round, p.Partition, p.ErrorCode, want)
			}
			if want == 0 && p.BaseOffset != round {
				t.Fatalf("round %d partition %d: base offset %d, want %d", round, p.Partition, p.BaseOffset, round)
			}
		}
		if code := resp.Topics[1].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("unknown topic: error %d", code)
		}
	}
	// Partition 0 twice: both batches go in, in request order.
	resp := send([]int32{0, 0, 1, 2, 3, 4, 6, 7}, -1)
	ps := resp.Topics[0].Partitions
	if ps[0].BaseOffset != 3 || ps[1].BaseOffset != 4 {
		t.Fatalf("partition 0 twice: offsets %d, %d; want 3, 4", ps[0].BaseOffset, ps[1].BaseOffset)
	}
	p, err := ts.eng.Partition("wide", 5)
	if err != nil || p.EndOffset() != 0 {
		t.Fatalf("corrupt batches were stored: %v, end %d", err, p.EndOffset())
	}
}
