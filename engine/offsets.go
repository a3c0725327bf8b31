package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/record"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// CommittedOffset is a consumer group's position in one partition.
type CommittedOffset struct {
	Offset      int64
	LeaderEpoch int32 // -1 if unknown
	Metadata    string
	CommitTime  time.Time
}

// Offset commit records in __consumer_offsets (big-endian), frozen:
//
//	key:   version int16 (=1) | group len int16 | group | topic len int16 | topic | partition int32
//	value: offset int64 | leaderEpoch int32 | commitTime int64 (ms) | metadata len int32 | metadata
//	       (a null value deletes the key)
const offsetKeyVersion = 1

type offsetKey struct {
	group string
	tp    TopicPartition
}

type offsetStore struct {
	e    *Engine
	part *Partition
	mu   sync.RWMutex
	m    map[offsetKey]CommittedOffset
}

func loadOffsets(e *Engine) (*offsetStore, error) {
	p, err := e.Partition(ConsumerOffsetsTopic, 0)
	if err != nil {
		return nil, err
	}
	s := &offsetStore{e: e, part: p, m: make(map[offsetKey]CommittedOffset)}
	it := p.Records(p.StartOffset())
	defer it.Close()
	for it.Next() {
		r := it.Record()
		k, ok := decodeOffsetKey(r.Key)
		if !ok {
			e.log.Warn("skipping undecodable offset commit", "offset", r.Offset)
			continue
		}
		if r.Value == nil {
			delete(s.m, k)
			continue
		}
		v, ok := decodeOffsetValue(r.Value)
		if !ok {
			e.log.Warn("skipping undecodable offset commit", "offset", r.Offset)
			continue
		}
		s.m[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("engine: load committed offsets: %w", err)
	}
	return s, nil
}

func appendStr16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func encodeOffsetKey(k offsetKey) []byte {
	b := binary.BigEndian.AppendUint16(nil, offsetKeyVersion)
	b = appendStr16(b, k.group)
	b = appendStr16(b, k.tp.Topic)
	return binary.BigEndian.AppendUint32(b, uint32(k.tp.Partition))
}

func readStr16(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}

func decodeOffsetKey(b []byte) (offsetKey, bool) {
	if len(b) < 2 || binary.BigEndian.Uint16(b) != offsetKeyVersion {
		return offsetKey{}, false
	}
	g, r, ok := readStr16(b[2:])
	if !ok {
		return offsetKey{}, false
	}
	t, r, ok := readStr16(r)
	if !ok || len(r) != 4 {
		return offsetKey{}, false
	}
	return offsetKey{group: g, tp: TopicPartition{Topic: t, Partition: int32(binary.BigEndian.Uint32(r))}}, true
}

func encodeOffsetValue(v CommittedOffset) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(v.Offset))
	b = binary.BigEndian.AppendUint32(b, uint32(v.LeaderEpoch))
	b = binary.BigEndian.AppendUint64(b, uint64(v.CommitTime.UnixMilli()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(v.Metadata)))
	return append(b, v.Metadata...)
}

func decodeOffsetValue(b []byte) (CommittedOffset, bool) {
	if len(b) < 24 {
		return CommittedOffset{}, false
	}
	n := binary.BigEndian.Uint32(b[20:])
	if uint64(len(b)-24) != uint64(n) {
		return CommittedOffset{}, false
	}
	return CommittedOffset{
		Offset:      int64(binary.BigEndian.Uint64(b)),
		LeaderEpoch: int32(binary.BigEndian.Uint32(b[8:])),
		CommitTime:  time.UnixMilli(int64(binary.BigEndian.Uint64(b[12:]))),
		Metadata:    string(b[24:]),
	}, true
}

// write appends one batch of commit (or, with nil values, delete) records
// and, once it is stored, applies them to the map.
func (s *offsetStore) write(keys []offsetKey, vals []*CommittedOffset) error {
	if len(keys) == 0 {
		return nil
	}
	b := record.NewBuilder(record.BuilderOptions{Codec: codec.None, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	now := s.e.opts.Now().UnixMilli()
	for i, k := range keys {
		r := record.Record{Timestamp: now, Key: encodeOffsetKey(k)}
		if vals[i] != nil {
			r.Value = encodeOffsetValue(*vals[i])
		}
		b.Add(r)
	}
	batch, err := b.AppendTo(nil)
	if err != nil {
		return fmt.Errorf("engine: commit offsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.part.Append(batch); err != nil {
		return fmt.Errorf("engine: commit offsets: %w", err)
	}
	for i, k := range keys {
		if vals[i] == nil {
			delete(s.m, k)
		} else {
			s.m[k] = *vals[i]
		}
	}
	return nil
}

// CommitOffsets durably stores a group's offsets, all in one batch: after
// it returns they survive a crash of the process (and, with flush.messages=1
// on __consumer_offsets, of the machine).
func (e *Engine) CommitOffsets(group string, offsets map[TopicPartition]CommittedOffset) error {
	if e.isClosed() {
		return ErrClosed
	}
	if group == "" {
		return errors.New("engine: commit offsets: empty group id")
	}
	keys := make([]offsetKey, 0, len(offsets))
	vals := make([]*CommittedOffset, 0, len(offsets))
	for tp, v := range offsets {
		if v.CommitTime.IsZero() {
			v.CommitTime = e.opts.Now()
		}
		keys = append(keys, offsetKey{group: group, tp: tp})
		vals = append(vals, &v)
	}
	return e.offsets.write(keys, vals)
}

// FetchOffset returns a group's committed offset for one partition, or
// ErrUnknownGroupOffset.
func (e *Engine) FetchOffset(group, topic string, partition int32) (CommittedOffset, error) {
	if e.isClosed() {
		return CommittedOffset{}, ErrClosed
	}
	e.offsets.mu.RLock()
	defer e.offsets.mu.RUnlock()
	v, ok := e.offsets.m[offsetKey{group: group, tp: TopicPartition{Topic: topic, Partition: partition}}]
	if !ok {
		return CommittedOffset{}, fmt.Errorf("%w: group %q %s/%d", ErrUnknownGroupOffset, group, topic, partition)
	}
	return v, nil
}

// GroupOffsets returns every committed offset of a group.
func (e *Engine) GroupOffsets(group string) map[TopicPartition]CommittedOffset {
	e.offsets.mu.RLock()
	defer e.offsets.mu.RUnlock()
	out := make(map[TopicPartition]CommittedOffset)
	for k, v := range e.offsets.m {
		if k.group == group {
			out[k.tp] = v
		}
	}
	return out
}

// Groups lists the groups with committed offsets, sorted.
func (e *Engine) Groups() []string {
	e.offsets.mu.RLock()
	defer e.offsets.mu.RUnlock()
	seen := make(map[string]bool)
	var out []string
	for k := range e.offsets.m {
		if !seen[k.group] {
			seen[k.group] = true
			out = append(out, k.group)
		}
	}
	sort.Strings(out)
	return out
}

// DeleteGroupOffsets removes every committed offset of a group.
func (e *Engine) DeleteGroupOffsets(group string) error {
	return e.offsets.deleteMatching(func(k offsetKey) bool { return k.group == group })
}

func (s *offsetStore) deleteTopic(topic string) error {
	return s.deleteMatching(func(k offsetKey) bool { return k.tp.Topic == topic })
}

func (s *offsetStore) deleteMatching(match func(offsetKey) bool) error {
	s.mu.RLock()
	var keys []offsetKey
	for k := range s.m {
		if match(k) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	return s.write(keys, make([]*CommittedOffset, len(keys)))
}

func (e *Engine) isClosed() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mu.closed
}
