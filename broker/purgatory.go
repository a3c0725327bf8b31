package broker

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/easel-io/easel/netio"
)

// This file is the broker's purgatory. A request that must wait for
// partitions to change (a Fetch long poll for records, a Produce with
// acks=all for the high watermark to pass its batches; with replication,
// followers' fetches move the high watermark) is deferred (netio
// Request.Defer) and parked here: the connection's handler goes on with its
// later requests while the waiter sleeps on the Changed channels of its
// partitions, its deadline, Broker.Close and the connection's context.
// Nothing polls: a waiter is checked again only when a channel it watches is
// closed (an append, a high-watermark move, a truncation, a close of the
// partition).
//
// A waiter runs on a goroutine of its own, counted in Broker.parked so that
// Close can wait until every parked request has been answered.

// waiter is one parked request. park calls watch, then check, until check
// reports the wait over or something else ends it, then finish exactly once.
type waiter interface {
	// watch appends to chs the channels whose closing may end the wait
	// (Partition.Changed of the partitions it waits on) and returns chs. It
	// is called before each check, so a change that check misses closes a
	// channel already held: no wake-up is lost.
	watch(chs []<-chan struct{}) []<-chan struct{}
	// check reports whether the wait is over. It holds no segment
	// reference when it reports false.
	check() bool
	// finish answers the request (Deferred.Complete): why says what ended
	// the wait.
	finish(why wakeReason)
}

// wakeReason says why a wait ended.
type wakeReason int

const (
	wokeReady     wakeReason = iota // check reported the wait over
	wokeByChange                    // a watched channel closed (internal to run)
	wokeByTimer                     // the request's deadline passed
	wokeByClose                     // Broker.Close
	wokeByContext                   // the connection died or the server closed it
)

// park waits on a goroutine of its own until w's check holds, timeout
// passes, the broker is closed or ctx ends, and then calls w.finish with
// the reason. It returns at once. Once Close has begun, park calls
// w.finish(wokeByClose) itself before returning. ws is the waiter's reusable
// select state.
//
// The caller has deferred the request before calling park and must not
// touch what w's finish releases after it: finish may already have run, and
// the response been written, when park returns.
func (b *Broker) park(ctx context.Context, timeout time.Duration, ws *watchSet, w waiter) {
	if !b.parked.add() {
		w.finish(wokeByClose)
		return
	}
	go func() {
		defer b.parked.done()
		w.finish(ws.run(ctx, b.closed, timeout, w))
	}()
}

// deferred is what Handle returns for a parked request.
func deferred(d netio.Deferred) netio.Response { return netio.Response{Deferred: d} }

// watchSet is the select state of one wait, reused across its wake-ups
// (and, for fetches, across requests through the fetch pool).
type watchSet struct {
	chs   []<-chan struct{}
	cases []reflect.SelectCase
}

// run is the wait loop: watch, check, sleep until something happens.
func (ws *watchSet) run(ctx context.Context, closed <-chan struct{}, timeout time.Duration, w waiter) wakeReason {
	timer := time.NewTimer(max(timeout, 0))
	defer timer.Stop()
	defer ws.reset()
	for {
		ws.chs = w.watch(ws.chs[:0])
		if w.check() {
			return wokeReady
		}
		if why := ws.wait(ctx, closed, timer.C); why != wokeByChange {
			return why
		}
	}
}

// reset drops the channels of the last wait, keeping the buffers.
func (ws *watchSet) reset() {
	clear(ws.chs)
	clear(ws.cases)
	ws.chs, ws.cases = ws.chs[:0], ws.cases[:0]
}

// maxSelectCases bounds the channels one reflect.Select waits on
// (reflect allows 65536); waits on more partitions fan in.
const maxSelectCases = 4096

// wait sleeps until a channel of ws.chs closes, the timer fires, closed is
// closed or ctx ends.
func (ws *watchSet) wait(ctx context.Context, closed <-chan struct{}, timer <-chan time.Time) wakeReason {
	chs := ws.chs
	if len(chs) > maxSelectCases {
		fan := make(chan struct{}, 1)
		stop := make(chan struct{})
		defer close(stop)
		for lo := 0; lo < len(chs); lo += maxSelectCases {
			group := chs[lo:min(lo+maxSelectCases, len(chs))]
			// Built here: ws.chs is reused once wait returns, which may
			// be before the goroutine is done.
			cases := make([]reflect.SelectCase, 0, len(group)+1)
			for _, c := range group {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
			}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop)})
			go func() {
				if i, _, _ := reflect.Select(cases); i < len(cases)-1 {
					select {
					case fan <- struct{}{}:
					default:
					}
				}
			}()
		}
		chs = []<-chan struct{}{fan}
	}
	var woke <-chan struct{} // nil blocks forever
	if len(chs) == 1 {
		woke = chs[0]
	}
	if len(chs) <= 1 {
		select {
		case <-woke:
			return wokeByChange
		case <-timer:
			return wokeByTimer
		case <-closed:
			return wokeByClose
		case <-ctx.Done():
			return wokeByContext
		}
	}
	ws.cases = append(ws.cases[:0],
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(closed)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
	)
	for _, c := range chs {
		ws.cases = append(ws.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	i, _, _ := reflect.Select(ws.cases)
	switch i {
	case 0:
		return wokeByTimer
	case 1:
		return wokeByClose
	case 2:
		return wokeByContext
	}
	return wokeByChange
}

// parkedSet counts the parked requests, so that Close can wait until each
// has been answered, and tests can wait for a request to park.
type parkedSet struct {
	mu struct {
		sync.Mutex
		closed  bool          // no request parks any more
		n       int           // parked requests whose finish has not returned
		total   int           // requests ever parked
		changed chan struct{} // closed when n changes; nil while nobody waits
	}
}

// add counts a request about to park; false once closing began.
func (s *parkedSet) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false
	}
	s.mu.n++
	s.mu.total++
	s.notifyLocked()
	return true
}

// done uncounts a request whose finish returned.
func (s *parkedSet) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.n--
	s.notifyLocked()
}

func (s *parkedSet) notifyLocked() {
	if s.mu.changed != nil {
		close(s.mu.changed)
		s.mu.changed = nil
	}
}

// count returns how many requests are parked now and were ever parked, and
// a channel closed at the next change of either.
func (s *parkedSet) count() (n, total int, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.changed == nil {
		s.mu.changed = make(chan struct{})
	}
	return s.mu.n, s.mu.total, s.mu.changed
}

// parks returns how many requests were ever parked.
func (s *parkedSet) parks() int {
	_, total, _ := s.count()
	return total
}

// close stops further parking and waits until every parked request has
// been answered (Close has already woken them).
func (s *parkedSet) close() {
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	for {
		n, _, ch := s.count()
		if n == 0 {
			return
		}
		<-ch
	}
}
