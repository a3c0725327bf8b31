package group

// The records the coordinator keeps in __consumer_offsets, in Kafka's own
// format (kmsg's OffsetCommitKey/Value and GroupMetadataKey/Value, which are
// Kafka's generated schemas). The byte layouts are in the package doc; every
// version constant below is frozen: it is what Kafka itself writes today
// (GroupCoordinatorRecordHelpers), and what tools reading the topic expect.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

const (
	offsetCommitKeyVersion    = 1 // OffsetCommitKey v1 (v0 has the same layout)
	offsetCommitValueVersion  = 3 // OffsetCommitValue v3: the highest non-flexible version, no expire timestamp
	groupMetadataKeyVersion   = 2 // GroupMetadataKey v2
	groupMetadataValueVersion = 3 // GroupMetadataValue v3 (KIP-345: group instance ids)
)

// committed is one committed offset of a group.
type committed struct {
	offset   int64
	epoch    int32 // leader epoch, -1 if unknown
	metadata string
	commitMs int64 // commit time, ms since the epoch
}

// appendOffsetKey appends the OffsetCommitKey of (group, topic, partition).
func appendOffsetKey(dst []byte, group, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetCommitKeyVersion, Group: group, Topic: topic, Partition: partition}
	return k.AppendTo(dst)
}

// offsetKeySize is the length of appendOffsetKey's output.
func offsetKeySize(group, topic string) int { return 2 + 2 + len(group) + 2 + len(topic) + 4 }

// offsetValueSize is the length of appendOffsetValue's output for metadata.
func offsetValueSize(metadata string) int { return 2 + 8 + 4 + 2 + len(metadata) + 8 }

// appendOffsetValue appends the OffsetCommitValue of o.
func appendOffsetValue(dst []byte, o committed) []byte {
	v := kmsg.OffsetCommitValue{
		Version:         offsetCommitValueVersion,
		Offset:          o.offset,
		LeaderEpoch:     o.epoch,
		Metadata:        o.metadata,
		CommitTimestamp: o.commitMs,
	}
	return v.AppendTo(dst)
}

// appendGroupKey appends the GroupMetadataKey of group.
func appendGroupKey(dst []byte, group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupMetadataKeyVersion, Group: group}
	return k.AppendTo(dst)
}

// appendGroupValue appends v at groupMetadataValueVersion.
func appendGroupValue(dst []byte, v *kmsg.GroupMetadataValue) []byte {
	v.Version = groupMetadataValueVersion
	return v.AppendTo(dst)
}

// recordKind says what a __consumer_offsets record is about.
type recordKind int8

const (
	kindUnknown recordKind = iota // a key version this coordinator does not use (KIP-848 groups, ...): skipped
	kindOffset                    // OffsetCommitKey: one committed offset
	kindGroup                     // GroupMetadataKey: a classic group's metadata
)

// stored is one decoded record. Its strings and slices are copies: they do
// not alias the record they were decoded from.
type stored struct {
	kind   recordKind
	group  string
	tp     engine.TopicPartition // kindOffset
	offset *committed            // kindOffset; nil for a tombstone
	meta   *kmsg.GroupMetadataValue
	// meta is set for kindGroup unless the record is a tombstone; its
	// members' Subscription and Assignment are copies.
}

var errBadRecord = errors.New("group: undecodable __consumer_offsets record")

// decodeStored decodes a record's key and value (nil value: a tombstone).
// Every value version Kafka has written decodes, not only the ones written
// here.
func decodeStored(key, value []byte) (stored, error) {
	if len(key) < 2 {
		return stored{}, fmt.Errorf("%w: %d-byte key", errBadRecord, len(key))
	}
	switch v := int16(binary.BigEndian.Uint16(key)); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return stored{}, fmt.Errorf("%w: offset commit key: %v", errBadRecord, err)
		}
		s := stored{kind: kindOffset, group: k.Group, tp: engine.TopicPartition{Topic: k.Topic, Partition: k.Partition}}
		if value == nil {
			return s, nil
		}
		var o kmsg.OffsetCommitValue
		if err := o.ReadFrom(value); err != nil {
			return stored{}, fmt.Errorf("%w: offset commit value of %q: %v", errBadRecord, k.Group, err)
		}
		epoch := int32(-1)
		if o.Version >= 3 {
			epoch = o.LeaderEpoch
		}
		s.offset = &committed{offset: o.Offset, epoch: epoch, metadata: o.Metadata, commitMs: o.CommitTimestamp}
		return s, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return stored{}, fmt.Errorf("%w: group metadata key: %v", errBadRecord, err)
		}
		s := stored{kind: kindGroup, group: k.Group}
		if value == nil {
			return s, nil
		}
		m := new(kmsg.GroupMetadataValue)
		if err := m.ReadFrom(value); err != nil {
			return stored{}, fmt.Errorf("%w: group metadata value of %q: %v", errBadRecord, k.Group, err)
		}
		for i := range m.Members {
			mm := &m.Members[i]
			mm.Subscription = append([]byte{}, mm.Subscription...) // ReadFrom aliases value
			mm.Assignment = append([]byte{}, mm.Assignment...)
		}
		s.meta = m
		return s, nil
	default:
		return stored{kind: kindUnknown}, nil
	}
}

// isFormatMarker reports whether a record is the format marker: the
// tombstone of the GroupMetadataKey of the empty group id, which starts
// partition 0 of every __consumer_offsets topic this package creates (see
// the package doc). No client can use the empty group id, so for Kafka's
// tools it deletes a group that never existed.
func isFormatMarker(key, value []byte) bool {
	if value != nil || len(key) < 2 || binary.BigEndian.Uint16(key) != groupMetadataKeyVersion {
		return false
	}
	var k kmsg.GroupMetadataKey
	return k.ReadFrom(key) == nil && k.Group == ""
}
