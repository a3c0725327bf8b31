package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// target is one system under test driven by one load generator, e.g.
// easel-broker with the raw generator.
type target interface {
	// name is the system ("easel-broker"), gen the load generator ("raw").
	name() string
	gen() string
	// skip says why the target does not run w ("" if it does).
	skip(w workload) string
	// open makes a fresh, empty topic (stream, log) for w.
	open(ctx context.Context, w workload) (stream, error)
	// pid is the process serving the target, or 0 if it is this process.
	pid() int
	close() error
}

// stream is one fresh topic of a target.
type stream interface {
	producer(a *acker, l *sendLog) (producer, error)
	consumer() (consumer, error)
	// close deletes the topic and its data.
	close(ctx context.Context) error
}

// producer sends units (a record batch, a record, a pipeline of records) of
// RecordsPerSend records. The generic loop runs workers() goroutines; worker i
// owns the partitions p with p%workers() == i and calls send only for them.
// send may block for flow control. The producer reports every finished send
// to the acker given at creation, with the t0 passed to send, and notes every
// send in the sendLog (if not nil) before the data can reach a consumer.
type producer interface {
	workers() int
	recordsPerSend() int
	send(worker, part int, t0 int64) error
	// flush waits until every send has been acknowledged.
	flush(ctx context.Context) error
	close() error
}

// consumer reads every partition from its start, calling got (from any
// goroutine) with the number of records that arrived, until ctx ends.
type consumer interface {
	run(ctx context.Context, got func(part, recs int)) error
	close() error
}

// phaseLimits bound a measurement.
type phaseLimits struct {
	Duration time.Duration // produce for at most this long
	MaxBytes int64         // and at most this many payload bytes
	Rate     float64       // records/s offered; 0 = as fast as possible
}

// produceStats is what a produce run measured.
type produceStats struct {
	records int64
	perPart []int64
	elapsed time.Duration
	lat     *latency
}

// runProduce drives p until lim is reached, then flushes.
func runProduce(ctx context.Context, p producer, a *acker, l *sendLog, w workload, lim phaseLimits) (produceStats, error) {
	nw := p.workers()
	rps := p.recordsPerSend()
	maxSends := max(int64(1), lim.MaxBytes/int64(rps*w.Size))
	var sends atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, lim.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, nw)
	for wi := range nw {
		parts := make([]int, 0, w.Partitions/nw+1)
		for part := wi; part < w.Partitions; part += nw {
			parts = append(parts, part)
		}
		if len(parts) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[wi] = produceWorker(ctx, p, a, l, wi, parts, lim.Rate/float64(nw)/float64(rps), &sends, maxSends)
		}()
	}
	wg.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	ferr := p.flush(fctx)
	elapsed := time.Since(start)
	if err := errors.Join(errors.Join(errs...), ferr, a.err()); err != nil {
		return produceStats{}, err
	}
	st := produceStats{records: a.recs.Load(), elapsed: elapsed, lat: a.latency(), perPart: make([]int64, w.Partitions)}
	for i := range st.perPart {
		st.perPart[i] = a.perPart[i].Load()
	}
	if st.records == 0 {
		return st, errors.New("peers: produce: nothing was acknowledged")
	}
	return st, nil
}

// produceWorker sends round-robin to parts; unitRate > 0 paces it to that
// many sends per second (sending what is due in bursts, so that pacing works
// at any rate with a coarse sleep).
func produceWorker(ctx context.Context, p producer, a *acker, l *sendLog, wi int, parts []int, unitRate float64,
	sends *atomic.Int64, maxSends int64) error {
	start := time.Now()
	var sent float64
	for i := 0; ; i++ {
		if ctx.Err() != nil || a.err() != nil {
			return nil
		}
		if unitRate > 0 {
			due := time.Since(start).Seconds()*unitRate - sent
			if due < 1 {
				time.Sleep(time.Duration((1 - due) / unitRate * float64(time.Second)))
				continue
			}
			sent++
		}
		if sends.Add(1) > maxSends {
			return nil
		}
		part := parts[i%len(parts)]
		t0 := nowNano()
		if err := p.send(wi, part, t0); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("send to partition %d: %w", part, err)
		}
	}
}

// consumeStats is what a consume run measured.
type consumeStats struct {
	records int64
	elapsed time.Duration
}

// runConsume reads until want() records (per partition) have arrived;
// want returns nil while the total is not known yet (a concurrent producer).
func runConsume(ctx context.Context, c consumer, partitions int, want func() []int64, l *sendLog, timeout time.Duration) (consumeStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make([]atomic.Int64, partitions)
	var total atomic.Int64
	done := make(chan struct{})
	var doneOnce sync.Once
	check := func() {
		w := want()
		if w == nil {
			return
		}
		for i, n := range w {
			if got[i].Load() < n {
				return
			}
		}
		doneOnce.Do(func() { close(done) })
	}
	start := time.Now()
	var end atomic.Int64
	errc := make(chan error, 1)
	go func() {
		errc <- c.run(ctx, func(part, recs int) {
			if l != nil {
				l.seen(part, recs)
			}
			got[part].Add(int64(recs))
			total.Add(int64(recs))
			end.Store(int64(time.Since(start)))
			check()
		})
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var err error
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			check()
		case err = <-errc:
			if err == nil {
				err = errors.New("peers: consumer stopped early")
			}
			break loop
		case <-deadline.C:
			err = fmt.Errorf("peers: consume: timed out after %v with %d records", timeout, total.Load())
			break loop
		}
	}
	cancel()
	if err != nil {
		return consumeStats{}, err
	}
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
	}
	return consumeStats{records: total.Load(), elapsed: time.Duration(end.Load())}, nil
}

// runConsumerWorkers runs worker(0..nw-1) concurrently and joins their
// errors; a consumer stopped by ctx reports no error.
func runConsumerWorkers(ctx context.Context, nw int, worker func(wi int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, nw)
	for wi := range nw {
		wg.Go(func() { errs[wi] = worker(wi) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}
