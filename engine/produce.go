package engine

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/easel-io/easel/record"
)

var builderPool = sync.Pool{New: func() any {
	return record.NewBuilder(record.BuilderOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
}}

// bufPool holds batch buffers for the convenient producer path.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// AppendRecords builds one batch of recs, compressed with the codec of the
// given Kafka id (codec.None, codec.Zstd, ...), and appends it. Records with
// a zero Timestamp get the current time.
func (p *Partition) AppendRecords(codecID int8, recs ...record.Record) (AppendResult, error) {
	if len(recs) == 0 {
		return AppendResult{}, errors.New("engine: append: no records")
	}
	b := builderPool.Get().(*record.Builder)
	defer builderPool.Put(b)
	b.Reset(record.BuilderOptions{Codec: codecID, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	now := p.e.opts.Now().UnixMilli()
	for _, r := range recs {
		if r.Timestamp == 0 {
			r.Timestamp = now
		}
		b.Add(r)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	batch, err := b.AppendTo((*bp)[:0])
	if err != nil {
		return AppendResult{}, fmt.Errorf("engine: append: %w", err)
	}
	*bp = batch
	return p.Append(batch)
}

// Produce appends records to a topic, choosing each record's partition by the
// xxhash of its key (records without a key go round-robin), one batch per
// partition. It returns each record's offset, in the order given. When an
// append fails the others are still made: the error names the partitions
// that failed, and their records have offset -1 in the result, so the
// caller knows exactly what was stored.
func (e *Engine) Produce(topic string, codecID int8, recs ...record.Record) ([]int64, error) {
	info, err := e.Topic(topic)
	if err != nil {
		return nil, err
	}
	n := info.Config.Partitions
	byPart := make(map[int32][]int, n)
	for i, r := range recs {
		var part int32
		if r.Key == nil {
			part = int32(rr.Add(1) % uint64(n))
		} else {
			part = int32(xxhash.Sum64(r.Key) % uint64(n))
		}
		byPart[part] = append(byPart[part], i)
	}
	offsets := make([]int64, len(recs))
	batch := make([]record.Record, 0, len(recs))
	var errs []error
	for part, idx := range byPart {
		res, err := e.appendTo(topic, part, codecID, idx, recs, batch[:0])
		for j, i := range idx {
			offsets[i] = -1
			if err == nil {
				offsets[i] = res.BaseOffset + int64(j)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("engine: produce to %s/%d: %w", topic, part, err))
		}
	}
	return offsets, errors.Join(errs...)
}

// appendTo appends recs[idx...] to one partition as one batch, building it
// in buf.
func (e *Engine) appendTo(topic string, part int32, codecID int8, idx []int, recs, buf []record.Record) (AppendResult, error) {
	p, err := e.Partition(topic, part)
	if err != nil {
		return AppendResult{}, err
	}
	for _, i := range idx {
		buf = append(buf, recs[i])
	}
	return p.AppendRecords(codecID, buf...)
}

// rr spreads keyless records over partitions.
var rr atomic.Uint64

// RecordIterator walks a partition's records in offset order. It is not safe
// for concurrent use. Always Close it.
type RecordIterator struct {
	p      *Partition
	next   int64 // next offset wanted
	end    int64 // stop before this offset (the high watermark, or the log end, when created)
	toEnd  bool  // read up to the log end, not the high watermark
	chunk  Chunk
	rest   []byte
	it     *record.Iterator // created on first use, then Reset per batch
	inited bool
	err    error
}

// Records returns an iterator over the committed records from offset up to
// the partition's high watermark at the time of the call.
func (p *Partition) Records(offset int64) *RecordIterator {
	return &RecordIterator{p: p, next: offset, end: p.HighWatermark()}
}

// RecordsToEnd is Records up to the log end at the time of the call,
// committed or not: for a new leader loading state from its own log (the
// group coordinator), whose every record stays once it leads, while its
// high watermark may still lag the log end until the followers fetch.
func (p *Partition) RecordsToEnd(offset int64) *RecordIterator {
	return &RecordIterator{p: p, next: offset, end: p.EndOffset(), toEnd: true}
}

// Next advances to the next record; false at the end or on error (see Err).
func (r *RecordIterator) Next() bool {
	for r.err == nil {
		if r.inited {
			for r.it.Next() {
				rec := r.it.Record()
				if rec.Offset < r.next {
					continue // records before the one asked for
				}
				if rec.Offset >= r.end {
					// Appended after the iterator was created.
					r.inited, r.rest, r.next = false, nil, r.end
					return false
				}
				r.next = rec.Offset + 1
				return true
			}
			if err := r.it.Err(); err != nil {
				r.err = err
				return false
			}
			// Past the whole batch, even where compaction left no record
			// at its end (or none at all).
			r.next = max(r.next, r.it.Header().LastOffset()+1)
			r.inited = false
		}
		if len(r.rest) > 0 {
			batch, rest, err := record.Split(r.rest)
			if err != nil {
				r.err = fmt.Errorf("engine: iterate %s/%d: %w", r.p.topic, r.p.id, err)
				return false
			}
			r.rest = rest
			h, err := record.ParseHeader(batch)
			if err != nil {
				r.err = err
				return false
			}
			if h.LastOffset() < r.next {
				continue
			}
			if r.it == nil {
				r.it = record.NewIterator(batch, 0)
			} else {
				r.it.Reset(batch)
			}
			r.inited = true
			continue
		}
		if r.next >= r.end {
			return false
		}
		r.chunk.Release()
		end := r.p.HighWatermark()
		if r.toEnd {
			end = r.p.EndOffset()
		}
		c, err := r.p.read(r.next, 1<<20, end, true)
		if err != nil {
			r.err = err
			return false
		}
		if len(c.Bytes) == 0 {
			c.Release()
			return false
		}
		r.chunk, r.rest = c, c.Bytes
	}
	return false
}

// Record returns the current record. It and the slices in it are valid until
// the next call to Next or Close; copy what must outlive that.
func (r *RecordIterator) Record() *record.Record { return r.it.Record() }

// Err returns the error that stopped Next, if any.
func (r *RecordIterator) Err() error { return r.err }

// Close releases the iterator's hold on the log. It returns Err().
func (r *RecordIterator) Close() error {
	r.chunk.Release()
	r.rest = nil
	return r.err
}
