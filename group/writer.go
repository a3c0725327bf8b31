package group

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// errNotLoaded is what a write gets once its partition is unloaded (or the
// coordinator closed): clients see NOT_COORDINATOR and look again.
var errNotLoaded = errors.New("group: __consumer_offsets partition is not loaded here")

// errCommitTimeout: an appended batch was not committed (the high
// watermark did not pass it) within Config.OffsetCommitTimeout; Kafka
// answers COORDINATOR_NOT_AVAILABLE then, and the client retries.
var errCommitTimeout = errors.New("group: write to __consumer_offsets not replicated in time")

// recordOverhead bounds what a record adds to a batch beyond its key and
// value: the length, attributes, timestamp and offset deltas, key and value
// lengths and header count, each at its longest varint.
const recordOverhead = 5 + 1 + 10 + 5 + 5 + 5 + 5

// write is one request's records for the log, appended together in one
// batch (never split), so a commit is stored whole or not at all.
type write struct {
	recs []record.Record // key and value slices are not modified or kept after done
	size int             // upper bound of the records' encoded size
	// done is called exactly once, on the writer's goroutine, after the
	// batch holding the records is appended (err nil) or failed. It must not
	// block; it may submit more writes.
	done func(err error)
}

// newWrite returns a write of recs calling done.
func newWrite(recs []record.Record, done func(error)) *write {
	w := &write{recs: recs, done: done}
	for _, r := range recs {
		w.size += len(r.Key) + len(r.Value) + recordOverhead
	}
	return w
}

// writer appends the writes of one __consumer_offsets partition. It is the
// group commit of offset commits: writes submitted while an append (its
// fsync, when the topic's flush policy asks for one, and its replication)
// runs are gathered into the next batch, one Append for all of them, instead
// of each waiting its turn behind a lock. One goroutine, started on demand
// and ended when the queue is empty, does every append, so writes are
// appended in submission order. A write is done once its batch is committed:
// the partition's high watermark has passed it (at once on a single node; in
// a cluster once the in-sync replicas have it, as Kafka appends offset
// commits with acks=all).
type writer struct {
	part     *engine.Partition
	maxBytes int // max.message.bytes of the topic: writes are packed into batches up to it
	now      func() time.Time
	wg       *sync.WaitGroup // the coordinator's: the run goroutine is counted in it
	timeout  time.Duration   // how long a batch may wait to be committed
	closing  chan struct{}   // closed by close: a wait for the commit ends

	mu struct {
		sync.Mutex
		queue   []*write // Invariant: empty unless running
		running bool
		closed  bool
		drained chan struct{} // non-nil while someone waits for the goroutine; closed (and reset) when it ends
	}

	// Owned by the run goroutine.
	spare []*write
	b     *record.Builder
	buf   []byte
}

func newWriter(part *engine.Partition, maxBytes int, now func() time.Time, timeout time.Duration, wg *sync.WaitGroup) *writer {
	return &writer{part: part, maxBytes: maxBytes, now: now, timeout: timeout, wg: wg, closing: make(chan struct{}),
		b: record.NewBuilder(record.BuilderOptions{})}
}

// submit queues w for appending. It never blocks on I/O, so it may be
// called with a group's lock held; w.done runs later on the writer's
// goroutine. It returns errNotLoaded, without calling done, once the writer
// is closed.
func (wr *writer) submit(w *write) error {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.mu.closed {
		return errNotLoaded
	}
	wr.mu.queue = append(wr.mu.queue, w)
	if !wr.mu.running {
		wr.mu.running = true
		wr.wg.Add(1)
		go wr.run()
	}
	return nil
}

// close refuses further writes and waits until every write submitted before
// it is appended and its done has run, so a later load of the partition sees
// them.
func (wr *writer) close() {
	wr.mu.Lock()
	if !wr.mu.closed {
		wr.mu.closed = true
		close(wr.closing)
	}
	wr.mu.Unlock()
	wr.wait()
}

// wait returns once the queue is empty and no append runs: every write
// submitted before it (and any its done submitted) is appended and its done
// has run.
func (wr *writer) wait() {
	wr.mu.Lock()
	if !wr.mu.running {
		wr.mu.Unlock()
		return
	}
	if wr.mu.drained == nil {
		wr.mu.drained = make(chan struct{})
	}
	ch := wr.mu.drained
	wr.mu.Unlock()
	<-ch
}

// run appends queued writes until the queue is empty.
func (wr *writer) run() {
	defer wr.wg.Done()
	for {
		wr.mu.Lock()
		ws := wr.mu.queue
		if len(ws) == 0 {
			wr.mu.running = false
			if wr.mu.drained != nil {
				close(wr.mu.drained)
				wr.mu.drained = nil
			}
			wr.mu.Unlock()
			return
		}
		wr.mu.queue = wr.spare[:0]
		wr.mu.Unlock()
		wr.appendAll(ws)
		clear(ws)
		wr.spare = ws
	}
}

// appendAll appends ws in order, as few batches as max.message.bytes
// allows, and calls each write's done.
func (wr *writer) appendAll(ws []*write) {
	ts := wr.now().UnixMilli()
	for i := 0; i < len(ws); {
		wr.b.Reset(record.BuilderOptions{})
		size, j := record.HeaderSize, i
		for ; j < len(ws) && (j == i || size+ws[j].size <= wr.maxBytes); j++ {
			size += ws[j].size
			for _, r := range ws[j].recs {
				r.Timestamp = ts
				wr.b.Add(r)
			}
		}
		var err error
		if wr.b.Len() > 0 {
			wr.buf, err = wr.b.AppendTo(wr.buf[:0])
			var res engine.AppendResult
			if err == nil {
				res, err = wr.part.Append(wr.buf)
			}
			if err == nil {
				err = wr.committed(res.LastOffset)
			}
		}
		for _, w := range ws[i:j] {
			w.done(err)
		}
		i = j
	}
}

// committed waits until the high watermark passes last: the batch is on
// every in-sync replica. It fails when the partition stops being led here
// or loses the batch (a truncation), when the writer closes (the partition
// is unloaded: the client retries at the new coordinator), or after the
// timeout.
func (wr *writer) committed(last int64) error {
	var timer *time.Timer
	for {
		changed := wr.part.Changed()
		switch {
		case wr.part.HighWatermark() > last:
			if timer != nil {
				timer.Stop()
			}
			return nil
		case wr.part.IsFollower() || wr.part.EndOffset() <= last:
			return fmt.Errorf("%w: %s/%d no longer holds offset %d as leader", engine.ErrNotLeader, wr.part.Topic(), wr.part.ID(), last)
		}
		if timer == nil {
			timer = time.NewTimer(wr.timeout)
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-wr.closing:
			return errNotLoaded
		case <-timer.C:
			return fmt.Errorf("%w: offset %d after %v", errCommitTimeout, last, wr.timeout)
		}
	}
}

// appendSync appends recs as one batch of their own, bypassing the queue,
// for the topic's setup (format marker, migration), before any writer runs.
func appendSync(p *engine.Partition, recs []record.Record, ts int64) error {
	b := record.NewBuilder(record.BuilderOptions{})
	for _, r := range recs {
		r.Timestamp = ts
		b.Add(r)
	}
	batch, err := b.AppendTo(nil)
	if err == nil {
		_, err = p.Append(batch)
	}
	return err
}
