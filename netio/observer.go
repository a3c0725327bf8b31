package netio

import "time"

// Observer is told what a Server does, for metrics (Config.Observer). Its
// methods are called on connection goroutines, concurrently and on the
// request path: they must be quick, must not block and should not
// allocate (count with atomics into arrays indexed by API key).
type Observer interface {
	// ConnAccepted reports a connection accepted and served; ConnRefused
	// one closed at once because MaxConns were open; ConnClosed the end of
	// an accepted one.
	ConnAccepted()
	ConnRefused()
	ConnClosed()
	// RequestDone reports one request whose response was written (or
	// dropped because the connection died), once, after that. queue is
	// the time from the whole frame being read to Handle being called
	// (waiting behind the connection's earlier requests), handle the time
	// until the response was given (Handle returning, or Complete for a
	// deferred response: long polls and acks=all waits count here), send
	// the time until the response was on the socket (waiting behind
	// earlier responses, and writing). Requests dropped before Handle was
	// called are not reported.
	RequestDone(apiKey, apiVersion int16, queue, handle, send time.Duration)
}

// reqTimes are the moments of one request's life that Observer reports;
// zero when no Observer is set.
type reqTimes struct {
	read    time.Time // the frame was read whole
	handled time.Time // Handle was called
	given   time.Time // the response was given (Handle returned, or Complete)
}

// observe reports sl's request to the Observer, if there is one and the
// request was handled.
func (c *conn) observe(sl *slot) {
	o := c.s.cfg.Observer
	if o == nil || sl.times.handled.IsZero() {
		return
	}
	now := time.Now()
	t := &sl.times
	given := t.given
	if given.IsZero() { // deferred and dropped before Complete
		given = now
	}
	o.RequestDone(sl.req.APIKey, sl.req.APIVersion, t.handled.Sub(t.read), given.Sub(t.handled), now.Sub(given))
}
