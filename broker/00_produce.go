package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

func init() { regKey(0, 0, 9, (*Broker).handleProduce, 0) } // v0–2 answered UNSUPPORTED_VERSION

// handleProduce serves Produce v3–9 and answers v0–2 (message sets) with
// UNSUPPORTED_VERSION in every partition. acks 1 and -1 are the same on one
// node: the batch is appended, and fsynced first when the topic's flush
// policy says so. acks 0 gets no response; if anything failed the
// connection is closed instead, as Kafka does, so that the client refreshes
// its metadata.
func (b *Broker) handleProduce(_ context.Context, req *netio.Request) netio.Response {
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
			var start int64
			if err == nil {
				res, start, err = b.appendBatch(t.Topic, pt.Partition, pt.Records)
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
			rp.LogStartOffset = start
		}
	}
	if r.Acks == 0 {
		return netio.Response{None: true, Close: failed}
	}
	return netio.Response{Msg: resp}
}

// produceTopic checks that clients may produce to the topic called name.
func (b *Broker) produceTopic(name string) error {
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

// appendBatch appends the one batch in recs to a partition and returns where
// it went and the partition's log start offset.
func (b *Broker) appendBatch(topic string, partition int32, recs []byte) (engine.AppendResult, int64, error) {
	p, err := b.eng.Partition(topic, partition)
	if err != nil {
		return engine.AppendResult{}, 0, err
	}
	batch, err := singleBatch(recs)
	if err != nil {
		return engine.AppendResult{}, 0, err
	}
	res, err := p.Append(batch)
	if err != nil {
		return engine.AppendResult{}, 0, err
	}
	return res, p.StartOffset(), nil
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
