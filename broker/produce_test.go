package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/engine"
)

// produceAll produces recs synchronously and fails on any error.
func produceAll(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestProduceConsumeCodecsAndAcks(t *testing.T) {
	ts := startServer(t, serverOpts{})
	codecs := []struct {
		name string
		c    kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	acks := []struct {
		name string
		opts []kgo.Opt
	}{
		{"acks0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
		{"acks1", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
		{"acksall", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}}, // idempotent
	}
	const n = 300
	for _, c := range codecs {
		for _, a := range acks {
			t.Run(c.name+"/"+a.name, func(t *testing.T) {
				t.Parallel()
				topic := "codec-" + c.name + "-" + a.name
				var cfg map[string]*string
				if a.name == "acksall" {
					cfg = map[string]*string{"flush.messages": strp("1")} // fsync before acking
				}
				createTopic(t, ts.addr, topic, 3, cfg)
				opts := append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(c.c), kgo.ProducerLinger(time.Millisecond)}, a.opts...)
				cl := newClient(t, ts.addr, opts...)
				recs := make([]*kgo.Record, n)
				for i := range recs {
					recs[i] = &kgo.Record{
						Key:     []byte("key-" + strconv.Itoa(i%17)),
						Value:   bytes.Repeat([]byte(strconv.Itoa(i)), 20),
						Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}},
					}
				}
				produceAll(t, cl, recs...)
				got := consumeN(t, ts.addr, topic, n)
				checkRecords(t, got, n)
			})
		}
	}
}

// checkRecords checks that got holds records 0..n-1 as produced above, each
// once, in order within each partition.
func checkRecords(t testing.TB, got []*kgo.Record, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d records, want %d", len(got), n)
	}
	seen := make([]bool, n)
	last := map[int32]int64{}
	for _, r := range got {
		if len(r.Headers) != 1 {
			t.Fatalf("record at %d/%d has %d headers", r.Partition, r.Offset, len(r.Headers))
		}
		i, err := strconv.Atoi(string(r.Headers[0].Value))
		if err != nil || i < 0 || i >= n || seen[i] {
			t.Fatalf("bad or duplicate record %q at %d/%d", r.Headers[0].Value, r.Partition, r.Offset)
		}
		seen[i] = true
		if want := bytes.Repeat([]byte(strconv.Itoa(i)), 20); !bytes.Equal(r.Value, want) {
			t.Fatalf("record %d: value %q", i, r.Value)
		}
		if prev, ok := last[r.Partition]; ok && r.Offset != prev+1 {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
		}
		last[r.Partition] = r.Offset
	}
}

// An idempotent producer whose produce responses are lost (the connection
// dies after the broker appended) retries, and the broker's deduplication
// keeps every record exactly once.
func TestIdempotentRetriesNoDuplicates(t *testing.T) {
	proxy := newDropProxy(t, 3, 10)
	host, port := proxy.hostPort()
	ts := startServer(t, serverOpts{cfg: Config{Host: host, Port: port}})
	proxy.target = ts.addr
	go proxy.serve()
	createTopic(t, ts.addr, "idem", 2, nil)

	cl := newClient(t, proxy.ln.Addr().String(),
		kgo.DefaultProduceTopic("idem"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }),
	)
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		r := &kgo.Record{
			Key:     []byte("k" + strconv.Itoa(i%2)),
			Value:   bytes.Repeat([]byte(strconv.Itoa(i)), 20),
			Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}},
		}
		cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
		if i%8 == 0 {
			time.Sleep(2 * time.Millisecond) // spread over many requests
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if proxy.dropped() == 0 {
		t.Fatal("the proxy dropped no produce response; the test proves nothing")
	}
	t.Logf("dropped %d produce responses", proxy.dropped())
	checkRecords(t, consumeN(t, ts.addr, "idem", n), n)
	end, err := newAdmin(t, ts.addr).ListEndOffsets(context.Background(), "idem")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	end.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("partitions hold %d records, want %d: duplicates", total, n)
	}
}

func TestLargeRecords(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "big", 1, map[string]*string{"max.message.bytes": strp(strconv.Itoa(3 << 20))})
	cl := newClient(t, ts.addr, kgo.DefaultProduceTopic("big"), kgo.ProducerBatchMaxBytes(3<<20), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	const n = 6
	var recs []*kgo.Record
	for i := range n {
		v := make([]byte, 1<<20)
		rand.Read(v)
		v[0], v[len(v)-1] = byte('a'+i), byte('a'+i)
		recs = append(recs, &kgo.Record{Value: v})
	}
	produceAll(t, cl, recs...)
	// The default partition max bytes (1 MiB) is smaller than one record:
	// the first batch must come whole anyway.
	got := consumeN(t, ts.addr, "big", n, kgo.FetchMaxPartitionBytes(1<<20), kgo.FetchMaxBytes(1<<20))
	for i, r := range got {
		if len(r.Value) != 1<<20 || r.Value[0] != byte('a'+i) || r.Value[len(r.Value)-1] != byte('a'+i) {
			t.Fatalf("record %d: %d bytes starting %q", i, len(r.Value), r.Value[:1])
		}
	}
	// Above max.message.bytes the batch is refused.
	small := newClient(t, ts.addr, kgo.DefaultProduceTopic("big"), kgo.ProducerBatchMaxBytes(8<<20), kgo.RecordRetries(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := small.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 4<<20)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("4 MiB record to a topic with max.message.bytes 3 MiB: %v, want MESSAGE_TOO_LARGE", err)
	}
}

func TestManyPartitions(t *testing.T) {
	// In memory: on this machine's ext4 the disk store needs ~10-25 s to
	// create, first-append to, close and remove 1000 partitions (fsyncs,
	// and ~8 ms for the first write fault into each fresh 10 MiB index
	// mapping), which is the engine's business and too slow for this
	// package's test budget. The protocol paths are the same.
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	const parts = 1000
	start := time.Now()
	createTopic(t, ts.addr, "wide", parts, nil)
	t.Logf("created %d partitions in %v", parts, time.Since(start))
	cl := newClient(t, ts.addr, kgo.DefaultProduceTopic("wide"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite())
	var recs []*kgo.Record
	for i := range 2 * parts {
		recs = append(recs, &kgo.Record{
			Partition: int32(i % parts),
			Value:     bytes.Repeat([]byte(strconv.Itoa(i)), 20),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}},
		})
	}
	start = time.Now()
	produceAll(t, cl, recs...)
	t.Logf("produced %d records in %v", len(recs), time.Since(start))
	start = time.Now()
	got := consumeN(t, ts.addr, "wide", len(recs))
	t.Logf("consumed %d records in %v", len(got), time.Since(start))
	checkRecords(t, got, len(recs))
	per := map[int32]int{}
	for _, r := range got {
		per[r.Partition]++
	}
	for p := range int32(parts) {
		if per[p] != 2 {
			t.Fatalf("partition %d has %d records, want 2", p, per[p])
		}
	}
}

func TestConcurrentProducersConsumers(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "busy", 8, nil)
	const producers, per, consumers = 6, 500, 3
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(t, ts.addr, kgo.DefaultProduceTopic("busy"), kgo.ProducerLinger(time.Millisecond))
			recs := make([]*kgo.Record, per)
			for i := range recs {
				id := p*per + i
				recs[i] = &kgo.Record{
					Key:     []byte(strconv.Itoa(id)),
					Value:   bytes.Repeat([]byte(strconv.Itoa(id)), 20),
					Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(id))}},
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Error(err)
			}
		}()
	}
	results := make([][]*kgo.Record, consumers)
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[c] = consumeN(t, ts.addr, "busy", producers*per)
		}()
	}
	wg.Wait()
	for c := range consumers {
		checkRecords(t, results[c], producers*per)
	}
}

// BenchmarkProduce measures produce throughput over loopback with franz-go:
// acks=1, no idempotence, 5 requests in flight.
func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ts := startServer(b, serverOpts{})
			createTopic(b, ts.addr, "bench", 1, nil)
			cl := newClient(b, ts.addr,
				kgo.DefaultProduceTopic("bench"),
				kgo.RequiredAcks(kgo.LeaderAck()),
				kgo.DisableIdempotentWrite(),
				kgo.MaxProduceRequestsInflightPerBroker(5),
				kgo.ProducerLinger(0),
				kgo.MaxBufferedRecords(1<<20),
			)
			value := bytes.Repeat([]byte("x"), size)
			var wg sync.WaitGroup
			var failed sync.Once
			cb := func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Do(func() { b.Error(err) })
				}
				wg.Done()
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				wg.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Value: value}, cb)
			}
			wg.Wait()
		})
	}
}
