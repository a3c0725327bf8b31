package netio

import (
	"errors"
	"time"
)

// Deferred is a promise, made during Handle, to give a request's response
// later from any goroutine. It is a small value: copy it freely (into a
// purgatory, a timer's closure) and call Complete on exactly one copy,
// exactly once.
//
// The zero Deferred means "not deferred" in a Response.
type Deferred struct {
	sl  *slot
	gen uint64 // sl.d.gen when Defer made it; another value means stale
}

// dstate is the state of a slot's deferred response.
type dstate uint8

const (
	dNone      dstate = iota // not deferred, or finished
	dPending                 // Defer called, Complete not yet
	dComplete                // Complete stored the response; the writer takes it
	dAbandoned               // the writer gave up (connection dead); Complete finishes the slot
)

var errDeferMisuse = errors.New("netio: Handle called Defer but returned no Response{Deferred: d} of this request, " +
	"or returned one with other fields set, or one it did not defer")

// Defer tells netio that the response to r will be given later with
// Complete, so that the connection's later requests are handled meanwhile.
// Handle must then return Response{Deferred: d} with no other field set;
// anything else is a handler bug and closes the connection as a panic would.
// Call Defer only during Handle, at most once per request (a second call
// panics, closing the connection).
//
// Responses are still written in request order: a later response, even one
// already complete, waits behind an earlier deferred one. A deferred
// response must therefore never wait for a later request of the same
// connection. A deferred request counts against Config.MaxInFlight and its
// frame against MaxRequestSize until its response is written or dropped.
//
// r and r.Body stay valid until Complete is called, and the Response given
// to Complete may alias r.Body as usual. On a Request built by hand (tests of
// a Handler) Defer works too; Complete then just calls the Response's Done.
func (r *Request) Defer() Deferred {
	sl := r.sl
	if sl == nil {
		sl = new(slot)
		r.sl = sl
	}
	if sl.deferred {
		panic("netio: Request.Defer called twice for one request")
	}
	sl.deferred = true
	sl.d.Lock()
	sl.d.gen++
	sl.d.state = dPending
	gen := sl.d.gen
	sl.d.Unlock()
	return Deferred{sl: sl, gen: gen}
}

// Complete gives the deferred response. It may be called from any goroutine,
// before or after Handle returns, and never blocks. resp must not itself be
// deferred.
//
// If the connection is still open, resp is written in its turn and its Done
// runs on the connection's writer goroutine after that. If the connection
// died (or the server was closed) before the response was written, resp is
// dropped and its Done runs: on the calling goroutine before Complete returns
// when the connection is already gone, so references can always be released
// in Done. If resp.Close is set, the connection is closed after resp is
// written (see Response.Close).
//
// Complete panics if called twice (or on a copy of a Deferred already
// completed), or on the zero Deferred.
func (d Deferred) Complete(resp Response) {
	sl := d.sl
	if sl == nil {
		panic("netio: Complete on a zero Deferred")
	}
	if resp.Deferred.sl != nil {
		panic("netio: Complete with a deferred Response")
	}
	sl.d.Lock()
	if sl.d.gen != d.gen || (sl.d.state != dPending && sl.d.state != dAbandoned) {
		sl.d.Unlock()
		panic("netio: Deferred.Complete called twice")
	}
	c := sl.c
	if c == nil || sl.d.state == dAbandoned {
		// Nobody will write it: drop it here.
		sl.d.state = dNone
		sl.resp = resp
		sl.d.Unlock()
		if c == nil {
			if resp.Done != nil {
				resp.Done()
			}
			return
		}
		c.finish(sl)
		return
	}
	sl.resp = resp
	if c.s.cfg.Observer != nil {
		sl.times.given = time.Now()
	}
	sl.d.state = dComplete
	sl.d.Unlock()
	if resp.Close {
		c.closeAsked.Store(true) // handle no later request
	}
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending; the writer rechecks every slot it waits for
	}
}

// awaitDeferred waits until the deferred response of sl, the writer's next
// item, is complete; it then reports true with the response in sl.resp. It
// reports false when it gave the response up instead, because the
// connection is dead or Handle panicked: Complete then finishes the slot,
// perhaps at once, so the caller must not touch sl after false.
// Before blocking it writes out the responses batched so far.
func (c *conn) awaitDeferred(sl *slot) bool {
	for {
		sl.d.Lock()
		switch {
		case sl.d.state == dComplete:
			sl.d.Unlock()
			return true
		case sl.panicked || c.ctx.Err() != nil:
			sl.d.state = dAbandoned
			sl.d.Unlock()
			return false
		}
		sl.d.Unlock()
		if len(c.batch) > 0 {
			c.endBatch() // the responses before this one need not wait for it
			continue
		}
		select {
		case <-c.wake:
		case <-c.ctx.Done():
		}
	}
}

// checkDeferred reports whether resp, returned by Handle for sl, is the
// correct answer for sl's deferral state: Response{Deferred: d} with d from
// sl's Defer, exactly when Defer was called.
func checkDeferred(sl *slot, resp *Response) bool {
	d := resp.Deferred
	if !sl.deferred || d.sl != sl {
		return false
	}
	// gen is written only by Defer, on this (the handler) goroutine.
	return d.gen == sl.d.gen && resp.Msg == nil && resp.Parts == nil && !resp.None && !resp.Close && resp.Done == nil
}
