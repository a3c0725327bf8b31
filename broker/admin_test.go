package broker

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

func ctx10s(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateDeleteTopics(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{NumPartitions: 4}})
	adm := newAdmin(t, ts.addr)
	ctx := ctx10s(t)

	resp, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": strp("60000")}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp {
		if r.Err != nil || r.NumPartitions != 3 || r.ReplicationFactor != 1 {
			t.Fatalf("create %s: %+v", r.Topic, r)
		}
		if c := r.Configs["retention.ms"]; c.Value == nil || *c.Value != "60000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Fatalf("create %s: retention.ms %+v", r.Topic, c)
		}
	}
	info, err := ts.eng.Topic("a")
	if err != nil || info.Config.Partitions != 3 || info.Config.RetentionMs != 60000 {
		t.Fatalf("engine topic a: %+v, %v", info, err)
	}
	// -1 partitions takes Config.NumPartitions; -1 replication factor is 1.
	if r, err := adm.CreateTopic(ctx, -1, -1, nil, "dflt"); err != nil || r.Err != nil || r.NumPartitions != 4 {
		t.Fatalf("create with defaults: %+v %v", r, err)
	}

	errs := []struct {
		name       string
		partitions int32
		rf         int16
		configs    map[string]*string
		topic      string
		want       *kerr.Error
	}{
		{"exists", 1, 1, nil, "a", kerr.TopicAlreadyExists},
		{"replication 3", 1, 3, nil, "r3", kerr.InvalidReplicationFactor},
		{"replication 0", 1, 0, nil, "r0", kerr.InvalidReplicationFactor},
		{"zero partitions", 0, 1, nil, "p0", kerr.InvalidPartitions},
		{"too many partitions", 200000, 1, nil, "pmax", kerr.InvalidPartitions},
		{"bad name", 1, 1, nil, "bad name", kerr.InvalidTopicException},
		{"unknown config", 1, 1, map[string]*string{"no.such": strp("1")}, "c1", kerr.InvalidConfig},
		{"bad value", 1, 1, map[string]*string{"retention.ms": strp("soon")}, "c2", kerr.InvalidConfig},
		{"out of range", 1, 1, map[string]*string{"segment.bytes": strp("3")}, "c3", kerr.InvalidConfig},
		{"retention below -1", 1, 1, map[string]*string{"retention.ms": strp("-2")}, "c4", kerr.InvalidConfig},
	}
	for _, e := range errs {
		r, err := adm.CreateTopic(ctx, e.partitions, e.rf, e.configs, e.topic)
		if err == nil {
			err = r.Err
		}
		if !errors.Is(err, e.want) {
			t.Errorf("%s: %v, want %s", e.name, err, e.want.Message)
		}
		if e.want != kerr.TopicAlreadyExists {
			if _, err := ts.eng.Topic(e.topic); err == nil {
				t.Errorf("%s: topic was created", e.name)
			}
		}
	}

	// validate_only creates nothing.
	vr, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "v")
	if err != nil || vr["v"].Err != nil || vr["v"].NumPartitions != 2 {
		t.Fatalf("validate: %+v %v", vr, err)
	}
	if _, err := ts.eng.Topic("v"); err == nil {
		t.Fatal("validate_only created the topic")
	}
	if vr, _ := adm.ValidateCreateTopics(ctx, 2, 1, nil, "a"); !errors.Is(vr["a"].Err, kerr.TopicAlreadyExists) {
		t.Fatalf("validate existing: %v", vr["a"].Err)
	}

	// A replica assignment may only name this node.
	rc := dialRaw(t, ts.addr)
	creq := kmsg.NewPtrCreateTopicsRequest()
	creq.Topics = []kmsg.CreateTopicsRequestTopic{
		{Topic: "assigned", NumPartitions: -1, ReplicationFactor: -1, ReplicaAssignment: []kmsg.CreateTopicsRequestTopicReplicaAssignment{{Partition: 0, Replicas: []int32{0}}, {Partition: 1, Replicas: []int32{0}}}},
		{Topic: "elsewhere", NumPartitions: -1, ReplicationFactor: -1, ReplicaAssignment: []kmsg.CreateTopicsRequestTopicReplicaAssignment{{Partition: 0, Replicas: []int32{5}}}},
		{Topic: "dup", NumPartitions: 1, ReplicationFactor: 1},
		{Topic: "dup", NumPartitions: 1, ReplicationFactor: 1},
	}
	cresp := rc.roundTrip(creq, 5).(*kmsg.CreateTopicsResponse)
	want := []int16{0, kerr.InvalidReplicaAssignment.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code}
	for i, rt := range cresp.Topics {
		if rt.ErrorCode != want[i] {
			t.Errorf("%s: error %d, want %d", rt.Topic, rt.ErrorCode, want[i])
		}
	}
	if info, err := ts.eng.Topic("assigned"); err != nil || info.Config.Partitions != 2 {
		t.Errorf("assigned: %+v %v", info, err)
	}

	dresp, err := adm.DeleteTopics(ctx, "a", "nope", engine.ConsumerOffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	if r := dresp["a"]; r.Err != nil {
		t.Errorf("delete a: %v", r.Err)
	}
	if r := dresp["nope"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("delete unknown: %v", r.Err)
	}
	if r := dresp[engine.ConsumerOffsetsTopic]; r.Err == nil {
		t.Error("deleted the internal topic")
	}
	if _, err := ts.eng.Topic("a"); err == nil {
		t.Error("topic a still exists")
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has("b") || topics.Has("a") {
		t.Errorf("topics after delete: %v", topics.Names())
	}
	if !logged(ts, "rejected create topic") || !logged(ts, "rejected delete topic") {
		t.Error("rejections not logged")
	}
}

func TestMetadata(t *testing.T) {
	for _, auto := range []bool{false, true} {
		t.Run("auto="+strconv.FormatBool(auto), func(t *testing.T) {
			ts := startServer(t, serverOpts{cfg: Config{AutoCreateTopics: auto, NumPartitions: 2, NodeID: 7}})
			if err := ts.eng.CreateTopic("known", engine.TopicConfig{Partitions: 3}); err != nil {
				t.Fatal(err)
			}
			rc := dialRaw(t, ts.addr)
			ask := func(v int16, allow bool, topics ...string) *kmsg.MetadataResponse {
				req := kmsg.NewPtrMetadataRequest()
				req.AllowAutoTopicCreation = allow
				if topics != nil {
					req.Topics = []kmsg.MetadataRequestTopic{}
					for _, tp := range topics {
						req.Topics = append(req.Topics, kmsg.MetadataRequestTopic{Topic: strp(tp)})
					}
				}
				return rc.roundTrip(req, v).(*kmsg.MetadataResponse)
			}
			r := ask(9, true, "known", "new1", "bad/name", "known")
			if len(r.Brokers) != 1 || r.Brokers[0].NodeID != 7 || r.ControllerID != 7 || r.ClusterID == nil {
				t.Fatalf("brokers %+v controller %d", r.Brokers, r.ControllerID)
			}
			host, port, _ := net.SplitHostPort(ts.addr)
			if r.Brokers[0].Host != host || strconv.Itoa(int(r.Brokers[0].Port)) != port {
				t.Errorf("advertised %s:%d, want the listener %s", r.Brokers[0].Host, r.Brokers[0].Port, ts.addr)
			}
			if len(r.Topics) != 3 {
				t.Fatalf("%d topics, want 3 (duplicates merged)", len(r.Topics))
			}
			k := r.Topics[0]
			if k.ErrorCode != 0 || len(k.Partitions) != 3 || k.IsInternal {
				t.Fatalf("known: %+v", k)
			}
			for i, p := range k.Partitions {
				if p.Partition != int32(i) || p.Leader != 7 || p.LeaderEpoch != 0 || len(p.Replicas) != 1 || p.Replicas[0] != 7 || len(p.ISR) != 1 || p.ISR[0] != 7 {
					t.Fatalf("partition %+v", p)
				}
			}
			if n := r.Topics[1]; auto && (n.ErrorCode != 0 || len(n.Partitions) != 2) || !auto && n.ErrorCode != kerr.UnknownTopicOrPartition.Code {
				t.Fatalf("new1 with auto=%v: %+v", auto, n)
			}
			if r.Topics[2].ErrorCode != kerr.InvalidTopicException.Code {
				t.Fatalf("bad/name: %+v", r.Topics[2])
			}
			// v4+: the client must allow auto-creation too.
			if n := ask(9, false, "new2").Topics[0]; n.ErrorCode != kerr.UnknownTopicOrPartition.Code {
				t.Fatalf("new2 not allowed by client: %+v", n)
			}
			// v0-3 imply it.
			if n := ask(3, false, "new3").Topics[0]; (n.ErrorCode == 0) != auto {
				t.Fatalf("new3 via v3: %+v", n)
			}
			// v1+: null is every topic, empty is none; v0: empty is every topic.
			all := ask(9, false)
			names := map[string]bool{}
			for _, tp := range all.Topics {
				names[*tp.Topic] = true
				if *tp.Topic == engine.ConsumerOffsetsTopic && !tp.IsInternal {
					t.Error("__consumer_offsets not flagged internal")
				}
			}
			if !names["known"] || !names[engine.ConsumerOffsetsTopic] || names["new1"] != auto {
				t.Fatalf("all topics: %v", names)
			}
			if none := ask(9, false, []string{}...); len(none.Topics) != 0 {
				t.Fatalf("empty list: %d topics", len(none.Topics))
			}
			if v0 := ask(0, false, []string{}...); len(v0.Topics) != len(all.Topics) {
				t.Fatalf("v0 empty list: %d topics, want %d", len(v0.Topics), len(all.Topics))
			}
		})
	}
}

func TestMetadataAdvertisedAddress(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{Host: "kafka.example", Port: 19092}})
	rc := dialRaw(t, ts.addr)
	r := rc.roundTrip(kmsg.NewPtrMetadataRequest(), 1).(*kmsg.MetadataResponse)
	if b := r.Brokers[0]; b.Host != "kafka.example" || b.Port != 19092 {
		t.Fatalf("advertised %+v", b)
	}
}

func TestDescribeConfigs(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{NodeID: 3, NumPartitions: 5}})
	createTopic(t, ts.addr, "cfg", 1, map[string]*string{"retention.ms": strp("12345"), "message.timestamp.type": strp("LogAppendTime")})
	adm := newAdmin(t, ts.addr)
	ctx := ctx10s(t)
	rcs, err := adm.DescribeTopicConfigs(ctx, "cfg", "missing")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	sources := map[string]kmsg.ConfigSource{}
	for _, rc := range rcs {
		if rc.Name == "missing" {
			if !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				t.Errorf("missing topic: %v", rc.Err)
			}
			continue
		}
		if rc.Err != nil {
			t.Fatal(rc.Err)
		}
		got[rc.Name] = map[string]string{}
		for _, c := range rc.Configs {
			got[rc.Name][c.Key] = c.MaybeValue()
			sources[c.Key] = c.Source
		}
	}
	want := map[string]string{}
	info, _ := ts.eng.Topic("cfg")
	for _, e := range info.Config.Entries() {
		want[e.Name] = e.Value
	}
	want["min.insync.replicas"], want["unclean.leader.election.enable"] = "1", "false"
	if len(got["cfg"]) != len(want) {
		t.Fatalf("configs %v, want %v", got["cfg"], want)
	}
	for k, v := range want {
		if got["cfg"][k] != v {
			t.Errorf("%s = %q, want %q", k, got["cfg"][k], v)
		}
	}
	if got["cfg"]["retention.ms"] != "12345" || sources["retention.ms"] != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms %q source %v", got["cfg"]["retention.ms"], sources["retention.ms"])
	}
	if got["cfg"]["message.timestamp.type"] != "LogAppendTime" {
		t.Errorf("message.timestamp.type %q", got["cfg"]["message.timestamp.type"])
	}
	if sources["segment.bytes"] != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("segment.bytes source %v, want default", sources["segment.bytes"])
	}

	// Only the names asked for, at every version.
	rc := dialRaw(t, ts.addr)
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.IncludeSynonyms = true
		req.Resources = []kmsg.DescribeConfigsRequestResource{
			{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cfg", ConfigNames: []string{"retention.ms", "no.such"}},
			{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "3"},
			{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "4"},
			{ResourceType: kmsg.ConfigResourceTypeBrokerLogger, ResourceName: "3"},
		}
		resp := rc.roundTrip(req, v).(*kmsg.DescribeConfigsResponse)
		r0 := resp.Resources[0]
		if r0.ErrorCode != 0 || len(r0.Configs) != 1 || r0.Configs[0].Name != "retention.ms" || *r0.Configs[0].Value != "12345" {
			t.Fatalf("v%d topic: %+v", v, r0)
		}
		broker := map[string]string{}
		for _, c := range resp.Resources[1].Configs {
			broker[c.Name] = *c.Value
		}
		if broker["node.id"] != "3" || broker["num.partitions"] != "5" || broker["auto.create.topics.enable"] != "false" {
			t.Fatalf("v%d broker configs %v", v, broker)
		}
		if resp.Resources[2].ErrorCode != kerr.InvalidRequest.Code || resp.Resources[3].ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("v%d other broker / logger: %d %d", v, resp.Resources[2].ErrorCode, resp.Resources[3].ErrorCode)
		}
	}
	bcs, err := adm.DescribeBrokerConfigs(ctx, 3)
	if err != nil || len(bcs) != 1 || bcs[0].Err != nil {
		t.Fatalf("kadm broker configs: %+v %v", bcs, err)
	}
}

func TestListOffsets(t *testing.T) {
	ts := startServer(t, serverOpts{})
	if err := ts.eng.CreateTopic("lo", engine.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p0, _ := ts.eng.Partition("lo", 0)
	// Batches: offsets 0-1 at t=1000,1500; 2-3 at 2000,2500; 4 at 3000.
	for _, ts := range [][]int64{{1000, 1500}, {2000, 2500}, {3000}} {
		var recs []record.Record
		for _, tm := range ts {
			recs = append(recs, record.Record{Timestamp: tm, Value: []byte("v")})
		}
		if _, err := p0.AppendRecords(0, recs...); err != nil {
			t.Fatal(err)
		}
	}
	adm := newAdmin(t, ts.addr)
	ctx := ctx10s(t)
	start, err := adm.ListStartOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := start.Lookup("lo", 0); o.Offset != 0 || o.Err != nil {
		t.Errorf("start: %+v", o)
	}
	if o, _ := end.Lookup("lo", 0); o.Offset != 5 || o.Err != nil {
		t.Errorf("end: %+v", o)
	}
	if o, _ := end.Lookup("lo", 1); o.Offset != 0 || o.Err != nil {
		t.Errorf("end of empty partition: %+v", o)
	}
	for _, c := range []struct{ ms, off, ts int64 }{
		{0, 0, 1000}, {1000, 0, 1000}, {1200, 1, 1500}, {1600, 2, 2000}, {2400, 3, 2500}, {3000, 4, 3000},
	} {
		after, err := adm.ListOffsetsAfterMilli(ctx, c.ms, "lo")
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := after.Lookup("lo", 0); o.Offset != c.off || o.Timestamp != c.ts || o.Err != nil {
			t.Errorf("after %d: %+v, want offset %d at %d", c.ms, o, c.off, c.ts)
		}
	}
	// Raw, every version: past the last record there is no offset.
	rc := dialRaw(t, ts.addr)
	for v := int16(1); v <= 6; v++ {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.Topics = []kmsg.ListOffsetsRequestTopic{
			{Topic: "lo", Partitions: []kmsg.ListOffsetsRequestTopicPartition{
				{Partition: 0, Timestamp: 9999, CurrentLeaderEpoch: -1},
				{Partition: 0, Timestamp: -2, CurrentLeaderEpoch: -1},
				{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1},
				{Partition: 9, Timestamp: -1, CurrentLeaderEpoch: -1},
				{Partition: 0, Timestamp: -7, CurrentLeaderEpoch: -1},
			}},
			{Topic: "nope", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1}}},
		}
		resp := rc.roundTrip(req, v).(*kmsg.ListOffsetsResponse)
		ps := resp.Topics[0].Partitions
		if ps[0].ErrorCode != 0 || ps[0].Offset != -1 || ps[0].Timestamp != -1 {
			t.Errorf("v%d after the end: %+v", v, ps[0])
		}
		if ps[1].Offset != 0 || ps[2].Offset != 5 {
			t.Errorf("v%d earliest %d latest %d", v, ps[1].Offset, ps[2].Offset)
		}
		if ps[3].ErrorCode != kerr.UnknownTopicOrPartition.Code || ps[4].ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("v%d errors %d %d", v, ps[3].ErrorCode, ps[4].ErrorCode)
		}
		if resp.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("v%d unknown topic: %+v", v, resp.Topics[1].Partitions[0])
		}
		if v >= 4 && ps[2].LeaderEpoch != 0 {
			t.Errorf("v%d leader epoch %d", v, ps[2].LeaderEpoch)
		}
	}
}

func TestInitProducerID(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverOpts{cfg: Config{DataDir: dir}})
	rc := dialRaw(t, ts.addr)
	seen := map[int64]bool{}
	var last int64
	for v := range int16(5) {
		for range 3 {
			r := rc.roundTrip(kmsg.NewPtrInitProducerIDRequest(), v).(*kmsg.InitProducerIDResponse)
			if r.ErrorCode != 0 || r.ProducerID <= 0 || r.ProducerEpoch != 0 || seen[r.ProducerID] {
				t.Fatalf("v%d: %+v", v, r)
			}
			seen[r.ProducerID] = true
			last = max(last, r.ProducerID)
		}
	}
	txn := kmsg.NewPtrInitProducerIDRequest()
	txn.TransactionalID = strp("tx")
	if r := rc.roundTrip(txn, 4).(*kmsg.InitProducerIDResponse); r.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code || r.ProducerID != -1 {
		t.Fatalf("transactional: %+v", r)
	}
	// A new broker on the same directory never reuses an id.
	b2 := New(ts.eng, Config{DataDir: dir, Logger: ts.b.log})
	id, err := b2.pids.alloc()
	if err != nil || id <= last {
		t.Fatalf("after restart: id %d (last %d), %v", id, last, err)
	}
	if b2.clusterID != ts.b.clusterID || len(b2.clusterID) != 22 {
		t.Fatalf("cluster id %q then %q", ts.b.clusterID, b2.clusterID)
	}
	// A corrupt file is an error, not a reuse.
	if err := os.WriteFile(filepath.Join(dir, producerIDFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	b3 := New(ts.eng, Config{DataDir: dir, Logger: ts.b.log})
	if _, err := b3.pids.alloc(); !errors.Is(err, errProducerIDSource) {
		t.Fatalf("corrupt producer id file: %v", err)
	}
	// No DataDir: ids from the clock, still unique.
	b4 := New(ts.eng, Config{Logger: ts.b.log})
	a, _ := b4.pids.alloc()
	c, _ := b4.pids.alloc()
	if a <= 0 || c != a+1 || b4.clusterID != defaultClusterID {
		t.Fatalf("no data dir: ids %d %d, cluster %q", a, c, b4.clusterID)
	}
}

// franz-go's default producer is idempotent: it must work end to end.
func TestKgoIdempotentDefault(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{AutoCreateTopics: true}})
	cl := newClient(t, ts.addr, kgo.DefaultProduceTopic("auto"), kgo.AllowAutoTopicCreation())
	produceAll(t, cl, &kgo.Record{Value: []byte("x")}, &kgo.Record{Value: []byte("y")})
	if got := consumeN(t, ts.addr, "auto", 2); string(got[0].Value)+string(got[1].Value) != "xy" {
		t.Fatalf("got %q %q", got[0].Value, got[1].Value)
	}
	info, err := ts.eng.Topic("auto")
	if err != nil || info.Config.Partitions != 1 {
		t.Fatalf("auto-created topic: %+v %v", info, err)
	}
}
