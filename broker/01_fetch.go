package broker

import (
	"context"
	"encoding/binary"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(1, 4, 12, (*Broker).handleFetch, fetchBody) }

// handleFetch serves Fetch v4–12. The response is written by hand (see the
// package doc for its layout) so that record bytes go from the segment files
// to the socket with sendfile: the response is a list of netio.Parts, byte
// parts for the framing and one part per partition for its records, whose
// chunks are released by Response.Done.
//
// The fetch waits until min_bytes are available, max_wait_ms passes, the
// connection dies or the broker is closed, woken by appends to the
// partitions it reads. max_bytes and each partition's max_bytes are
// honoured, except that the first batch of the first partition with data is
// always sent whole (KIP-74). Fetch sessions are not supported: session_id
// is always 0, so clients send full requests.
func (b *Broker) handleFetch(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrFetchRequest()
	if err := decode(req, r, true); err != nil {
		return b.closeConn(req, err)
	}
	st := fetchPool.Get().(*fetchState)
	var topErr int16
	if r.SessionID != 0 {
		// No session is ever handed out; the client holds a stale one.
		b.rejected(req, "fetch", errFetchSession, "session_id", r.SessionID)
		topErr = errorCode(errFetchSession)
	} else {
		st.init(req, r)
		b.fetchWait(ctx, st, r)
	}
	return st.response(req.APIVersion, topErr, r.IsolationLevel == 1)
}

// fetchPart is one partition of a fetch request and, after a read, its
// answer.
type fetchPart struct {
	topic     string // aliases the request body
	partition int32
	offset    int64
	maxBytes  int32
	err       error // found in the request; answered without reading

	p        *engine.Partition // from the last read; nil if none
	code     int16
	hw       int64
	logStart int64
	chunk    engine.Chunk // empty unless the partition has records to send
}

// fetchTopic is a topic of the request: its name and how many of the parts
// that follow belong to it.
type fetchTopic struct {
	name string
	n    int
}

// fetchMark says where, in the framing buffer, the records of part go.
type fetchMark struct {
	end  int // the framing bytes before the records end here
	part int
}

// fetchState is what one fetch needs, pooled. It is returned to the pool by
// the response's Done, after the records were written.
type fetchState struct {
	topics []fetchTopic
	parts  []fetchPart
	chs    []<-chan struct{}
	cases  []reflect.SelectCase
	buf    []byte
	marks  []fetchMark
	out    []netio.Part
	done   func()
}

var fetchPool sync.Pool

func init() {
	fetchPool.New = func() any {
		st := &fetchState{}
		st.done = func() {
			st.release()
			st.reset()
			fetchPool.Put(st)
		}
		return st
	}
}

// reset drops every reference the state holds, keeping its buffers.
func (st *fetchState) reset() {
	clear(st.topics)
	clear(st.parts)
	clear(st.chs)
	clear(st.cases)
	clear(st.out)
	st.topics, st.parts, st.chs, st.cases = st.topics[:0], st.parts[:0], st.chs[:0], st.cases[:0]
	st.buf, st.marks, st.out = st.buf[:0], st.marks[:0], st.out[:0]
	if cap(st.buf) > 1<<20 { // do not let one huge fetch pin memory in the pool
		st.buf = nil
	}
}

// release frees the chunks of the last read.
func (st *fetchState) release() {
	for i := range st.parts {
		st.parts[i].chunk.Release()
		st.parts[i].chunk = engine.Chunk{}
	}
}

func (st *fetchState) init(req *netio.Request, r *kmsg.FetchRequest) {
	for i := range r.Topics {
		t := &r.Topics[i]
		st.topics = append(st.topics, fetchTopic{name: t.Topic, n: len(t.Partitions)})
		for j := range t.Partitions {
			rp := &t.Partitions[j]
			fp := fetchPart{topic: t.Topic, partition: rp.Partition, offset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes}
			if req.APIVersion >= 9 && rp.CurrentLeaderEpoch > 0 {
				fp.err = errLeaderEpoch // ours is always 0
			}
			st.parts = append(st.parts, fp)
		}
	}
}

// fetchWait reads until the request is satisfied or its wait ends.
func (b *Broker) fetchWait(ctx context.Context, st *fetchState, r *kmsg.FetchRequest) {
	minBytes := int64(r.MinBytes)
	total, now := b.fetchRead(st, r.MaxBytes)
	if now || total >= minBytes || r.MaxWaitMillis <= 0 {
		return
	}
	timer := time.NewTimer(time.Duration(r.MaxWaitMillis) * time.Millisecond)
	defer timer.Stop()
	for {
		// Watch first, then read: an append after the read closes a
		// channel we hold, so no wake-up is lost.
		st.release()
		st.chs = st.chs[:0]
		for i := range st.parts {
			if p := st.parts[i].p; p != nil {
				st.chs = append(st.chs, p.Changed())
			}
		}
		total, now = b.fetchRead(st, r.MaxBytes)
		if now || total >= minBytes {
			return
		}
		st.release() // hold no segment while waiting
		switch st.waitAny(ctx, b.closed, timer.C) {
		case wokeByAppend:
			continue
		case wokeByContext:
			return // nobody will read the answer
		}
		// The wait is over: answer with what is there now.
		b.fetchRead(st, r.MaxBytes)
		return
	}
}

// fetchRead reads every partition of the request (releasing nothing: the
// caller releases the previous read first) and returns how many record
// bytes it got and whether the fetch must be answered now because a
// partition has an error.
func (b *Broker) fetchRead(st *fetchState, maxBytes int32) (total int64, now bool) {
	remaining := int64(maxBytes)
	first := true // no partition has given records yet: its first batch goes whole
	for i := range st.parts {
		pt := &st.parts[i]
		pt.code, pt.hw, pt.logStart, pt.p = 0, -1, -1, nil
		if pt.err != nil {
			pt.code, now = errorCode(pt.err), true
			continue
		}
		p, err := b.eng.Partition(pt.topic, pt.partition)
		if err != nil {
			pt.code, now = errorCode(err), true
			continue
		}
		pt.p = p
		start, end := p.StartOffset(), p.EndOffset()
		if pt.offset < start || pt.offset > end {
			pt.code, now = errorCode(engine.ErrOffsetOutOfRange), true
			continue
		}
		pt.hw, pt.logStart = end, start
		if pt.offset == end {
			continue
		}
		limit := min(int64(pt.maxBytes), remaining)
		if limit <= 0 && !first {
			continue
		}
		c, err := p.Read(pt.offset, int(max(limit, 0)))
		if err != nil {
			pt.code, pt.hw, pt.logStart, now = errorCode(err), -1, -1, true
			continue
		}
		n := c.Size()
		if n == 0 || (n > limit && !first) {
			c.Release() // the next fetch gets it, as the first partition with data
			continue
		}
		pt.chunk = c
		total += n
		remaining -= n
		first = false
		// The high watermark must cover every record sent.
		pt.hw = max(end, p.EndOffset())
	}
	return total, now
}

type wakeReason int

const (
	wokeByAppend wakeReason = iota
	wokeByTimer
	wokeByClose
	wokeByContext
)

// maxSelectCases bounds the channels one reflect.Select waits on
// (reflect allows 65536); fetches of more partitions fan in.
const maxSelectCases = 4096

// waitAny waits for an append to any watched partition, the timer, Close or
// the end of ctx.
func (st *fetchState) waitAny(ctx context.Context, closed <-chan struct{}, timer <-chan time.Time) wakeReason {
	chs := st.chs
	if len(chs) > maxSelectCases {
		fan := make(chan struct{}, 1)
		stop := make(chan struct{})
		defer close(stop)
		for lo := 0; lo < len(chs); lo += maxSelectCases {
			group := chs[lo:min(lo+maxSelectCases, len(chs))]
			// Built here: st.chs is reused once waitAny returns, which
			// may be before the goroutine is done.
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
			return wokeByAppend
		case <-timer:
			return wokeByTimer
		case <-closed:
			return wokeByClose
		case <-ctx.Done():
			return wokeByContext
		}
	}
	st.cases = append(st.cases[:0],
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(closed)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
	)
	for _, c := range chs {
		st.cases = append(st.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	i, _, _ := reflect.Select(st.cases)
	switch i {
	case 0:
		return wokeByTimer
	case 1:
		return wokeByClose
	case 2:
		return wokeByContext
	}
	return wokeByAppend
}

// response encodes the fetch response body (see the package doc) as parts:
// framing bytes from st.buf and each partition's chunk in between.
func (st *fetchState) response(version, topErr int16, readCommitted bool) netio.Response {
	flexible := version >= 12
	b := st.buf[:0]
	b = binary.BigEndian.AppendUint32(b, 0) // throttle_time_ms
	if version >= 7 {
		b = binary.BigEndian.AppendUint16(b, uint16(topErr))
		b = binary.BigEndian.AppendUint32(b, 0) // session_id
	}
	topics := st.topics
	if topErr != 0 {
		topics = nil
	}
	b = appendArrayLen(b, len(topics), flexible)
	part := 0
	for _, t := range topics {
		b = appendString(b, t.name, flexible)
		b = appendArrayLen(b, t.n, flexible)
		for range t.n {
			pt := &st.parts[part]
			b = binary.BigEndian.AppendUint32(b, uint32(pt.partition))
			b = binary.BigEndian.AppendUint16(b, uint16(pt.code))
			b = binary.BigEndian.AppendUint64(b, uint64(pt.hw))
			b = binary.BigEndian.AppendUint64(b, uint64(pt.hw)) // last_stable_offset: no transactions
			if version >= 5 {
				b = binary.BigEndian.AppendUint64(b, uint64(pt.logStart))
			}
			// aborted_transactions: null when reading uncommitted, else empty.
			switch {
			case flexible && readCommitted:
				b = append(b, 1)
			case flexible:
				b = append(b, 0)
			case readCommitted:
				b = binary.BigEndian.AppendUint32(b, 0)
			default:
				b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			}
			if version >= 11 {
				b = binary.BigEndian.AppendUint32(b, 0xffffffff) // preferred_read_replica -1
			}
			n := pt.chunk.Size()
			if flexible {
				b = binary.AppendUvarint(b, uint64(n)+1)
			} else {
				b = binary.BigEndian.AppendUint32(b, uint32(n))
			}
			if n > 0 {
				st.marks = append(st.marks, fetchMark{end: len(b), part: part})
			}
			if flexible {
				b = append(b, 0) // partition tagged fields
			}
			part++
		}
		if flexible {
			b = append(b, 0) // topic tagged fields
		}
	}
	if flexible {
		b = append(b, 0) // body tagged fields
	}
	st.buf = b
	prev := 0
	for _, m := range st.marks {
		st.out = append(st.out, netio.Part{Bytes: b[prev:m.end]})
		c := &st.parts[m.part].chunk
		if c.File != nil {
			st.out = append(st.out, netio.Part{File: c.File, Offset: c.Pos, Length: c.Len})
		} else {
			st.out = append(st.out, netio.Part{Bytes: c.Bytes})
		}
		prev = m.end
	}
	st.out = append(st.out, netio.Part{Bytes: b[prev:]})
	return netio.Response{Parts: st.out, Done: st.done}
}

// appendArrayLen appends an array length: int32, or uvarint(n+1) when
// flexible (compact).
func appendArrayLen(b []byte, n int, flexible bool) []byte {
	if flexible {
		return binary.AppendUvarint(b, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// appendString appends a string: int16 length, or uvarint(len+1) when
// flexible (compact).
func appendString(b []byte, s string, flexible bool) []byte {
	if flexible {
		b = binary.AppendUvarint(b, uint64(len(s))+1)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	}
	return append(b, s...)
}
