package broker

import (
	"context"
	"encoding/binary"
	"fmt"
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
// Consumers (replica_id < 0) read committed records only, below the high
// watermark; followers (replica_id >= 0) read up to the log end. Every
// partition reports the high watermark, and the log start offset. A
// current_leader_epoch (v9+) other than -1 must be the partition's leader
// epoch (older: FENCED_LEADER_EPOCH, newer: UNKNOWN_LEADER_EPOCH), and a
// partition that follows another replica answers NOT_LEADER_OR_FOLLOWER. A
// last_fetched_epoch (v12) is checked for divergence as KIP-595 says: if the
// log's end of that epoch is below the fetch offset, or the log does not
// hold the epoch, the partition answers with diverging_epoch set (the epoch
// and its end offset here) and no records, so that the follower truncates.
//
// A fetch that cannot be answered at once waits in the purgatory until
// min_bytes are available, max_wait_ms passes, the connection dies or the
// broker is closed, woken by appends to the partitions it reads and by
// moves of their high watermarks; the response is deferred meanwhile, so
// the connection's later requests go on. max_bytes and each partition's
// max_bytes are honoured, except that the first batch of the first
// partition with data is always sent whole (KIP-74). Fetch sessions are not
// supported: session_id is always 0, so clients send full requests.
func (b *Broker) handleFetch(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrFetchRequest()
	if err := decode(req, r, true); err != nil {
		return b.closeConn(req, err)
	}
	st := fetchPool.Get().(*fetchState)
	st.b = b
	st.version, st.readCommitted = req.APIVersion, r.IsolationLevel == 1
	if r.SessionID != 0 {
		// No session is ever handed out; the client holds a stale one.
		b.rejected(req, "fetch", errFetchSession, "session_id", r.SessionID)
		st.topErr = errorCode(errFetchSession)
		return st.response()
	}
	st.init(req, r)
	if st.replica && b.isr != nil {
		// A follower's fetch offset is its log end: the leader's view of
		// its progress, before the read reports the high watermark.
		for i := range st.parts {
			fp := &st.parts[i]
			b.isr.fetched(r.ReplicaID, fp.topic, fp.partition, fp.offset, fp.lastFetchedEpoch)
		}
	}
	total, now := b.fetchRead(st)
	if now || total >= st.minBytes || r.MaxWaitMillis <= 0 || b.isClosed() {
		return st.response()
	}
	st.release() // hold no segment while waiting
	d := req.Defer()
	st.d = d
	b.park(ctx, time.Duration(r.MaxWaitMillis)*time.Millisecond, &st.ws, st)
	return deferred(d) // st may be answered and recycled already
}

// isClosed reports whether Close was called.
func (b *Broker) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// fetchPart is one partition of a fetch request and, after a read, its
// answer.
type fetchPart struct {
	topic     string // aliases the request body
	partition int32
	offset    int64
	maxBytes  int32
	// currentEpoch and lastFetchedEpoch are the request's, -1 when not
	// given (or older versions).
	currentEpoch, lastFetchedEpoch int32
	err                            error // found in the request; answered without reading

	p        *engine.Partition // from the last read; nil if none
	code     int16
	hw       int64
	logStart int64
	chunk    engine.Chunk // empty unless the partition has records to send
	// diverged: the log diverges from the follower's before offset; the
	// answer is divEpoch, divEnd (diverging_epoch) and no records.
	diverged bool
	divEpoch int32
	divEnd   int64
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

// fetchState is one fetch, from its decoding to its response; pooled. It is
// returned to the pool by the response's Done, after the records were
// written (or dropped). While the fetch is parked it is the waiter, owned by
// the parking goroutine.
type fetchState struct {
	b             *Broker
	d             netio.Deferred // set when parked
	version       int16
	topErr        int16
	readCommitted bool
	replica       bool // replica_id >= 0: a follower, reading up to the log end
	minBytes      int64
	maxBytes      int32

	topics []fetchTopic
	parts  []fetchPart
	ws     watchSet
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
	st.b, st.d = nil, netio.Deferred{}
	st.version, st.topErr, st.readCommitted, st.replica, st.minBytes, st.maxBytes = 0, 0, false, false, 0, 0
	clear(st.topics)
	clear(st.parts)
	clear(st.out)
	st.ws.reset()
	st.topics, st.parts = st.topics[:0], st.parts[:0]
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
	st.replica = r.ReplicaID >= 0
	st.minBytes, st.maxBytes = int64(r.MinBytes), r.MaxBytes
	for i := range r.Topics {
		t := &r.Topics[i]
		st.topics = append(st.topics, fetchTopic{name: t.Topic, n: len(t.Partitions)})
		for j := range t.Partitions {
			rp := &t.Partitions[j]
			fp := fetchPart{topic: t.Topic, partition: rp.Partition, offset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes,
				currentEpoch: -1, lastFetchedEpoch: -1}
			if req.APIVersion >= 9 {
				fp.currentEpoch = rp.CurrentLeaderEpoch
			}
			if req.APIVersion >= 12 {
				fp.lastFetchedEpoch = rp.LastFetchedEpoch
			}
			st.parts = append(st.parts, fp)
		}
	}
}

// watch, check and finish make a parked fetch a waiter.

func (st *fetchState) watch(chs []<-chan struct{}) []<-chan struct{} {
	for i := range st.parts {
		if p := st.parts[i].p; p != nil {
			chs = append(chs, p.Changed())
		}
	}
	return chs
}

func (st *fetchState) check() bool {
	total, now := st.b.fetchRead(st)
	if now || total >= st.minBytes {
		return true
	}
	st.release() // hold no segment while waiting
	return false
}

func (st *fetchState) finish(why wakeReason) {
	switch why {
	case wokeByTimer, wokeByClose:
		// The wait is over: answer with what is there now.
		st.b.fetchRead(st)
	case wokeByContext:
		// Nobody will read the answer; netio drops it.
		st.release()
	}
	st.d.Complete(st.response())
}

// partitionFor returns a partition that this broker leads (if
// requireLeader) in the epoch the client names: currentEpoch -1 (or any
// negative) checks nothing, an older one is FENCED_LEADER_EPOCH, a newer one
// UNKNOWN_LEADER_EPOCH, and then a follower partition is
// NOT_LEADER_OR_FOLLOWER, in the order of Kafka's Partition.getLocalLog.
func (b *Broker) partitionFor(topic string, partition, currentEpoch int32, requireLeader bool) (*engine.Partition, error) {
	p, err := b.localPartition(topic, partition, requireLeader)
	if err != nil {
		return nil, err
	}
	if err := checkEpoch(p, currentEpoch); err != nil {
		return p, err
	}
	if requireLeader && p.IsFollower() {
		return p, fmt.Errorf("%w: %s/%d", engine.ErrNotLeader, topic, partition)
	}
	return p, nil
}

// checkEpoch compares a client's current_leader_epoch with the partition's.
func checkEpoch(p *engine.Partition, currentEpoch int32) error {
	if currentEpoch < 0 {
		return nil
	}
	switch cur := p.LeaderEpoch(); {
	case currentEpoch < cur:
		return fmt.Errorf("%w: %d < %d on %s/%d", errFencedEpoch, currentEpoch, cur, p.Topic(), p.ID())
	case currentEpoch > cur:
		return fmt.Errorf("%w: %d > %d on %s/%d", errLeaderEpoch, currentEpoch, cur, p.Topic(), p.ID())
	}
	return nil
}

// fetchRead reads every partition of the request (releasing nothing: the
// caller releases the previous read first) and returns how many record
// bytes it got and whether the fetch must be answered now because a
// partition has an error or diverged.
func (b *Broker) fetchRead(st *fetchState) (total int64, now bool) {
	remaining := int64(st.maxBytes)
	first := true // no partition has given records yet: its first batch goes whole
	for i := range st.parts {
		pt := &st.parts[i]
		pt.code, pt.hw, pt.logStart, pt.p, pt.diverged = 0, -1, -1, nil, false
		if pt.err != nil {
			pt.code, now = errorCode(pt.err), true
			continue
		}
		p, err := b.partitionFor(pt.topic, pt.partition, pt.currentEpoch, true)
		if err != nil {
			pt.code, now = errorCode(err), true
			continue
		}
		pt.p = p
		start, end, hw := p.StartOffset(), p.EndOffset(), p.HighWatermark()
		if pt.lastFetchedEpoch >= 0 {
			if code := divergence(p, pt, start); code != 0 || pt.diverged {
				pt.code, now = code, true
				if code == 0 {
					pt.hw, pt.logStart = hw, start
				}
				continue
			}
		}
		if pt.offset < start || pt.offset > end {
			pt.code, now = errorCode(engine.ErrOffsetOutOfRange), true
			continue
		}
		pt.hw, pt.logStart = hw, start
		bound := hw // what this reader may see
		if st.replica {
			bound = end
		}
		if pt.offset >= bound {
			continue
		}
		limit := min(int64(pt.maxBytes), remaining)
		if limit <= 0 && !first {
			continue
		}
		var c engine.Chunk
		if st.replica {
			c, err = p.ReadReplica(pt.offset, int(max(limit, 0)))
		} else {
			c, err = p.Read(pt.offset, int(max(limit, 0)))
		}
		if err != nil {
			pt.code, pt.hw, pt.logStart, now = errorCode(err), -1, -1, true
			continue
		}
		// The read took its own bound after hw was loaded; the high
		// watermark reported must cover every record sent to a consumer.
		pt.hw = max(hw, p.HighWatermark())
		n := c.Size()
		if n == 0 || (n > limit && !first) {
			c.Release() // the next fetch gets it, as the first partition with data
			continue
		}
		pt.chunk = c
		total += n
		remaining -= n
		first = false
	}
	return total, now
}

// divergence checks a follower's last fetched epoch as Kafka's
// Partition.readRecords does (KIP-595): the end of that epoch in this log
// must be known, the fetch offset not below the log start, and the epoch
// held here with its end at or past the fetch offset; otherwise pt
// diverged. It returns an error code, 0 if none.
func divergence(p *engine.Partition, pt *fetchPart, start int64) int16 {
	epoch, end := p.EndOffsetForEpoch(pt.lastFetchedEpoch)
	switch {
	case epoch == engine.UndefinedEpoch || end == engine.UndefinedOffset:
		return errorCode(engine.ErrOffsetOutOfRange) // nothing known of that epoch
	case pt.offset < start:
		return errorCode(engine.ErrOffsetOutOfRange)
	case epoch < pt.lastFetchedEpoch || end < pt.offset:
		pt.diverged, pt.divEpoch, pt.divEnd = true, epoch, end
	}
	return 0
}

// count counts what the response tells the client about pt, n record
// bytes and an error code, and logs the code if the broker is at fault.
func (st *fetchState) count(pt *fetchPart, n int64) {
	if n > 0 && pt.p != nil {
		if st.replica {
			pt.p.Counters().ReplicationBytesOut.Add(n)
		} else {
			c := pt.p.Counters()
			c.BytesOut.Add(n)
			c.RecordsOut.Add(pt.chunk.Records())
		}
	}
	if pt.code != 0 {
		st.b.countError(fetchKey, pt.code)
		if brokerFault(pt.code) {
			st.b.logFault(nil, "fetch", pt.code, pt.err, "topic", pt.topic, "partition", pt.partition, "replica", st.replica)
		}
	}
}

// fetchKey is the Fetch API key.
const fetchKey = 1

// response encodes the fetch response body (see the package doc) as parts:
// framing bytes from st.buf and each partition's chunk in between.
func (st *fetchState) response() netio.Response {
	version, topErr, readCommitted := st.version, st.topErr, st.readCommitted
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
			st.count(pt, n)
			if flexible {
				b = binary.AppendUvarint(b, uint64(n)+1)
			} else {
				b = binary.BigEndian.AppendUint32(b, uint32(n))
			}
			if n > 0 {
				st.marks = append(st.marks, fetchMark{end: len(b), part: part})
			}
			switch {
			case flexible && pt.diverged:
				// One tagged field, diverging_epoch (tag 0): epoch int32,
				// end_offset int64 and its own empty tag section.
				b = append(b, 1, 0, 4+8+1)
				b = binary.BigEndian.AppendUint32(b, uint32(pt.divEpoch))
				b = binary.BigEndian.AppendUint64(b, uint64(pt.divEnd))
				b = append(b, 0)
			case flexible:
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
