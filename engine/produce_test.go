package engine

import (
	"errors"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// A Produce whose append to one partition fails still stores the others and
// says which records were stored.
func TestProducePartialFailure(t *testing.T) {
	e := mustOpen(t, t.TempDir(), quietOpts())
	defer e.Close()
	if err := e.CreateTopic("t", TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p1, _ := e.Partition("t", 1)
	p1.close() // appends to partition 1 now fail with ErrClosed
	var recs []record.Record
	for i := range 40 {
		recs = append(recs, record.Record{Key: []byte{byte(i)}, Value: []byte("v")})
	}
	offs, err := e.Produce("t", codec.None, recs...)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	p0, _ := e.Partition("t", 0)
	stored, failed := 0, 0
	for i, off := range offs {
		if off == -1 {
			failed++
			continue
		}
		stored++
		if off < 0 || off >= p0.EndOffset() {
			t.Fatalf("record %d: offset %d outside partition 0's log", i, off)
		}
	}
	if stored == 0 || failed == 0 || int64(stored) != p0.EndOffset() {
		t.Fatalf("stored %d, failed %d, partition 0 holds %d", stored, failed, p0.EndOffset())
	}
}
