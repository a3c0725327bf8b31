package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

func init() { regKey(0, 0, 9, (*Broker).handleProduce, 0) } // v0–2 answered UNSUPPORTED_VERSION

// handleProduce serves Produce v3–9 and answers v0–2 (message sets) with
// UNSUPPORTED_VERSION in every partition. Each batch is appended, and
// fsynced first when the topic's flush policy says so. acks=1 is answered
// then; acks=-1 (all) once the high watermark has passed every appended
// batch (HighWatermark() > its last offset). On a single node the high
// watermark follows the log end (under flush.messages=1, the fsynced end),
// so that is at once; when it is managed (replication), the request is
// deferred and parked in the purgatory, woken by the partitions' changes,
// until it is or the request's timeout passes (REQUEST_TIMED_OUT for the
// partitions not committed; NOT_LEADER_OR_FOLLOWER for those whose replica
// stopped leading or lost the batch). acks 0 gets no response; if anything
// failed the connection is closed instead, as Kafka does, so that the
// client refreshes its metadata.
func (b *Broker) handleProduce(ctx context.Context, req *netio.Request) netio.Response {
	if err := checkProduceTopics(req.Body, req.APIVersion); err != nil {
		return b.closeConn(req, err)
	}
	r := kmsg.NewPtrProduceRequest()
	if err := decode(req, r, true); err != nil {
		return b.closeConn(req, err)
	}
	var reqErr error
	switch {
	case req.APIVersion < 3:
		reqErr = errOldProduce
	case r.TransactionID != nil:
		reqErr = errTransactions
	case r.Acks != 0 && r.Acks != 1 && r.Acks != -1:
		reqErr = fmt.Errorf("%w: %d", errInvalidAcks, r.Acks)
	}
	if reqErr != nil {
		b.rejected(req, "produce request", reqErr, "acks", r.Acks)
	}

	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(req.APIVersion)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(r.Topics))
	failed := reqErr != nil
	var wait *produceWait // partitions acks=all must wait for; nil if none
	for i := range r.Topics {
		t := &r.Topics[i]
		rt := &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		topicErr := reqErr
		if topicErr == nil {
			topicErr = b.produceTopic(t.Topic)
		}
		for j := range t.Partitions {
			pt := &t.Partitions[j]
			rp := &rt.Partitions[j]
			rp.Partition = pt.Partition
			err := topicErr
			var res engine.AppendResult
			var p *engine.Partition
			if err == nil && r.Acks == -1 && b.isr != nil {
				err = b.isr.enough(t.Topic, pt.Partition, errNotEnoughReplicas)
			}
			if err == nil {
				p, res, err = b.appendBatch(t.Topic, pt.Partition, pt.Records)
			}
			if err != nil {
				failed = true
				rp.ErrorCode = errorCode(err)
				rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
				if req.APIVersion >= 8 {
					rp.ErrorMessage = errorMessage(err)
				}
				if reqErr == nil {
					b.rejected(req, "produce", err, "topic", t.Topic, "partition", pt.Partition)
				}
				continue
			}
			rp.BaseOffset = res.BaseOffset
			rp.LogAppendTime = res.LogAppendTime
			rp.LogStartOffset = p.StartOffset()
			if r.Acks == -1 && p.HighWatermark() <= res.LastOffset {
				if wait == nil {
					wait = &produceWait{b: b, resp: resp}
				}
				wait.parts = append(wait.parts, producePending{p: p, last: res.LastOffset, rp: rp})
			}
		}
	}
	if r.Acks == 0 {
		return netio.Response{None: true, Close: failed}
	}
	if wait != nil {
		d := req.Defer()
		wait.d = d
		b.park(ctx, time.Duration(r.TimeoutMillis)*time.Millisecond, &wait.ws, wait)
		return deferred(d)
	}
	return netio.Response{Msg: resp}
}

// producePending is a partition of an acks=all produce whose batch the
// high watermark has not yet passed.
type producePending struct {
	p       *engine.Partition
	last    int64 // the batch's last offset
	rp      *kmsg.ProduceResponseTopicPartition
	settled bool // committed, or answered with an error
}

// produceWait is a parked acks=all produce: a waiter (see purgatory.go)
// until the high watermark of every partition passes its batch. It is
// Kafka's DelayedProduce.
type produceWait struct {
	b     *Broker
	d     netio.Deferred
	resp  *kmsg.ProduceResponse
	parts []producePending
	ws    watchSet
}

func (w *produceWait) watch(chs []<-chan struct{}) []<-chan struct{} {
	for i := range w.parts {
		if pp := &w.parts[i]; !pp.settled {
			chs = append(chs, pp.p.Committed(pp.last))
		}
	}
	return chs
}

func (w *produceWait) check() bool {
	done := true
	for i := range w.parts {
		pp := &w.parts[i]
		if pp.settled {
			continue
		}
		if pp.p.HighWatermark() > pp.last {
			if w.b.isr != nil {
				if err := w.b.isr.enough(pp.p.Topic(), pp.p.ID(), errNotEnoughReplicasAfterAppend); err != nil {
					w.fail(pp, err)
					continue
				}
			}
			pp.settled = true
			continue
		}
		// The batch can no longer be committed here: the partition went
		// (topic deleted), follows another leader now, or lost the batch
		// to a truncation.
		var err error
		if cur, perr := w.b.eng.Partition(pp.p.Topic(), pp.p.ID()); perr != nil {
			err = perr
		} else if cur != pp.p || pp.p.IsFollower() || pp.p.EndOffset() <= pp.last {
			err = fmt.Errorf("%w: %s/%d no longer holds offset %d as leader", engine.ErrNotLeader, pp.p.Topic(), pp.p.ID(), pp.last)
		}
		if err != nil {
			w.fail(pp, err)
			continue
		}
		done = false
	}
	return done
}

func (w *produceWait) finish(why wakeReason) {
	var err error
	switch why {
	case wokeByTimer:
		err = fmt.Errorf("%w: the high watermark did not pass the batch", errTimedOut)
	case wokeByClose:
		err = engine.ErrClosed // shutting down: retriable
	}
	if err != nil {
		for i := range w.parts {
			if pp := &w.parts[i]; !pp.settled {
				w.fail(pp, err)
			}
		}
	}
	w.d.Complete(netio.Response{Msg: w.resp})
}

// fail answers one pending partition with err. As Kafka's DelayedProduce
// does, the base offset the append got is kept.
func (w *produceWait) fail(pp *producePending, err error) {
	pp.settled = true
	pp.rp.ErrorCode = errorCode(err)
	if w.resp.Version >= 8 {
		pp.rp.ErrorMessage = errorMessage(err)
	}
	w.b.countError(0, pp.rp.ErrorCode)
	w.b.logFault(nil, "acks=all produce not committed", pp.rp.ErrorCode, err, "topic", pp.p.Topic(), "partition", pp.p.ID(), "offset", pp.last)
}

// produceTopic checks that clients may produce to the topic called name.
func (b *Broker) produceTopic(name string) error {
	if b.node != nil {
		// In a cluster the partition lookup (localPartition) finds unknown
		// topics and partitions led elsewhere; only the internal topic is
		// refused here, without building the topic's settings per request.
		if name == engine.ConsumerOffsetsTopic {
			return fmt.Errorf("%w: %q", errInternalTopic, name)
		}
		return nil
	}
	info, err := b.eng.Topic(name)
	if err != nil {
		if errors.Is(err, engine.ErrUnknownTopic) {
			if verr := engine.ValidateTopicName(name); verr != nil {
				return verr
			}
		}
		return err
	}
	if info.Internal {
		return fmt.Errorf("%w: %q", errInternalTopic, name)
	}
	return nil
}

// appendBatch appends the one batch in recs to a partition and returns the
// partition and where the batch went.
func (b *Broker) appendBatch(topic string, partition int32, recs []byte) (*engine.Partition, engine.AppendResult, error) {
	p, err := b.localPartition(topic, partition, true)
	if err != nil {
		return nil, engine.AppendResult{}, err
	}
	batch, err := singleBatch(recs)
	if err != nil {
		return nil, engine.AppendResult{}, err
	}
	res, err := p.Append(batch)
	if err != nil {
		return nil, engine.AppendResult{}, err
	}
	return p, res, nil
}

// singleBatch checks that recs holds exactly one non-transactional record
// batch v2 and returns it. Its CRC, counts and codec are checked by the
// engine's Append.
func singleBatch(recs []byte) ([]byte, error) {
	if len(recs) == 0 {
		return nil, errNoBatch
	}
	if len(recs) > record.PosMagic && recs[record.PosMagic] != record.Magic {
		return nil, fmt.Errorf("broker: produce: record batch magic %d: %w", int8(recs[record.PosMagic]), record.ErrInvalid)
	}
	batch, rest, err := record.Split(recs)
	if err != nil {
		return nil, fmt.Errorf("broker: produce: %w", err)
	}
	if len(rest) > 0 {
		if _, _, err := record.Split(rest); err == nil {
			return nil, errTwoBatches
		}
		return nil, errTrailingBytes
	}
	if h, err := record.ParseHeader(batch); err == nil && h.Transactional() {
		return nil, fmt.Errorf("%w: transactional record batch", errTransactions)
	}
	return batch, nil
}

// minProduceTopic is about the fewest bytes a produce request spends on a
// topic with one partition (v9: a one-letter name 2, partitions count 1,
// partition 4, null records 1, two tag sections 2 = 10); a topic count the
// body cannot hold at this size is hostile.
const minProduceTopic = 8

// checkProduceTopics rejects a Produce request whose topics count the body
// cannot back. kmsg allocates the topics array by its declared count before
// reading it, allowing it two bytes per topic; this check makes that
// allocation at most a small multiple of the body size. Anything else that
// is malformed is left to kmsg.
func checkProduceTopics(body []byte, version int16) error {
	p := body
	flexible := version >= 9
	if version >= 3 { // transactional_id
		if flexible {
			n, k := binary.Uvarint(p)
			if k <= 0 || n > uint64(len(p)-k)+1 {
				return nil
			}
			if n > 0 {
				p = p[k+int(n-1):]
			} else {
				p = p[k:]
			}
		} else {
			if len(p) < 2 {
				return nil
			}
			n := int(int16(binary.BigEndian.Uint16(p)))
			p = p[2:]
			if n > len(p) {
				return nil
			}
			if n > 0 {
				p = p[n:]
			}
		}
	}
	if len(p) < 6 { // acks, timeout
		return nil
	}
	p = p[6:]
	var count uint64
	if flexible {
		n, k := binary.Uvarint(p)
		if k <= 0 || n == 0 {
			return nil
		}
		count, p = n-1, p[k:]
	} else {
		if len(p) < 4 {
			return nil
		}
		n := int32(binary.BigEndian.Uint32(p))
		if n < 0 {
			return nil
		}
		count, p = uint64(n), p[4:]
	}
	if count > uint64(len(p))/minProduceTopic {
		return fmt.Errorf("%w: %d topics in %d bytes", errDecode, count, len(p))
	}
	return nil
}
