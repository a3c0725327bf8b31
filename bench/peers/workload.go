package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// workload is one cell of the matrix: what is produced and how it is acked.
type workload struct {
	Size       int    // record value bytes
	Partitions int    // partitions (streams, logs) written round-robin
	Acks       string // "1" or "all" (Kafka-protocol targets)
	Codec      string // "none", "lz4", "zstd"
	Sync       bool   // fsync every append (embedded targets, flush.messages=1)
}

// key names the workload in tables and JSON.
func (w workload) key() string {
	s := fmt.Sprintf("%s/p%d/acks=%s/%s", sizeName(w.Size), w.Partitions, w.Acks, w.Codec)
	if w.Sync {
		s += "/fsync"
	}
	return s
}

// sizeName prints a record size as 100B, 1KiB, 16KiB.
func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// codecID maps a codec name to its Kafka id.
func codecID(name string) (int8, error) {
	switch name {
	case "", "none":
		return codec.None, nil
	case "lz4":
		return codec.LZ4, nil
	case "zstd":
		return codec.Zstd, nil
	}
	return 0, fmt.Errorf("peers: unknown codec %q", name)
}

// batchTarget is the uncompressed size the pre-built batches aim for, like a
// busy Kafka producer's batch.
const batchTarget = 64 << 10

// recordsPerBatch is how many records of size bytes make one batch.
func recordsPerBatch(size int) int {
	n := batchTarget / (size + 16)
	return max(1, min(n, 1000))
}

// payloads is a pool of text-like bytes that compresses about 2:1 with lz4,
// so that compressed runs mean something. Records are windows into it at
// scattered offsets, so a batch holds no repeated record.
type payloads struct{ pool []byte }

var (
	payloadOnce sync.Once
	payloadPool payloads
)

// sharedPayloads returns the process-wide payload pool.
func sharedPayloads() *payloads {
	payloadOnce.Do(func() {
		words := []string{"easel", "kafka", "offset", "partition", "segment", "broker",
			"record", "batch", "fetch", "produce", "leader", "replica", "index", "commit",
			"the", "a", "of", "and", "to", "in", "log", "time", "value", "key", "header"}
		r := rand.New(rand.NewPCG(1, 2))
		b := make([]byte, 0, 4<<20+64)
		for len(b) < 4<<20 {
			if r.IntN(3) == 0 {
				b = fmt.Appendf(b, "%d ", r.Uint32())
			} else {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, ' ')
			}
		}
		payloadPool.pool = b[:4<<20]
	})
	return &payloadPool
}

// get returns record i's payload of size bytes (a view into the pool: do not
// modify). Sizes larger than the pool are cut to it.
func (p *payloads) get(i, size int) []byte {
	size = min(size, len(p.pool))
	span := len(p.pool) - size + 1
	off := int((uint64(i) * 2654435761) % uint64(span))
	return p.pool[off : off+size : off+size]
}

// buildBatch builds one record batch v2 of n records of size bytes, starting
// at payload number first, compressed with w's codec. The batch is not
// idempotent (producerId -1).
func buildBatch(w workload, first, n int) ([]byte, error) {
	id, err := codecID(w.Codec)
	if err != nil {
		return nil, err
	}
	b := record.NewBuilder(record.BuilderOptions{Codec: id, PartitionLeaderEpoch: -1})
	pl := sharedPayloads()
	now := time.Now().UnixMilli()
	for i := range n {
		b.Add(record.Record{Timestamp: now, Value: pl.get(first+i, w.Size)})
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		return nil, fmt.Errorf("peers: build batch: %w", err)
	}
	return out, nil
}

// latency summarises an HDR histogram of microseconds.
type latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// newHist returns a histogram of 1 µs to 10 min with 3 significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 600_000_000, 3) }

func summarise(h *hdrhistogram.Histogram) *latency {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	return &latency{
		Count: h.TotalCount(),
		P50:   float64(h.ValueAtQuantile(50)),
		P99:   float64(h.ValueAtQuantile(99)),
		P999:  float64(h.ValueAtQuantile(99.9)),
		Max:   float64(h.Max()),
	}
}

// acker collects produce acknowledgements from any goroutine: counts per
// partition, a latency histogram, and the first error.
type acker struct {
	recs    atomic.Int64
	perPart []atomic.Int64 // acked records per partition
	mu      struct {
		sync.Mutex
		hist *hdrhistogram.Histogram
		err  error
	}
}

func newAcker(partitions int) *acker {
	a := &acker{perPart: make([]atomic.Int64, partitions)}
	a.mu.hist = newHist()
	return a
}

// ack records that a send of recs records to part, started at t0 (UnixNano
// of the monotonic-backed wall clock), finished with err.
func (a *acker) ack(part int, t0 int64, recs int, err error) {
	if err != nil {
		a.mu.Lock()
		if a.mu.err == nil {
			a.mu.err = err
		}
		a.mu.Unlock()
		return
	}
	us := (nowNano() - t0) / 1000
	a.recs.Add(int64(recs))
	a.perPart[part].Add(int64(recs))
	a.mu.Lock()
	_ = a.mu.hist.RecordValue(max(us, 1))
	a.mu.Unlock()
}

func (a *acker) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.err
}

func (a *acker) latency() *latency {
	a.mu.Lock()
	defer a.mu.Unlock()
	return summarise(a.mu.hist)
}

// epoch anchors nowNano to the monotonic clock.
var epoch = time.Now()

// nowNano is nanoseconds since the process started, from the monotonic clock.
func nowNano() int64 { return int64(time.Since(epoch)) }

// sendLog remembers, per partition, when each produced unit was handed to the
// client, so that a consumer counting records can compute end-to-end latency
// without decoding payloads: the k-th record of a partition is the k-th record
// sent to it (one producer per partition, sending in order).
type sendLog struct {
	parts []sendQueue
	mu    struct {
		sync.Mutex
		hist *hdrhistogram.Histogram
	}
}

type sendQueue struct {
	mu   sync.Mutex
	ents []sendEntry // Invariant: ents[i].cum is increasing
	head int
	sent int64 // records sent so far
	seen int64 // records consumed so far
}

type sendEntry struct {
	cum int64 // records sent to the partition up to and including this unit
	t0  int64 // nowNano when the unit was sent
}

func newSendLog(partitions int) *sendLog {
	l := &sendLog{parts: make([]sendQueue, partitions)}
	l.mu.hist = newHist()
	return l
}

// sent notes a unit of recs records sent to part at t0.
func (l *sendLog) sent(part int, t0 int64, recs int) {
	q := &l.parts[part]
	q.mu.Lock()
	q.sent += int64(recs)
	q.ents = append(q.ents, sendEntry{cum: q.sent, t0: t0})
	q.mu.Unlock()
}

// seen notes recs more records consumed from part and records the latency of
// every unit they complete.
func (l *sendLog) seen(part int, recs int) {
	now := nowNano()
	q := &l.parts[part]
	var lat [64]int64
	n := 0
	q.mu.Lock()
	q.seen += int64(recs)
	for q.head < len(q.ents) && q.ents[q.head].cum <= q.seen {
		if n == len(lat) {
			l.record(lat[:n])
			n = 0
		}
		lat[n] = (now - q.ents[q.head].t0) / 1000
		n++
		q.head++
	}
	if q.head > 4096 && q.head*2 > len(q.ents) {
		q.ents = append(q.ents[:0], q.ents[q.head:]...)
		q.head = 0
	}
	q.mu.Unlock()
	l.record(lat[:n])
}

func (l *sendLog) record(us []int64) {
	if len(us) == 0 {
		return
	}
	l.mu.Lock()
	for _, v := range us {
		_ = l.mu.hist.RecordValue(max(v, 1))
	}
	l.mu.Unlock()
}

func (l *sendLog) latency() *latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	return summarise(l.mu.hist)
}
