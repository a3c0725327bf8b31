package broker

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/cluster"
)

// BenchmarkClusterProduce measures produce throughput on a 3-broker
// in-process cluster over loopback (127.0.0.21-23), one franz-go client
// writing 1 KiB random records (incompressible, sent uncompressed)
// asynchronously to one partition: RF 3 with
// acks=all (idempotent) and acks=1, and RF 1 with acks=1 on the same
// cluster, so the ratios compare replication's cost in one run. All three
// brokers share the machine's cores, as on one host.
//
//	go test -run '^$' -bench BenchmarkClusterProduce -benchtime 200000x -count 3 ./broker/
func BenchmarkClusterProduce(b *testing.B) {
	c := newTestBrokers(b, 1, 2, 3)
	c.waitFor("every broker ready", 30*time.Second, c.allReady)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClusterClient(b, c.running()))
	n := 0
	for _, w := range []struct {
		name string
		rf   int16
		acks kgo.Acks
	}{{"rf3/acks=all", 3, kgo.AllISRAcks()}, {"rf3/acks=1", 3, kgo.LeaderAck()}, {"rf1/acks=1", 1, kgo.LeaderAck()}} {
		b.Run(w.name, func(b *testing.B) {
			n++
			topic := "bench-" + w.name[:3] + "-" + string(rune('a'+n))
			if res, err := adm.CreateTopic(ctx, 1, w.rf, nil, topic); err != nil || res.Err != nil {
				b.Fatalf("create topic: %v %v", err, res.Err)
			}
			c.waitFor("the partition led with its full ISR", 20*time.Second, func() bool {
				ok := false
				c.members[1].node.View(func(s *cluster.State) {
					if p := s.Partition(topic, 0); p != nil {
						ok = p.Leader >= 0 && len(p.ISR) == int(w.rf)
					}
				})
				return ok
			})
			opts := []kgo.Opt{kgo.RequiredAcks(w.acks), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0),
				kgo.ProducerBatchCompression(kgo.NoCompression())}
			if w.acks != kgo.AllISRAcks() {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			cl := newClusterClient(b, c.running(), opts...)
			// Warm up: metadata, connections, the leader's first epoch.
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 1024)}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 1024)
			rand.Read(value)
			var wg sync.WaitGroup
			var once sync.Once
			var firstErr error
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			for range b.N {
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						once.Do(func() { firstErr = err })
					}
					wg.Done()
				})
			}
			wg.Wait()
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
		})
	}
}
