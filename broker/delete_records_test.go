package broker

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

func TestDeleteRecords(t *testing.T) {
	for _, store := range []string{"disk", "memory"} {
		t.Run(store, func(t *testing.T) {
			var opts engine.Options
			if store == "memory" {
				opts.Store = engine.NewMemoryStore()
			}
			ts := startServer(t, serverOpts{engine: opts})
			// Small segments, so that deleting records removes whole ones.
			if err := ts.eng.CreateTopic("dr", engine.TopicConfig{Partitions: 2, SegmentBytes: 1024}); err != nil {
				t.Fatal(err)
			}
			p0, _ := ts.eng.Partition("dr", 0)
			p1, _ := ts.eng.Partition("dr", 1)
			appendN(t, p0, 20, 1, 100) // offsets 0-19
			appendN(t, p1, 5, 1, 100)
			adm := newAdmin(t, ts.addr)
			ctx := ctx10s(t)

			segs := ts.eng.Stats().Segments
			var os kadm.Offsets
			os.Add(kadm.Offset{Topic: "dr", Partition: 0, At: 12})
			os.Add(kadm.Offset{Topic: "dr", Partition: 1, At: -1}) // the high watermark
			resp, err := adm.DeleteRecords(ctx, os)
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := resp.Lookup("dr", 0); r.Err != nil || r.LowWatermark != 12 {
				t.Fatalf("partition 0: %+v", r)
			}
			if r, _ := resp.Lookup("dr", 1); r.Err != nil || r.LowWatermark != 5 {
				t.Fatalf("partition 1 to the high watermark: %+v", r)
			}
			if now := ts.eng.Stats().Segments; store == "disk" && now >= segs {
				t.Errorf("%d segments before, %d after: none removed", segs, now)
			}
			// A consumer below the new start is out of range; at it, it reads.
			rc := dialRaw(t, ts.addr)
			if fp := fetchOne(t, rc, fetchReq("dr", 0, 11, 0, 1, 1<<20, 1<<20), 12); fp.ErrorCode != kerr.OffsetOutOfRange.Code {
				t.Fatalf("fetch below the log start: %+v", fp)
			}
			fp := fetchOne(t, rc, fetchReq("dr", 0, 12, 0, 1, 1<<20, 1<<20), 12)
			if fp.ErrorCode != 0 || fp.LogStartOffset != 12 || len(fp.RecordBatches) == 0 {
				t.Fatalf("fetch at the log start: %+v", fp)
			}
			start, err := adm.ListStartOffsets(ctx, "dr")
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := start.Lookup("dr", 0); o.Offset != 12 || o.Err != nil {
				t.Fatalf("earliest: %+v", o)
			}
			// Below the start changes nothing; above the high watermark is
			// out of range.
			var again kadm.Offsets
			again.Add(kadm.Offset{Topic: "dr", Partition: 0, At: 3})
			again.Add(kadm.Offset{Topic: "dr", Partition: 1, At: 6})
			resp, err = adm.DeleteRecords(ctx, again)
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := resp.Lookup("dr", 0); r.Err != nil || r.LowWatermark != 12 {
				t.Fatalf("below the start: %+v", r)
			}
			if r, _ := resp.Lookup("dr", 1); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
				t.Fatalf("above the high watermark: %+v", r)
			}
		})
	}
}

// DeleteRecords of what clients may not delete, every version.
func TestDeleteRecordsRefused(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	if err := ts.eng.CreateTopic("d", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := ts.eng.CreateTopic("f", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.eng.Topic(engine.ConsumerOffsetsTopic); err != nil {
		if err := ts.eng.CreateTopic(engine.ConsumerOffsetsTopic, engine.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := ts.eng.Partition("f", 0)
	if err := f.BecomeFollower(1); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.TimeoutMillis = 1000
		add := func(topic string, partition int32, offset int64) {
			req.Topics = append(req.Topics, kmsg.DeleteRecordsRequestTopic{Topic: topic,
				Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: partition, Offset: offset}}})
		}
		add(engine.ConsumerOffsetsTopic, 0, -1)
		add("nope", 0, -1)
		add("d", 3, -1)
		add("d", 0, -5)
		add("f", 0, -1)
		resp := rc.roundTrip(req, v).(*kmsg.DeleteRecordsResponse)
		for i, want := range []*kerr.Error{kerr.InvalidTopicException, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.OffsetOutOfRange, kerr.NotLeaderForPartition} {
			if r := resp.Topics[i].Partitions[0]; r.ErrorCode != want.Code || r.LowWatermark != -1 {
				t.Errorf("v%d %s/%d: %+v, want %s", v, req.Topics[i].Topic, req.Topics[i].Partitions[0].Partition, r, want.Message)
			}
		}
	}
}
