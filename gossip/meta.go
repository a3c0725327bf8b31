package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Meta is what a broker tells the others about itself through gossip.
type Meta struct {
	// NodeID is the broker's Kafka node id; its member name is the decimal
	// form of it.
	NodeID int32
	// KafkaAddr is the host:port clients reach the broker at (its advertised
	// listener).
	KafkaAddr string
	// RaftAddr is the host:port of its raft transport ("" if it has none).
	RaftAddr string
	// Rack is broker.rack ("" for none).
	Rack string
	// ControllerEligible: the broker is one of the controller voters.
	ControllerEligible bool
	// Incarnation changes at every start of the broker process, so that a
	// restart under the same id can be told from the same run.
	Incarnation int64
	// VoterSet is a fingerprint of the controller voter list the broker was
	// configured with (0: not given). Brokers configured with different
	// voter lists must not form one cluster; the controller refuses a
	// member whose fingerprint differs from its own.
	VoterSet uint64

	// leaving is set by Leave just before the leave message.
	leaving bool
}

// MaxMetaSize is memberlist's limit on node metadata (MetaMaxSize).
const MaxMetaSize = 512

// metaVersion is the first byte of encoded Meta: 1 without a VoterSet,
// 2 with one. Frozen.
const (
	metaVersion         = 1
	metaVersionVoterSet = 2
)

// ErrBadMeta is returned for node metadata that does not decode.
var ErrBadMeta = errors.New("gossip: malformed node metadata")

// Encoded node metadata, big-endian, frozen:
//
//	version uint8 (=1) | nodeID int32 | incarnation int64 | flags uint8 (bit 0: controller-eligible, bit 1: leaving) |
//	len uint8 | kafkaAddr | len uint8 | raftAddr | len uint8 | rack
//
// Version 2 is version 1 followed by voterSet uint64 (never 0); a Meta
// without a VoterSet is written as version 1, so older decoders read it.
//
// Each string is at most 255 bytes; the whole at most MaxMetaSize.

// MarshalBinary encodes m; it fails if a string is over 255 bytes or the
// whole over MaxMetaSize.
func (m Meta) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 24+len(m.KafkaAddr)+len(m.RaftAddr)+len(m.Rack)+3)
	if m.VoterSet != 0 {
		b = append(b, metaVersionVoterSet)
	} else {
		b = append(b, metaVersion)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(m.NodeID))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Incarnation))
	var flags byte
	if m.ControllerEligible {
		flags |= 1
	}
	if m.leaving {
		flags |= 2
	}
	b = append(b, flags)
	for _, s := range []string{m.KafkaAddr, m.RaftAddr, m.Rack} {
		if len(s) > 255 {
			return nil, fmt.Errorf("%w: %q longer than 255 bytes", ErrBadMeta, s)
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	if m.VoterSet != 0 {
		b = binary.BigEndian.AppendUint64(b, m.VoterSet)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrBadMeta, len(b), MaxMetaSize)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (m *Meta) UnmarshalBinary(b []byte) error {
	if len(b) < 14 || b[0] != metaVersion && b[0] != metaVersionVoterSet || len(b) > MaxMetaSize {
		return ErrBadMeta
	}
	var out Meta
	out.NodeID = int32(binary.BigEndian.Uint32(b[1:]))
	out.Incarnation = int64(binary.BigEndian.Uint64(b[5:]))
	if b[13]&^3 != 0 {
		return ErrBadMeta
	}
	out.ControllerEligible = b[13]&1 != 0
	out.leaving = b[13]&2 != 0
	r := b[14:]
	var strs [3]string
	for i := range strs {
		if len(r) < 1 || len(r) < 1+int(r[0]) {
			return ErrBadMeta
		}
		strs[i], r = string(r[1:1+int(r[0])]), r[1+int(r[0]):]
	}
	if b[0] == metaVersionVoterSet {
		if len(r) != 8 {
			return ErrBadMeta
		}
		out.VoterSet, r = binary.BigEndian.Uint64(r), r[8:]
		if out.VoterSet == 0 {
			return ErrBadMeta // version 1 says "none"
		}
	}
	if len(r) != 0 {
		return ErrBadMeta
	}
	out.KafkaAddr, out.RaftAddr, out.Rack = strs[0], strs[1], strs[2]
	*m = out
	return nil
}
