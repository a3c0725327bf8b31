package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Phases of a workload measurement.
const (
	phaseProduce     = "produce"
	phaseConsume     = "consume"
	phaseProdCons    = "produce+consume"
	phaseE2E         = "e2e"
	phaseLimit       = "limit"
	phaseScale       = "scale"
	phaseStartClean  = "startup-clean"
	phaseStartKilled = "startup-unclean"
)

// result is one measurement; results.json is a list of them.
type result struct {
	// Round is the 0-based round of a -repeat run (see schedule).
	Round      int    `json:"round"`
	Target     string `json:"target"`
	Gen        string `json:"gen,omitempty"`
	Phase      string `json:"phase"`
	Metric     string `json:"metric,omitempty"` // machine limits and scaling: what was measured
	Workload   string `json:"workload,omitempty"`
	Size       int    `json:"record_bytes,omitempty"`
	Partitions int    `json:"partitions,omitempty"`
	Acks       string `json:"acks,omitempty"`
	Codec      string `json:"codec,omitempty"`
	Sync       bool   `json:"fsync,omitempty"`

	Records       int64    `json:"records,omitempty"`
	Seconds       float64  `json:"seconds,omitempty"`
	MBps          float64  `json:"mb_per_s,omitempty"` // payload MB (1e6 bytes) per second
	RecordsPerSec float64  `json:"records_per_s,omitempty"`
	ConsumeMBps   float64  `json:"consume_mb_per_s,omitempty"` // produce+consume: the consumer's rate
	OfferedRate   float64  `json:"offered_records_per_s,omitempty"`
	Ack           *latency `json:"produce_ack_latency,omitempty"`
	E2E           *latency `json:"end_to_end_latency,omitempty"`
	Value         float64  `json:"value,omitempty"` // limits, scaling, startup: the figure in Unit
	Unit          string   `json:"unit,omitempty"`
	RSSBytes      int64    `json:"rss_bytes,omitempty"`
	DataBytes     int64    `json:"data_bytes,omitempty"`
	Note          string   `json:"note,omitempty"`
	Err           string   `json:"error,omitempty"`
}

func (r *result) fill(t target, phase string, w workload) {
	r.Target, r.Gen, r.Phase = t.name(), t.gen(), phase
	r.Workload, r.Size, r.Partitions, r.Acks, r.Codec, r.Sync = w.key(), w.Size, w.Partitions, w.Acks, w.Codec, w.Sync
}

func (r *result) rates(recs int64, d time.Duration, size int) {
	r.Records = recs
	r.Seconds = d.Seconds()
	if d > 0 {
		r.RecordsPerSec = float64(recs) / d.Seconds()
		r.MBps = r.RecordsPerSec * float64(size) / 1e6
	}
}

// measureWorkload runs the four phases of w against t: produce-only,
// consume-only from the start of the log just written, produce and consume
// together on a fresh topic, and end-to-end latency at half the measured peak
// on another fresh topic. It returns one result per phase.
func measureWorkload(ctx context.Context, t target, w workload, lim phaseLimits, hook func(phase string, d time.Duration) func()) []result {
	var out []result
	fail := func(phase string, err error) []result {
		r := result{}
		r.fill(t, phase, w)
		r.Err = err.Error()
		return append(out, r)
	}
	consumeTimeout := 4*lim.Duration + 30*time.Second

	// 1. Produce only, then 2. consume the whole log from the start.
	s, err := t.open(ctx, w)
	if err != nil {
		return fail(phaseProduce, err)
	}
	defer func() {
		if s != nil {
			_ = s.close(context.Background())
		}
	}()
	a := newAcker(w.Partitions)
	p, err := s.producer(a, nil)
	if err != nil {
		return fail(phaseProduce, err)
	}
	stop := hook(phaseProduce, lim.Duration)
	ps, err := runProduce(ctx, p, a, nil, w, lim)
	stop()
	_ = p.close()
	if err != nil {
		return fail(phaseProduce, err)
	}
	r := result{Ack: ps.lat}
	r.fill(t, phaseProduce, w)
	r.rates(ps.records, ps.elapsed, w.Size)
	if d, ok := t.(diskUser); ok {
		r.DataBytes = d.diskBytes()
	}
	peak := r.RecordsPerSec
	out = append(out, r)

	c, err := s.consumer()
	if err != nil {
		return fail(phaseConsume, err)
	}
	stop = hook(phaseConsume, lim.Duration)
	cs, err := runConsume(ctx, c, w.Partitions, func() []int64 { return ps.perPart }, nil, consumeTimeout)
	stop()
	_ = c.close()
	if err != nil {
		return fail(phaseConsume, err)
	}
	r = result{Note: warningOf(c)}
	r.fill(t, phaseConsume, w)
	r.rates(cs.records, cs.elapsed, w.Size)
	out = append(out, r)
	if err := s.close(ctx); err != nil {
		return fail(phaseConsume, fmt.Errorf("delete topic: %w", err))
	}
	s = nil

	// 3. Produce and consume together, 4. end-to-end latency at half the
	// peak: the lowest of the produce-only rate and the producer's and the
	// consumer's rates when both run, which is what the target sustains.
	for _, phase := range []string{phaseProdCons, phaseE2E} {
		l := lim
		var sl *sendLog
		if phase == phaseProdCons {
			l.Duration /= 2 // the produce phase measured the peak already
		}
		if phase == phaseE2E {
			l.Rate = peak / 2
			if e2eRate > 0 {
				// A fixed offered rate, the same for every target, unless
				// the target cannot sustain it.
				l.Rate = min(e2eRate, peak)
			}
			sl = newSendLog(w.Partitions)
		}
		r, err := produceConsume(ctx, t, w, l, sl, consumeTimeout)
		if err != nil {
			return fail(phase, err)
		}
		r.fill(t, phase, w)
		out = append(out, r)
		if phase == phaseProdCons {
			peak = min(peak, r.RecordsPerSec, r.ConsumeMBps*1e6/float64(w.Size))
		}
	}
	return out
}

// diskUser is a target in this process that can tell how much disk its
// data holds (allocated blocks, as du counts them, not file sizes).
type diskUser interface{ diskBytes() int64 }

// e2eRate, when positive, replaces half the peak as the offered rate of
// the end-to-end latency phase (records/s); set by -e2e-rate.
var e2eRate float64

// warningOf returns what a consumer noticed about the target, if it can tell.
func warningOf(c consumer) string {
	if w, ok := c.(interface{ warning() string }); ok {
		return w.warning()
	}
	return ""
}

// produceConsume produces (paced if lim.Rate > 0) while a consumer reads the
// same fresh topic from its start.
func produceConsume(ctx context.Context, t target, w workload, lim phaseLimits, sl *sendLog, timeout time.Duration) (result, error) {
	s, err := t.open(ctx, w)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = s.close(context.Background()) }()
	c, err := s.consumer()
	if err != nil {
		return result{}, err
	}
	defer func() { _ = c.close() }()
	a := newAcker(w.Partitions)
	p, err := s.producer(a, sl)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = p.close() }()

	var mu sync.Mutex
	var want []int64
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type cres struct {
		st  consumeStats
		err error
	}
	cdone := make(chan cres, 1)
	go func() {
		st, err := runConsume(cctx, c, w.Partitions, func() []int64 {
			mu.Lock()
			defer mu.Unlock()
			return want
		}, sl, lim.Duration+timeout)
		cdone <- cres{st, err}
	}()
	ps, perr := runProduce(ctx, p, a, sl, w, lim)
	if perr != nil {
		cancel()
		<-cdone
		return result{}, perr
	}
	mu.Lock()
	want = ps.perPart
	mu.Unlock()
	cr := <-cdone
	if cr.err != nil {
		return result{}, cr.err
	}
	r := result{Ack: ps.lat, Note: warningOf(c)}
	r.rates(ps.records, ps.elapsed, w.Size)
	if cr.st.elapsed > 0 {
		r.ConsumeMBps = float64(cr.st.records) * float64(w.Size) / cr.st.elapsed.Seconds() / 1e6
	}
	if sl != nil {
		r.OfferedRate = lim.Rate
		r.E2E = sl.latency()
	}
	return r, nil
}
