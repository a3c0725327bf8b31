package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// epochLog makes partition 0 of topic hold leader epochs 1 (offsets 0-1), 3
// (2-4) and 5 (5), as three leader changes would: log end 6, current epoch
// 5. Batches carry timestamps 1000+offset.
func epochLog(t testing.TB, ts *testServer, topic string) *engine.Partition {
	t.Helper()
	if err := ts.eng.CreateTopic(topic, engine.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p, _ := ts.eng.Partition(topic, 0)
	off := int64(0)
	for _, e := range []struct {
		epoch int32
		n     int
	}{{1, 2}, {3, 3}, {5, 1}} {
		if err := p.BecomeLeader(e.epoch); err != nil {
			t.Fatal(err)
		}
		for range e.n {
			if _, err := p.AppendRecords(0, record.Record{Timestamp: 1000 + off, Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			off++
		}
	}
	return p
}

// Fetch and ListOffsets check current_leader_epoch as KIP-320 says, and
// ListOffsets and Metadata report epochs.
func TestLeaderEpochFencing(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	p := epochLog(t, ts, "ep")
	rc := dialRaw(t, ts.addr)
	for _, tt := range []struct {
		epoch int32
		want  *kerr.Error // nil: no error
	}{{-1, nil}, {5, nil}, {0, kerr.FencedLeaderEpoch}, {4, kerr.FencedLeaderEpoch}, {6, kerr.UnknownLeaderEpoch}, {100, kerr.UnknownLeaderEpoch}} {
		want := int16(0)
		if tt.want != nil {
			want = tt.want.Code
		}
		for v := int16(4); v <= 12; v++ {
			req := fetchReq("ep", 0, 0, 10000, 1, 1<<20, 1<<20)
			req.Topics[0].Partitions[0].CurrentLeaderEpoch = tt.epoch
			fp := fetchOne(t, rc, req, v)
			if v < 9 { // no current_leader_epoch on the wire: never checked
				if fp.ErrorCode != 0 {
					t.Fatalf("fetch v%d with epoch %d: %+v", v, tt.epoch, fp)
				}
				continue
			}
			if fp.ErrorCode != want || (want == 0) != (len(fp.RecordBatches) > 0) {
				t.Fatalf("fetch v%d, current epoch %d: code %d (%d bytes), want %d", v, tt.epoch, fp.ErrorCode, len(fp.RecordBatches), want)
			}
		}
		for v := int16(1); v <= 6; v++ {
			o := listOffset(t, rc, v, -1, "ep", 0, -1, tt.epoch)
			w := want
			if v < 4 {
				w = 0
			}
			if o.ErrorCode != w {
				t.Fatalf("list offsets v%d, current epoch %d: %+v, want code %d", v, tt.epoch, o, w)
			}
		}
	}
	// The epochs of the offsets ListOffsets finds (v4+).
	for _, tt := range []struct {
		ts    int64
		off   int64
		epoch int32
	}{{-1, 6, 5}, {-2, 0, 1}, {1000, 0, 1}, {1003, 3, 3}, {1005, 5, 5}} {
		if o := listOffset(t, rc, 6, -1, "ep", 0, tt.ts, 5); o.ErrorCode != 0 || o.Offset != tt.off || o.LeaderEpoch != tt.epoch {
			t.Errorf("list offsets %d: %+v, want offset %d epoch %d", tt.ts, o, tt.off, tt.epoch)
		}
	}
	// After DeleteRecords the earliest offset is in epoch 3.
	if _, err := p.DeleteRecords(3); err != nil {
		t.Fatal(err)
	}
	if o := listOffset(t, rc, 6, -1, "ep", 0, -2, -1); o.Offset != 3 || o.LeaderEpoch != 3 {
		t.Errorf("earliest after delete records: %+v", o)
	}
	// Metadata tells clients the epoch to send.
	md := rc.roundTrip(&kmsg.MetadataRequest{Topics: []kmsg.MetadataRequestTopic{{Topic: strp("ep")}}}, 9).(*kmsg.MetadataResponse)
	if e := md.Topics[0].Partitions[0].LeaderEpoch; e != 5 {
		t.Errorf("metadata leader epoch %d", e)
	}
	// A follower partition answers NOT_LEADER_OR_FOLLOWER to fetches and
	// ListOffsets, except ListOffsets from the debugging replica id.
	if err := p.BecomeFollower(6); err != nil {
		t.Fatal(err)
	}
	if fp := fetchOne(t, rc, fetchReq("ep", 0, 3, 0, 1, 1<<20, 1<<20), 12); fp.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Errorf("fetch from a follower: %+v", fp)
	}
	if o := listOffset(t, rc, 6, -1, "ep", 0, -1, -1); o.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Errorf("list offsets of a follower: %+v", o)
	}
	if o := listOffset(t, rc, 6, debugReplicaID, "ep", 0, -1, -1); o.ErrorCode != 0 || o.Offset != 6 {
		t.Errorf("list offsets of a follower by the debugging replica: %+v", o)
	}
}

// A follower's fetch (v12) with last_fetched_epoch is told where the leader's
// log diverges from its own (KIP-595), with no records.
func TestFetchDivergingEpoch(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	epochLog(t, ts, "div") // epochs 1 @0, 3 @2, 5 @5; log end 6
	rc := dialRaw(t, ts.addr)
	for _, tt := range []struct {
		name      string
		offset    int64
		lastEpoch int32
		code      *kerr.Error
		diverged  bool
		epoch     int32
		end       int64
	}{
		{"no epoch given", 3, -1, nil, false, 0, 0},
		{"in step, epoch 3", 4, 3, nil, false, 0, 0},
		{"in step at the end of epoch 3", 5, 3, nil, false, 0, 0},
		{"in step, current epoch", 6, 5, nil, false, 0, 0},
		{"epoch 3 went on past its end here", 6, 3, nil, true, 3, 5},
		{"epoch 2 is not in this log", 2, 2, nil, true, 1, 2},
		{"epoch 2 past epoch 1's end", 4, 2, nil, true, 1, 2},
		{"epoch 4 unknown here", 5, 4, nil, true, 3, 5},
		{"an epoch newer than any here", 6, 9, kerr.OffsetOutOfRange, false, 0, 0},
		{"epoch older than the first", 0, 0, nil, false, 0, 0},
	} {
		req := fetchReq("div", 0, tt.offset, 0, 1, 1<<20, 1<<20)
		req.ReplicaID = 1
		req.Topics[0].Partitions[0].LastFetchedEpoch = tt.lastEpoch
		fp := fetchOne(t, rc, req, 12)
		want := int16(0)
		if tt.code != nil {
			want = tt.code.Code
		}
		switch {
		case fp.ErrorCode != want:
			t.Errorf("%s: code %d, want %d (%+v)", tt.name, fp.ErrorCode, want, fp)
		case tt.diverged && (fp.DivergingEpoch.Epoch != tt.epoch || fp.DivergingEpoch.EndOffset != tt.end || len(fp.RecordBatches) != 0):
			t.Errorf("%s: diverging epoch %+v with %d record bytes, want epoch %d end %d", tt.name, fp.DivergingEpoch, len(fp.RecordBatches), tt.epoch, tt.end)
		case !tt.diverged && (fp.DivergingEpoch.Epoch != -1 || fp.DivergingEpoch.EndOffset != -1):
			t.Errorf("%s: diverging epoch %+v", tt.name, fp.DivergingEpoch)
		case tt.diverged && fp.HighWatermark != 6:
			t.Errorf("%s: high watermark %d", tt.name, fp.HighWatermark)
		}
	}
	// A diverged follower is answered at once, even with a long max wait.
	req := fetchReq("div", 0, 6, 30000, 1, 1<<20, 1<<20)
	req.ReplicaID = 1
	req.Topics[0].Partitions[0].LastFetchedEpoch = 3
	if fp := fetchOne(t, rc, req, 12); fp.DivergingEpoch.Epoch != 3 {
		t.Fatalf("long poll: %+v", fp)
	}
}

// OffsetForLeaderEpoch answers Kafka's rules through the wire, every
// version.
func TestOffsetForLeaderEpoch(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	p := epochLog(t, ts, "ofle") // epochs 1 @0, 3 @2, 5 @5; log end 6
	rc := dialRaw(t, ts.addr)
	type want struct {
		code  *kerr.Error
		epoch int32
		end   int64
	}
	ask := func(v int16, topic string, partition, current, epoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{
			{Partition: partition, CurrentLeaderEpoch: current, LeaderEpoch: epoch}}}}
		resp := rc.roundTrip(req, v).(*kmsg.OffsetForLeaderEpochResponse)
		return resp.Topics[0].Partitions[0]
	}
	check := func(stage string, cases []struct {
		name            string
		current, epoch  int32
		w               want
		topic           string
		partition       int32
		onlyWithFencing bool
	}) {
		t.Helper()
		for v := int16(0); v <= 4; v++ {
			for _, c := range cases {
				if c.onlyWithFencing && v < 2 {
					continue
				}
				topic := c.topic
				if topic == "" {
					topic = "ofle"
				}
				got := ask(v, topic, c.partition, c.current, c.epoch)
				wc := int16(0)
				if c.w.code != nil {
					wc = c.w.code.Code
				}
				if got.ErrorCode != wc || got.EndOffset != c.w.end || (v >= 1 && got.LeaderEpoch != c.w.epoch) {
					t.Errorf("%s, v%d, %s: code %d epoch %d end %d; want code %d epoch %d end %d",
						stage, v, c.name, got.ErrorCode, got.LeaderEpoch, got.EndOffset, wc, c.w.epoch, c.w.end)
				}
			}
		}
	}
	type tc = struct {
		name            string
		current, epoch  int32
		w               want
		topic           string
		partition       int32
		onlyWithFencing bool
	}
	check("three epochs", []tc{
		{name: "below the first", current: -1, epoch: 0, w: want{nil, 0, 0}},
		{name: "the first", current: -1, epoch: 1, w: want{nil, 1, 2}},
		{name: "between the first two", current: -1, epoch: 2, w: want{nil, 1, 2}},
		{name: "the middle one", current: 5, epoch: 3, w: want{nil, 3, 5}},
		{name: "between the last two", current: -1, epoch: 4, w: want{nil, 3, 5}},
		{name: "the current one: the log end", current: 5, epoch: 5, w: want{nil, 5, 6}},
		{name: "above the current one", current: -1, epoch: 6, w: want{nil, -1, -1}},
		{name: "undefined", current: -1, epoch: -1, w: want{nil, -1, -1}},
		{name: "fenced", current: 4, epoch: 3, w: want{kerr.FencedLeaderEpoch, -1, -1}, onlyWithFencing: true},
		{name: "unknown leader epoch", current: 6, epoch: 3, w: want{kerr.UnknownLeaderEpoch, -1, -1}, onlyWithFencing: true},
		{name: "unknown topic", current: -1, epoch: 3, w: want{kerr.UnknownTopicOrPartition, -1, -1}, topic: "nope"},
		{name: "unknown partition", current: -1, epoch: 3, w: want{kerr.UnknownTopicOrPartition, -1, -1}, partition: 7},
	})
	// Truncated (an unclean cut into epoch 3): epoch 5 is gone, epoch 3
	// is the latest the log holds and ends at the new log end.
	if end, err := p.TruncateTo(3, true); err != nil || end != 3 {
		t.Fatalf("truncate: %d, %v", end, err)
	}
	check("after a truncation to 3", []tc{
		{name: "the first", current: -1, epoch: 1, w: want{nil, 1, 2}},
		{name: "the latest held", current: 5, epoch: 3, w: want{nil, 3, 3}},
		{name: "between the latest held and the current", current: -1, epoch: 4, w: want{nil, -1, -1}},
		{name: "the current one, no longer held", current: 5, epoch: 5, w: want{nil, -1, -1}},
	})
	// A follower does not answer.
	if err := p.BecomeFollower(6); err != nil {
		t.Fatal(err)
	}
	if got := ask(4, "ofle", 0, -1, 3); got.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Errorf("follower: %+v", got)
	}
}
