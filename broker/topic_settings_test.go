package broker

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/codec"
)

// TestCompressionTypeRecompress produces snappy batches to a zstd topic:
// a consumer's fetches carry zstd batches that decode to the records
// produced, and an idempotent producer's retries still work.
func TestCompressionTypeRecompress(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "z", 1, map[string]*string{"compression.type": strp("zstd")})
	pr := newClient(t, ts.addr, kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.ProducerLinger(0))
	ctx := ctx10s(t)
	const n = 50
	for i := range n {
		r := &kgo.Record{Topic: "z", Key: []byte(fmt.Sprint("k", i)), Value: bytes.Repeat([]byte{byte(i)}, 200),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}}}
		if err := pr.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	got := consumeN(t, ts.addr, "z", n)
	for i, r := range got {
		if c := r.Attrs.CompressionType(); c != uint8(codec.Zstd) {
			t.Fatalf("record %d fetched in a batch of codec %d, want zstd", i, c)
		}
		if string(r.Key) != fmt.Sprint("k", i) || !bytes.Equal(r.Value, bytes.Repeat([]byte{byte(i)}, 200)) ||
			len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) || r.Offset != int64(i) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}

// TestTimestampBoundsProduce checks message.timestamp.before.max.ms and
// after.max.ms on produce: records outside the bounds get
// INVALID_TIMESTAMP and are not stored, records inside are.
func TestTimestampBoundsProduce(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "ts", 1, map[string]*string{
		"message.timestamp.before.max.ms": strp("3600000"),
		"message.timestamp.after.max.ms":  strp("60000"),
	})
	pr := newClient(t, ts.addr, kgo.ProducerLinger(0))
	ctx := ctx10s(t)
	now := time.Now()
	for _, tc := range []struct {
		at   time.Time
		want error
	}{
		{now, nil},
		{now.Add(-2 * time.Hour), kerr.InvalidTimestamp},
		{now.Add(10 * time.Minute), kerr.InvalidTimestamp},
		{now.Add(-30 * time.Minute), nil},
	} {
		err := pr.ProduceSync(ctx, &kgo.Record{Topic: "ts", Value: []byte("v"), Timestamp: tc.at}).FirstErr()
		if !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
			t.Errorf("timestamp %v: %v, want %v", tc.at.Sub(now), err, tc.want)
		}
	}
	p, _ := ts.eng.Partition("ts", 0)
	if p.EndOffset() != 2 {
		t.Fatalf("%d records stored, want the 2 within bounds", p.EndOffset())
	}
}

// TestDescribeLogDirs checks DescribeLogDirs through kadm: the data
// directory's absolute path, each partition's size as the engine has it,
// the file system's sizes, and the topic filter.
func TestDescribeLogDirs(t *testing.T) {
	ts := startServer(t, serverOpts{})
	createTopic(t, ts.addr, "ld", 2, nil)
	createTopic(t, ts.addr, "other", 1, nil)
	pr := newClient(t, ts.addr, kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := ctx10s(t)
	for i := range 10 {
		if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "ld", Partition: int32(i % 2), Value: make([]byte, 100)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := newAdmin(t, ts.addr)
	all, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(ts.dir)
	dirs := all[0]
	d, ok := dirs[abs]
	if len(dirs) != 1 || !ok || d.Err != nil {
		t.Fatalf("log dirs %+v, want one at %s", dirs, abs)
	}
	if d.TotalBytes <= 0 || d.UsableBytes < 0 || d.UsableBytes > d.TotalBytes {
		t.Fatalf("sizes: total %d usable %d", d.TotalBytes, d.UsableBytes)
	}
	for i := int32(0); i < 2; i++ {
		p, _ := ts.eng.Partition("ld", i)
		got := d.Topics["ld"][i]
		if got.Size != p.Size() || got.Size == 0 || got.OffsetLag != 0 {
			t.Fatalf("ld/%d: %+v, engine size %d", i, got, p.Size())
		}
	}
	if _, ok := d.Topics["other"][0]; !ok {
		t.Fatal("topic other missing from the unfiltered answer")
	}
	some, err := adm.DescribeBrokerLogDirs(ctx, 0, kadm.TopicsSet{"ld": {1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	sd := some[abs]
	if len(sd.Topics) != 1 || len(sd.Topics["ld"]) != 1 || sd.Topics["ld"][1].Size == 0 {
		t.Fatalf("filtered: %+v", sd.Topics)
	}
}
