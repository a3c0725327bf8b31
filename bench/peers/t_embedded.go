package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/tidwall/wal"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// embeddedWorkers bounds the goroutines appending to an embedded target.
const embeddedWorkers = 4

// readChunk is the most bytes an embedded consumer reads at a time.
const readChunk = 1 << 20

// easelEmbedded drives the engine API in this process: Partition.Append of
// pre-built batches, ReadBatches copied into a buffer as a consumer would.
//
// With prealloc it is the target easel-embedded-prealloc: the same with
// segment.Config.Preallocate (Kafka's preallocate), every .log fallocated to
// segment.bytes when it is created and trimmed when it is sealed or closed.
type easelEmbedded struct {
	dir      string
	prealloc bool
	eng      *engine.Engine
	seq      atomic.Int64
}

func newEaselEmbedded(dir string, prealloc bool) (*easelEmbedded, error) {
	opts := engine.Options{RetentionCheckInterval: -1, Logger: slog.New(slog.DiscardHandler),
		Segment: segment.Config{Preallocate: prealloc}}
	eng, err := engine.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("easel-embedded: %w", err)
	}
	return &easelEmbedded{dir: dir, prealloc: prealloc, eng: eng}, nil
}

func (e *easelEmbedded) name() string {
	if e.prealloc {
		return "easel-embedded-prealloc"
	}
	return "easel-embedded"
}

// diskBytes is the disk the engine's files hold (du), preallocated reserves
// included.
func (e *easelEmbedded) diskBytes() int64 { return diskUsage(e.dir) }
func (e *easelEmbedded) gen() string      { return "api" }
func (e *easelEmbedded) pid() int         { return 0 }
func (e *easelEmbedded) close() error     { return e.eng.Close() }

func (e *easelEmbedded) skip(w workload) string {
	if w.Acks == "all" {
		return "acks=all means nothing without a network; see fsync runs"
	}
	return ""
}

func (e *easelEmbedded) open(_ context.Context, w workload) (stream, error) {
	topic := fmt.Sprintf("bench-%d", e.seq.Add(1))
	cfg := engine.TopicConfig{Partitions: int32(w.Partitions), RetentionMs: -1}
	if w.Sync {
		cfg.FlushMessages = 1
	}
	if err := e.eng.CreateTopic(topic, cfg); err != nil {
		return nil, err
	}
	s := &easelStream{e: e, topic: topic, w: w}
	for i := range w.Partitions {
		p, err := e.eng.Partition(topic, int32(i))
		if err != nil {
			return nil, err
		}
		s.parts = append(s.parts, p)
	}
	return s, nil
}

type easelStream struct {
	e     *easelEmbedded
	topic string
	w     workload
	parts []*engine.Partition
}

func (s *easelStream) close(context.Context) error { return s.e.eng.DeleteTopic(s.topic) }

func (s *easelStream) producer(a *acker, l *sendLog) (producer, error) {
	n := recordsPerBatch(s.w.Size)
	batch, err := buildBatch(s.w, 0, n)
	if err != nil {
		return nil, err
	}
	nw := min(s.w.Partitions, embeddedWorkers)
	p := &easelProducer{s: s, a: a, l: l, n: n, bufs: make([][]byte, nw)}
	for i := range p.bufs {
		p.bufs[i] = append([]byte(nil), batch...) // Append rewrites baseOffset in place
	}
	return p, nil
}

type easelProducer struct {
	s    *easelStream
	a    *acker
	l    *sendLog
	n    int
	bufs [][]byte // one per worker
}

func (p *easelProducer) workers() int        { return len(p.bufs) }
func (p *easelProducer) recordsPerSend() int { return p.n }
func (p *easelProducer) flush(context.Context) error {
	return nil
}
func (p *easelProducer) close() error { return nil }

func (p *easelProducer) send(wi, part int, t0 int64) error {
	if p.l != nil {
		p.l.sent(part, t0, p.n)
	}
	_, err := p.s.parts[part].Append(p.bufs[wi])
	p.a.ack(part, t0, p.n, err)
	return err
}

func (s *easelStream) consumer() (consumer, error) { return &easelConsumer{s: s}, nil }

type easelConsumer struct{ s *easelStream }

func (c *easelConsumer) close() error { return nil }

func (c *easelConsumer) run(ctx context.Context, got func(part, recs int)) error {
	nw := min(len(c.s.parts), embeddedWorkers)
	return runConsumerWorkers(ctx, nw, func(wi int) error { return c.worker(ctx, wi, nw, got) })
}

// worker reads its partitions round-robin, copying each chunk into buf
// (what handing the bytes to an application costs) and counting records from
// the batch headers.
func (c *easelConsumer) worker(ctx context.Context, wi, nw int, got func(part, recs int)) error {
	buf := make([]byte, 0, readChunk+64<<10)
	var mine []int
	for p := wi; p < len(c.s.parts); p += nw {
		mine = append(mine, p)
	}
	next := make([]int64, len(mine))
	for ctx.Err() == nil {
		progressed := false
		for i, p := range mine {
			part := c.s.parts[p]
			if next[i] >= part.EndOffset() {
				continue
			}
			ch, err := part.ReadBatches(next[i], readChunk)
			if err != nil {
				return err
			}
			buf = append(buf[:0], ch.Bytes...)
			ch.Release()
			recs, nextOff := countBatches(buf)
			if recs > 0 {
				progressed = true
				next[i] = nextOff
				got(p, recs)
			}
		}
		if !progressed {
			c.wait(ctx, mine, next)
		}
	}
	return nil
}

// wait blocks until one of the partitions mine has records past next, ctx
// ends, or 100 ms pass.
func (c *easelConsumer) wait(ctx context.Context, mine []int, next []int64) {
	cases := make([]reflect.SelectCase, 0, len(mine)+2)
	for _, p := range mine {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.s.parts[p].Changed())})
	}
	for i, p := range mine {
		if c.s.parts[p].EndOffset() > next[i] {
			return
		}
	}
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)})
	reflect.Select(cases)
}

// countBatches walks the whole batches at the start of b by their headers
// (no record decoding) and returns how many records they hold and the offset
// after the last one.
func countBatches(b []byte) (recs int, next int64) {
	for len(b) >= record.HeaderSize {
		size := record.LogOverhead + int(int32(binary.BigEndian.Uint32(b[record.PosBatchLength:])))
		if size < record.HeaderSize || size > len(b) {
			break
		}
		base := int64(binary.BigEndian.Uint64(b[record.PosBaseOffset:]))
		last := int32(binary.BigEndian.Uint32(b[record.PosLastOffsetDelta:]))
		recs += int(int32(binary.BigEndian.Uint32(b[record.PosRecordCount:])))
		next = base + int64(last) + 1
		b = b[size:]
	}
	return recs, next
}

// walTarget drives github.com/tidwall/wal: one log per partition, one entry
// per record, appended with WriteBatch in groups the size of a Kafka batch.
type walTarget struct {
	dir string
	seq atomic.Int64
}

func (t *walTarget) name() string { return "wal" }
func (t *walTarget) gen() string  { return "api" }
func (t *walTarget) pid() int     { return 0 }
func (t *walTarget) close() error { return nil }

func (t *walTarget) skip(w workload) string {
	switch {
	case w.Acks == "all":
		return "acks=all means nothing without a network"
	case w.Codec != "none":
		return "tidwall/wal has no compression"
	}
	return ""
}

func (t *walTarget) open(_ context.Context, w workload) (stream, error) {
	dir := filepath.Join(t.dir, fmt.Sprintf("bench-%d", t.seq.Add(1)))
	s := &walStream{dir: dir, w: w}
	for i := range w.Partitions {
		l, err := wal.Open(filepath.Join(dir, fmt.Sprint(i)), &wal.Options{NoSync: !w.Sync, SegmentSize: 64 << 20})
		if err != nil {
			_ = s.close(context.Background())
			return nil, fmt.Errorf("wal: %w", err)
		}
		s.logs = append(s.logs, l)
	}
	return s, nil
}

type walStream struct {
	dir  string
	w    workload
	logs []*wal.Log
}

func (s *walStream) close(context.Context) error {
	var errs []error
	for _, l := range s.logs {
		errs = append(errs, l.Close())
	}
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}

func (s *walStream) producer(a *acker, l *sendLog) (producer, error) {
	n := recordsPerBatch(s.w.Size)
	p := &walProducer{s: s, a: a, l: l, n: n, next: make([]uint64, len(s.logs)), batches: make([]wal.Batch, min(len(s.logs), embeddedWorkers))}
	for i, lg := range s.logs {
		last, err := lg.LastIndex()
		if err != nil {
			return nil, err
		}
		p.next[i] = last + 1
	}
	return p, nil
}

type walProducer struct {
	s       *walStream
	a       *acker
	l       *sendLog
	n       int
	next    []uint64    // next index per partition; owned by the partition's worker
	batches []wal.Batch // one per worker
}

func (p *walProducer) workers() int                { return len(p.batches) }
func (p *walProducer) recordsPerSend() int         { return p.n }
func (p *walProducer) flush(context.Context) error { return nil }
func (p *walProducer) close() error                { return nil }

func (p *walProducer) send(wi, part int, t0 int64) error {
	if p.l != nil {
		p.l.sent(part, t0, p.n)
	}
	b := &p.batches[wi]
	b.Clear()
	pl := sharedPayloads()
	idx := p.next[part]
	for i := range p.n {
		b.Write(idx+uint64(i), pl.get(i, p.s.w.Size))
	}
	err := p.s.logs[part].WriteBatch(b)
	if err == nil {
		p.next[part] = idx + uint64(p.n)
	}
	p.a.ack(part, t0, p.n, err)
	return err
}

func (s *walStream) consumer() (consumer, error) { return &walConsumer{s: s}, nil }

type walConsumer struct{ s *walStream }

func (c *walConsumer) close() error { return nil }

func (c *walConsumer) run(ctx context.Context, got func(part, recs int)) error {
	nw := min(len(c.s.logs), embeddedWorkers)
	return runConsumerWorkers(ctx, nw, func(wi int) error { return c.worker(ctx, wi, nw, got) })
}

func (c *walConsumer) worker(ctx context.Context, wi, nw int, got func(part, recs int)) error {
	var mine []int
	for p := wi; p < len(c.s.logs); p += nw {
		mine = append(mine, p)
	}
	next := make([]uint64, len(mine))
	for i := range next {
		next[i] = 1
	}
	for ctx.Err() == nil {
		progressed := false
		for i, p := range mine {
			lg := c.s.logs[p]
			last, err := lg.LastIndex()
			if err != nil {
				return err
			}
			n := 0
			for ; next[i] <= last && n < 1024; next[i]++ {
				if _, err := lg.Read(next[i]); err != nil {
					return err
				}
				n++
			}
			if n > 0 {
				progressed = true
				got(p, n)
			}
		}
		if !progressed {
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}
