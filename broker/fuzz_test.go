package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

// fuzzSeeds returns a valid body for every served key and version.
func fuzzSeeds(t testing.TB) [][3]any {
	var seeds [][3]any
	batch := makeBatch(t, batchOpts{nrecords: 2})
	for i, a := range apiList() {
		for v := a.min; v <= a.max; v++ {
			req := kmsg.RequestForKey(a.key)
			switch r := req.(type) {
			case *kmsg.ProduceRequest:
				r.Acks = 1
				r.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: batch}}}}
			case *kmsg.FetchRequest:
				r.MaxBytes, r.MaxWaitMillis = 1<<20, 5
				r.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 100}}}}
			case *kmsg.ListOffsetsRequest:
				r.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: 1}}}}
			case *kmsg.MetadataRequest:
				r.Topics = []kmsg.MetadataRequestTopic{{Topic: strp("auto")}}
			case *kmsg.CreateTopicsRequest:
				r.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "c", NumPartitions: 2, ReplicationFactor: 1,
					Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms", Value: strp("1000")}}}}
			case *kmsg.DeleteTopicsRequest:
				r.TopicNames = []string{"c"}
			case *kmsg.DeleteRecordsRequest:
				r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "t", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 1, Offset: -1}}}}
			case *kmsg.OffsetForLeaderEpochRequest:
				r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{CurrentLeaderEpoch: -1}}}}
			case *kmsg.DescribeConfigsRequest:
				r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"},
					{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "0"}}
				r.IncludeSynonyms, r.IncludeDocumentation = true, true
			case *kmsg.DescribeLogDirsRequest:
				r.Topics = []kmsg.DescribeLogDirsRequestTopic{{Topic: "t", Partitions: []int32{0, 1, 7}}}
			case *kmsg.OffsetDeleteRequest:
				r.Group = "g"
				r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			}
			req.SetVersion(v)
			seeds = append(seeds, [3]any{uint8(i), v, req.AppendTo(nil)})
		}
	}
	return seeds
}

// FuzzHandle feeds arbitrary bodies for every served api key and arbitrary
// versions into Broker.Handle: it must never panic, must release what it
// holds, and must produce an encodable response.
func FuzzHandle(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s[0].(uint8), s[1].(int16), s[2].([]byte))
	}
	f.Add(uint8(0), int16(9), []byte{0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x7f})
	f.Add(uint8(4), int16(77), []byte{})

	eng, err := engine.Open(f.TempDir(), engine.Options{Store: engine.NewMemoryStore(), Logger: discardLogger(), RetentionCheckInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	if err := eng.CreateTopic("t", engine.TopicConfig{Partitions: 2}); err != nil {
		f.Fatal(err)
	}
	p, _ := eng.Partition("t", 0)
	appendN(f, p, 3, 2, 20)
	b := New(eng, Config{AutoCreateTopics: true, Logger: discardLogger()})
	conn := &netio.ConnInfo{ID: 1}

	f.Fuzz(func(t *testing.T, k uint8, version int16, body []byte) {
		key := int16(k)
		if int(k) < len(apiList()) {
			key = apiList()[k].key
		}
		req := &netio.Request{APIKey: key, APIVersion: version, Flexible: isFlexible(key, version), Body: body, Conn: conn}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		resp := b.Handle(ctx, req)
		if resp.Deferred != (netio.Deferred{}) {
			// Parked: its context ends it; on a hand-made request Complete
			// only runs Done.
			waitIdle(t, b)
			cancel()
			return
		}
		cancel()
		if resp.Msg != nil {
			resp.Msg.AppendTo(nil)
		}
		for _, part := range resp.Parts {
			if part.File != nil && (part.Offset < 0 || part.Length < 0) {
				t.Fatalf("bad file part %+v", part)
			}
		}
		if resp.Done != nil {
			resp.Done()
		}
		// Keep the engine small: drop topics the inputs created.
		if topics := eng.Topics(); len(topics) > 16 {
			for _, ti := range topics {
				if ti.Name != "t" && !ti.Internal {
					eng.DeleteTopic(ti.Name)
				}
			}
		}
	})
}
