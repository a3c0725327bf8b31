package broker

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/record"
)

func TestProduceRejects(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("t", engine.TopicConfig{Partitions: 2, MaxMessageBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	good := func() []byte { return makeBatch(t, batchOpts{nrecords: 3}) }
	badCRC := good()
	badCRC[len(badCRC)-1] ^= 0xff
	badMagic := good()
	badMagic[record.PosMagic] = 1
	truncated := good()
	truncated = truncated[:len(truncated)-3]
	badCodec := good()
	binary.BigEndian.PutUint16(badCodec[record.PosAttributes:], 7)
	fixCRC(badCodec)
	control := good()
	binary.BigEndian.PutUint16(control[record.PosAttributes:], 1<<5)
	fixCRC(control)
	badCount := good()
	binary.BigEndian.PutUint32(badCount[record.PosLastOffsetDelta:], 5)
	fixCRC(badCount)
	tooBig := makeBatch(t, batchOpts{value: make([]byte, 5000)})
	txn := makeBatch(t, batchOpts{pid: 7, seq: 0, txn: true})
	trailing := append(good(), 1, 2, 3)

	tests := []struct {
		name      string
		topic     string
		partition int32
		recs      []byte
		want      *kerr.Error
	}{
		{"bad crc", "t", 0, badCRC, kerr.CorruptMessage},
		{"magic 1", "t", 0, badMagic, kerr.InvalidRecord},
		{"truncated", "t", 0, truncated, kerr.CorruptMessage},
		{"unknown codec", "t", 0, badCodec, kerr.UnsupportedCompressionType},
		{"control batch", "t", 0, control, kerr.InvalidRecord},
		{"count mismatch", "t", 0, badCount, kerr.InvalidRecord},
		{"too large", "t", 0, tooBig, kerr.MessageTooLarge},
		{"transactional", "t", 0, txn, kerr.TransactionalIDAuthorizationFailed},
		{"two batches", "t", 1, append(good(), good()...), kerr.InvalidRecord},
		{"trailing garbage", "t", 1, trailing, kerr.CorruptMessage},
		{"no records", "t", 0, nil, kerr.InvalidRecord},
		{"tiny", "t", 0, []byte{0, 0, 0}, kerr.CorruptMessage},
		{"unknown topic", "nope", 0, good(), kerr.UnknownTopicOrPartition},
		{"negative partition", "t", -1, good(), kerr.UnknownTopicOrPartition},
		{"partition too high", "t", 2, good(), kerr.UnknownTopicOrPartition},
		{"invalid topic name", "bad/name", 0, good(), kerr.InvalidTopicException},
		{"internal topic", engine.ConsumerOffsetsTopic, 0, good(), kerr.InvalidTopicException},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr)
			for _, v := range []int16{3, 7, 8, 9} {
				recs := slices.Clone(tt.recs) // the broker writes offsets into accepted batches
				p := produceRaw(t, rc, v, 1, tt.topic, tt.partition, recs)
				if p.ErrorCode != tt.want.Code {
					t.Fatalf("v%d: error %d (%v), want %s", v, p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), tt.want.Message)
				}
				if p.BaseOffset != -1 {
					t.Errorf("v%d: base offset %d on error, want -1", v, p.BaseOffset)
				}
				if v >= 8 && p.ErrorMessage == nil {
					t.Errorf("v%d: no error message", v)
				}
			}
		})
	}
	if n := ts.eng.Topics(); len(n) != 2 {
		t.Errorf("topics %v: a rejected produce created one", n)
	}
	p, _ := ts.eng.Partition("t", 0)
	if p.EndOffset() != 0 {
		t.Errorf("end offset %d after only rejected batches", p.EndOffset())
	}
	if !logged(ts, "rejected produce") {
		t.Error("no log line for rejected produce")
	}
}

func TestProduceRequestErrors(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("t", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	// Produce v0-2 carry message sets: every partition gets UNSUPPORTED_VERSION.
	for v := int16(0); v <= 2; v++ {
		p := produceRaw(t, rc, v, 1, "t", 0, makeBatch(t, batchOpts{}))
		if p.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Errorf("produce v%d: error %d, want UNSUPPORTED_VERSION", v, p.ErrorCode)
		}
	}
	p := produceRaw(t, rc, 9, 2, "t", 0, makeBatch(t, batchOpts{}))
	if p.ErrorCode != kerr.InvalidRequiredAcks.Code {
		t.Errorf("acks 2: error %d, want INVALID_REQUIRED_ACKS", p.ErrorCode)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = 1
	req.TransactionID = strp("txn")
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: makeBatch(t, batchOpts{})}}}}
	resp := rc.roundTrip(req, 9).(*kmsg.ProduceResponse)
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("transactional id: error %d", c)
	}
}

func TestProduceAcks0(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("t", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	req := kmsg.NewPtrProduceRequest()
	req.Acks = 0
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: makeBatch(t, batchOpts{nrecords: 2})}}}}
	rc.send(req, 9)
	// No response to acks=0: the next answer is the metadata request's.
	md := kmsg.NewPtrMetadataRequest()
	mresp := rc.roundTrip(md, 9).(*kmsg.MetadataResponse)
	if len(mresp.Topics) == 0 {
		t.Fatal("no topics")
	}
	p, _ := ts.eng.Partition("t", 0)
	if p.EndOffset() != 2 {
		t.Fatalf("end offset %d after acks=0 produce, want 2", p.EndOffset())
	}
	// A failed acks=0 produce closes the connection.
	req.Topics[0].Topic = "unknown"
	rc.send(req, 9)
	rc.expectClosed()
}

func TestIdempotentRaw(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("t", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	ip := rc.roundTrip(kmsg.NewPtrInitProducerIDRequest(), 4).(*kmsg.InitProducerIDResponse)
	if ip.ErrorCode != 0 || ip.ProducerID <= 0 || ip.ProducerEpoch != 0 {
		t.Fatalf("init producer id: %+v", ip)
	}
	pid := ip.ProducerID
	b0 := makeBatch(t, batchOpts{pid: pid, seq: 0, nrecords: 3})
	b1 := makeBatch(t, batchOpts{pid: pid, seq: 3, nrecords: 2})
	r0 := produceRaw(t, rc, 9, -1, "t", 0, slices.Clone(b0))
	r1 := produceRaw(t, rc, 9, -1, "t", 0, slices.Clone(b1))
	if r0.ErrorCode != 0 || r1.ErrorCode != 0 || r0.BaseOffset != 0 || r1.BaseOffset != 3 {
		t.Fatalf("appends: %+v %+v", r0, r1)
	}
	// Retries get the original offsets.
	for range 2 {
		d0 := produceRaw(t, rc, 9, -1, "t", 0, slices.Clone(b0))
		if d0.ErrorCode != 0 || d0.BaseOffset != 0 {
			t.Fatalf("retry of first batch: %+v", d0)
		}
	}
	gap := produceRaw(t, rc, 9, -1, "t", 0, makeBatch(t, batchOpts{pid: pid, seq: 9}))
	if gap.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("sequence gap: error %d", gap.ErrorCode)
	}
	// A newer epoch fences the old one.
	if r := produceRaw(t, rc, 9, -1, "t", 0, makeBatch(t, batchOpts{pid: pid, epoch: 1, seq: 0})); r.ErrorCode != 0 {
		t.Fatalf("new epoch: error %d", r.ErrorCode)
	}
	old := produceRaw(t, rc, 9, -1, "t", 0, makeBatch(t, batchOpts{pid: pid, epoch: 0, seq: 5}))
	if old.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: error %d", old.ErrorCode)
	}
	p, _ := ts.eng.Partition("t", 0)
	if p.EndOffset() != 6 {
		t.Fatalf("end offset %d, want 6", p.EndOffset())
	}
}

func TestConnectionClosingRequests(t *testing.T) {
	ts := startServer(t, serverOpts{})
	tests := []struct {
		name         string
		key, version int16
		body         []byte
	}{
		{"unserved key (OffsetCommit)", 8, 2, nil},
		{"fetch v3", 1, 3, nil},
		{"fetch v13", 1, 13, nil},
		{"metadata v10", 3, 10, nil},
		{"produce v10", 0, 10, nil},
		{"list offsets v0", 2, 0, nil},
		{"garbage metadata", 3, 1, []byte{0x7f, 0xff, 0xff, 0xff}},
		{"truncated fetch", 1, 11, []byte{0, 0, 0, 1, 0}},
		{"truncated produce", 0, 9, []byte{0}},
		{"produce topic count bomb", 0, 8, func() []byte {
			b := []byte{0xff, 0xff, 0, 1, 0, 0, 0, 0} // null txn id, acks 1, timeout
			b = append(b, 0x7f, 0xff, 0xff, 0xff)     // topics: MaxInt32
			return append(b, make([]byte, 64)...)
		}()},
		{"api versions v-1", 18, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr)
			rc.sendBytes(tt.key, tt.version, tt.body)
			rc.expectClosed()
		})
	}
	waitFor(t, "log lines", func() bool { return logged(ts, "closing connection") })
}

func TestAPIVersions(t *testing.T) {
	ts := startServer(t, serverOpts{})
	rc := dialRaw(t, ts.addr)
	for v := int16(0); v <= 3; v++ {
		resp := rc.roundTrip(kmsg.NewPtrApiVersionsRequest(), v).(*kmsg.ApiVersionsResponse)
		served := singleNodeAPIs()
		if resp.ErrorCode != 0 || len(resp.ApiKeys) != len(served) {
			t.Fatalf("v%d: %+v", v, resp)
		}
		for i, k := range resp.ApiKeys {
			if k.ApiKey != served[i].key || k.MinVersion != served[i].min || k.MaxVersion != served[i].max {
				t.Errorf("v%d: key %+v, want %+v", v, k, *served[i])
			}
		}
	}
	// Too new: a v0 body with UNSUPPORTED_VERSION and every key.
	corr := rc.sendBytes(18, 99, []byte{0, 0, 0})
	got, body, err := rc.recv(18, 0)
	if err != nil || got != corr {
		t.Fatalf("recv: %v (corr %d want %d)", err, got, corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != len(singleNodeAPIs()) {
		t.Fatalf("v99: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	// The connection stays usable.
	md := rc.roundTrip(kmsg.NewPtrMetadataRequest(), 9).(*kmsg.MetadataResponse)
	if len(md.Brokers) != 1 {
		t.Fatalf("brokers %+v", md.Brokers)
	}
}

// Every advertised version of every key must be decodable by kmsg and
// answered with a response kmsg decodes.
func TestEveryVersionRoundTrips(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{AutoCreateTopics: true, Group: group.Config{InitialRebalanceDelay: -1}}})
	if err := ts.eng.CreateTopic("t", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	for _, a := range singleNodeAPIs() {
		for v := a.min; v <= a.max; v++ {
			req := kmsg.RequestForKey(a.key)
			req.SetVersion(v)
			switch r := req.(type) {
			case *kmsg.ProduceRequest:
				r.Acks = 1
				r.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: makeBatch(t, batchOpts{})}}}}
			case *kmsg.FetchRequest:
				r.MaxBytes = 1 << 20
				r.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
			case *kmsg.ListOffsetsRequest:
				r.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: -1}}}}
			case *kmsg.MetadataRequest:
				r.Topics = []kmsg.MetadataRequestTopic{{Topic: strp("t")}}
			case *kmsg.CreateTopicsRequest:
				r.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "c" + string(rune('a'+v)), NumPartitions: 1, ReplicationFactor: 1}}
			case *kmsg.DeleteTopicsRequest:
				r.TopicNames = []string{"c" + string(rune('a'+v))}
			case *kmsg.DescribeConfigsRequest:
				r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}
			case *kmsg.DeleteRecordsRequest:
				r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "t", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Offset: -1}}}}
			case *kmsg.OffsetForLeaderEpochRequest:
				r.ReplicaID = -1
				r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{CurrentLeaderEpoch: -1}}}}
			// Group APIs (package group has the thorough tests).
			case *kmsg.OffsetCommitRequest:
				r.Group, r.Generation = "g", -1
				r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Offset: 1}}}}
			case *kmsg.OffsetFetchRequest:
				r.Group = "g"
				r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			case *kmsg.FindCoordinatorRequest:
				r.CoordinatorKey = "g"
			case *kmsg.JoinGroupRequest:
				r.Group = fmt.Sprintf("j%d", v)
				r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 1000
				r.ProtocolType = "consumer"
				r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1}}}
				if v >= 5 {
					r.InstanceID = strp("static") // no MEMBER_ID_REQUIRED round
				}
			case *kmsg.HeartbeatRequest:
				r.Group = "g"
			case *kmsg.LeaveGroupRequest:
				r.Group = "g"
			case *kmsg.SyncGroupRequest:
				r.Group = "g"
			case *kmsg.DescribeGroupsRequest:
				r.Groups = []string{"g"}
			case *kmsg.DeleteGroupsRequest:
				r.Groups = []string{"nope"}
			case *kmsg.OffsetDeleteRequest:
				r.Group = "nope"
			case *kmsg.DescribeClusterRequest:
				r.EndpointType = 1
			}
			resp := rc.roundTrip(req, v)
			code := firstErrorCode(resp)
			if a.key == 0 && v < 3 {
				if code != kerr.UnsupportedVersion.Code {
					t.Errorf("produce v%d: error %d, want UNSUPPORTED_VERSION", v, code)
				}
				continue
			}
			var want int16
			switch {
			case a.key == 11 && v == 4:
				want = kerr.MemberIDRequired.Code
			case a.key == 12, a.key == 14, a.key == 13 && v < 3:
				want = kerr.UnknownMemberID.Code // no such group
			case a.key == 42, a.key == 47:
				want = kerr.GroupIDNotFound.Code
			}
			if code != want {
				t.Errorf("key %d v%d: error %d (%v)", a.key, v, code, kerr.ErrorForCode(code))
			}
		}
	}
}

// firstErrorCode digs the first error code out of the responses the test
// above sends.
func firstErrorCode(resp kmsg.Response) int16 {
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.FetchResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.ListOffsetsResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.MetadataResponse:
		return r.Topics[0].ErrorCode
	case *kmsg.ApiVersionsResponse:
		return r.ErrorCode
	case *kmsg.CreateTopicsResponse:
		return r.Topics[0].ErrorCode
	case *kmsg.DeleteTopicsResponse:
		return r.Topics[0].ErrorCode
	case *kmsg.InitProducerIDResponse:
		return r.ErrorCode
	case *kmsg.DescribeConfigsResponse:
		return r.Resources[0].ErrorCode
	case *kmsg.DeleteRecordsResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.OffsetForLeaderEpochResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.OffsetCommitResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.OffsetFetchResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.FindCoordinatorResponse:
		return r.ErrorCode
	case *kmsg.JoinGroupResponse:
		return r.ErrorCode
	case *kmsg.HeartbeatResponse:
		return r.ErrorCode
	case *kmsg.LeaveGroupResponse:
		return r.ErrorCode
	case *kmsg.SyncGroupResponse:
		return r.ErrorCode
	case *kmsg.DescribeGroupsResponse:
		return r.Groups[0].ErrorCode
	case *kmsg.ListGroupsResponse:
		return r.ErrorCode
	case *kmsg.DeleteGroupsResponse:
		return r.Groups[0].ErrorCode
	case *kmsg.OffsetDeleteResponse:
		return r.ErrorCode
	case *kmsg.DescribeLogDirsResponse:
		switch {
		case r.ErrorCode != 0:
			return r.ErrorCode
		case len(r.Dirs) != 1:
			return kerr.InvalidRequest.Code // one log directory
		}
		return r.Dirs[0].ErrorCode
	case *kmsg.DescribeClusterResponse:
		if r.ErrorCode == 0 && (len(r.Brokers) != 1 || r.ClusterID == "" || r.ControllerID != r.Brokers[0].NodeID) {
			return kerr.InvalidRequest.Code // not a single node's answer
		}
		return r.ErrorCode
	}
	return -1
}

func TestErrorCodeTable(t *testing.T) {
	tests := []struct {
		err  error
		want int16
	}{
		{nil, 0},
		{engine.ErrUnknownTopic, kerr.UnknownTopicOrPartition.Code},
		{errNoBatch, kerr.InvalidRecord.Code},
		{errTrailingBytes, kerr.CorruptMessage.Code},
		{errTwoBatches, kerr.InvalidRecord.Code},
		{record.ErrShort, kerr.CorruptMessage.Code},
		{errDecode, kerr.UnknownServerError.Code},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("errorCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	// Every entry maps to a real Kafka code.
	for _, e := range errorCodes {
		if kerr.ErrorForCode(e.code.Code) == nil {
			t.Errorf("%v maps to unknown code %d", e.err, e.code.Code)
		}
	}
}

// singleNodeAPIs is the registry without the cluster-only APIs: what a
// broker without Config.Cluster serves.
func singleNodeAPIs() []*api {
	var out []*api
	for _, a := range apiList() {
		if !a.clusterOnly {
			out = append(out, a)
		}
	}
	return out
}
