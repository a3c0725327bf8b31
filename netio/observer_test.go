package netio

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps what a Server reports.
type recordingObserver struct {
	mu                        sync.Mutex
	accepted, refused, closed int
	reqs                      []observedReq
}

type observedReq struct {
	key, version        int16
	queue, handle, send time.Duration
}

func (o *recordingObserver) ConnAccepted() { o.mu.Lock(); o.accepted++; o.mu.Unlock() }
func (o *recordingObserver) ConnRefused()  { o.mu.Lock(); o.refused++; o.mu.Unlock() }
func (o *recordingObserver) ConnClosed()   { o.mu.Lock(); o.closed++; o.mu.Unlock() }
func (o *recordingObserver) RequestDone(key, version int16, queue, handle, send time.Duration) {
	o.mu.Lock()
	o.reqs = append(o.reqs, observedReq{key, version, queue, handle, send})
	o.mu.Unlock()
}

func (o *recordingObserver) snapshot() (accepted, refused, closed int, reqs []observedReq) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.accepted, o.refused, o.closed, append([]observedReq(nil), o.reqs...)
}

// The Observer sees every accepted, refused and closed connection, and each
// request once with its key, version and times: a deferred response's wait
// counts as handle time, and a request queued behind a slow one as queue
// time.
func TestObserver(t *testing.T) {
	obs := &recordingObserver{}
	h := newTestHandler()
	s, _ := startServer(t, Config{MaxConns: 1, Observer: obs}, h)
	c := dial(t, s)
	roundTrip(t, c, testReq(1, opEcho, nil))
	roundTrip(t, c, testReqFlex(2, opEcho, nil))
	const wait = 50 * time.Millisecond
	// A deferred response completed after wait.
	roundTrip(t, c, testReq(3, opDefer, binary.BigEndian.AppendUint64(nil, uint64(wait))))
	// A slow request and one pipelined behind it, which queues.
	slow := testReq(4, opSleep, binary.BigEndian.AppendUint64(nil, uint64(wait)))
	if _, err := c.Write(append(slow, testReq(5, opEcho, nil)...)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := readFrame(c); err != nil {
			t.Fatal(err)
		}
	}
	expectClosed(t, dial(t, s)) // refused: MaxConns is 1
	c.Close()
	waitConnsGone(t, s)
	h.waitDone(t)

	accepted, refused, closed, reqs := obs.snapshot()
	if accepted != 1 || refused != 1 || closed != 1 {
		t.Fatalf("connections accepted %d refused %d closed %d, want 1, 1, 1", accepted, refused, closed)
	}
	if len(reqs) != 5 {
		t.Fatalf("%d requests observed, want 5: %+v", len(reqs), reqs)
	}
	for i, r := range reqs {
		if r.key != 0 || (r.version != 3 && r.version != 9) || r.queue < 0 || r.handle < 0 || r.send < 0 {
			t.Errorf("request %d: %+v", i+1, r)
		}
	}
	if reqs[1].version != 9 {
		t.Errorf("request 2 version %d, want 9", reqs[1].version)
	}
	if reqs[2].handle < wait || reqs[3].handle < wait {
		t.Errorf("deferred and slow requests handled in %v and %v, want at least %v", reqs[2].handle, reqs[3].handle, wait)
	}
	if reqs[4].queue < wait/2 {
		t.Errorf("request queued behind a slow one waited %v in the queue, want about %v", reqs[4].queue, wait)
	}
}
