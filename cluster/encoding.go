package cluster

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/easel-io/easel/engine"
)

// Format constants. Frozen: they are part of the encoding.
const (
	entryVersion = 0 // the entry header's version byte
	// recordHeaderSize is a record's type, version and body length.
	recordHeaderSize = 1 + 1 + 4
)

// maxRecordVersions is the newest version of each record type; decoding
// accepts versions 0 through it (a newer broker's records stop an older one
// rather than being misread). A record is written in the oldest version that
// holds it (Record.version), so an older broker reads every record that
// uses no newer field.
var maxRecordVersions = [...]uint8{
	TypeClusterID: 0, TypeRegisterBroker: 0, TypeFenceBroker: 0, TypeUnfenceBroker: 0,
	TypeTopic: 0, TypePartition: 2, TypePartitionChange: 1, TypeRemoveTopic: 0, TypeProducerIDs: 0,
	TypeTopicConfig: 0, TypeBrokerConfig: 0,
}

// Decoding limits, checked before anything is allocated. Not part of the
// format: raising one only makes a decoder accept more.
const (
	maxRecords  = 1 << 24 // records in one entry or snapshot
	maxReplicas = 1024    // brokers in a replica list or ISR
	maxConfigs  = 1024    // configs of one topic
)

// Flag bits. Frozen. Decoding rejects unknown bits, so encodings stay
// canonical (what decodes re-encodes identically).
const (
	flagControllerEligible = 1 << 0 // RegisterBroker
	flagFenced             = 1 << 1 // RegisterBroker
	flagUnclean            = 1 << 0 // PartitionChange
)

// AppendEntry appends the encoding of one metadata log entry: records that
// State.Apply applies together or not at all.
func AppendEntry(dst []byte, recs []Record) []byte {
	dst = append(dst, entryVersion)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(recs)))
	for _, r := range recs {
		dst = AppendRecord(dst, r)
	}
	return dst
}

// DecodeEntry decodes what AppendEntry wrote. The records own their memory
// (nothing aliases b). A malformed entry is an error wrapping ErrCorrupt; a
// record version this code does not know wraps ErrUnsupportedVersion.
func DecodeEntry(b []byte) ([]Record, error) {
	d := decoder{b: b}
	if v := d.u8(); d.err == nil && v != entryVersion {
		return nil, fmt.Errorf("%w: entry version %d", ErrUnsupportedVersion, v)
	}
	recs := d.records()
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return recs, nil
}

// AppendRecord appends one record: its type, version, body length and body.
func AppendRecord(dst []byte, r Record) []byte {
	dst = append(dst, uint8(r.Type()), r.version())
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = r.appendBody(dst)
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return dst
}

// The versions records are written in.

func (ClusterIDRecord) version() uint8      { return 0 }
func (RegisterBrokerRecord) version() uint8 { return 0 }
func (FenceBrokerRecord) version() uint8    { return 0 }
func (UnfenceBrokerRecord) version() uint8  { return 0 }
func (TopicRecord) version() uint8          { return 0 }
func (RemoveTopicRecord) version() uint8    { return 0 }
func (ProducerIDsRecord) version() uint8    { return 0 }
func (TopicConfigRecord) version() uint8    { return 0 }
func (BrokerConfigRecord) version() uint8   { return 0 }

// version is 2 for a partition with an unclean election behind it (its
// epoch follows the version 1 body), 1 for a moving partition (the
// reassignment's lists follow the version 0 body).
func (r PartitionRecord) version() uint8 {
	switch {
	case r.UncleanEpoch != 0:
		return 2
	case len(r.Adding) > 0 || len(r.Removing) > 0:
		return 1
	}
	return 0
}

// version is 1 for a change that sets the reassignment.
func (r PartitionChangeRecord) version() uint8 {
	if r.Adding != nil || r.Removing != nil {
		return 1
	}
	return 0
}

// The bodies (see the package doc).

func (r ClusterIDRecord) appendBody(dst []byte) []byte { return appendString(dst, r.ClusterID) }

func (r RegisterBrokerRecord) appendBody(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.ID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Epoch))
	dst = binary.BigEndian.AppendUint64(dst, r.Incarnation)
	dst = appendString(dst, r.Host)
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Port))
	dst = appendString(dst, r.RaftAddr)
	dst = appendString(dst, r.Rack)
	var flags uint8
	if r.ControllerEligible {
		flags |= flagControllerEligible
	}
	if r.Fenced {
		flags |= flagFenced
	}
	return append(dst, flags)
}

func (r FenceBrokerRecord) appendBody(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Broker))
	return binary.BigEndian.AppendUint64(dst, uint64(r.Epoch))
}

func (r UnfenceBrokerRecord) appendBody(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Broker))
	return binary.BigEndian.AppendUint64(dst, uint64(r.Epoch))
}

func (r TopicRecord) appendBody(dst []byte) []byte {
	dst = appendString(dst, r.Name)
	dst = append(dst, r.ID[:]...)
	return appendConfigs(dst, r.Configs)
}

func (r TopicConfigRecord) appendBody(dst []byte) []byte {
	dst = append(dst, r.Topic[:]...)
	return appendConfigs(dst, r.Configs)
}

func (r BrokerConfigRecord) appendBody(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Broker))
	return appendConfigs(dst, r.Configs)
}

// appendConfigs appends a u32 count and each config's name and value.
func appendConfigs(dst []byte, cs []Config) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(cs)))
	for _, c := range cs {
		dst = appendString(dst, c.Name)
		dst = appendString(dst, c.Value)
	}
	return dst
}

func (r PartitionRecord) appendBody(dst []byte) []byte {
	dst = append(dst, r.Topic[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Partition))
	dst = appendInt32s(dst, r.Replicas)
	dst = appendInt32s(dst, r.ISR)
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Leader))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.LeaderEpoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.PartitionEpoch))
	if v := r.version(); v >= 1 {
		dst = appendInt32s(dst, r.Adding)
		dst = appendInt32s(dst, r.Removing)
		if v >= 2 {
			dst = binary.BigEndian.AppendUint32(dst, uint32(r.UncleanEpoch))
		}
	}
	return dst
}

func (r PartitionChangeRecord) appendBody(dst []byte) []byte {
	dst = append(dst, r.Topic[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Partition))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.LeaderEpoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.PartitionEpoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Leader))
	dst = appendNullableInt32s(dst, r.ISR)
	dst = appendNullableInt32s(dst, r.Replicas)
	var flags uint8
	if r.Unclean {
		flags |= flagUnclean
	}
	dst = append(dst, flags)
	if r.version() == 1 {
		dst = appendNullableInt32s(dst, r.Adding)
		dst = appendNullableInt32s(dst, r.Removing)
	}
	return dst
}

func (r RemoveTopicRecord) appendBody(dst []byte) []byte { return append(dst, r.Topic[:]...) }

func (r ProducerIDsRecord) appendBody(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Broker))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.BrokerEpoch))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Start))
	return binary.BigEndian.AppendUint64(dst, uint64(r.Size))
}

// appendString appends a u16 length and the bytes; longer strings are cut
// at 65535 bytes (State rejects them long before: see the limits in
// validBrokerInfo and validConfigs).
func appendString(dst []byte, s string) []byte {
	if len(s) > math.MaxUint16 {
		s = s[:math.MaxUint16]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendInt32s(dst []byte, v []int32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
	for _, x := range v {
		dst = binary.BigEndian.AppendUint32(dst, uint32(x))
	}
	return dst
}

// appendNullableInt32s writes count -1 for nil, so nil and empty differ.
func appendNullableInt32s(dst []byte, v []int32) []byte {
	if v == nil {
		return binary.BigEndian.AppendUint32(dst, math.MaxUint32)
	}
	return appendInt32s(dst, v)
}

// decoder reads big-endian fields with a sticky error: after the first
// failure every read returns a zero value, and err says what went wrong.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// end fails unless every byte was read.
func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) i32() int32 { return int32(d.u32()) }
func (d *decoder) i64() int64 { return int64(d.u64()) }

func (d *decoder) str() string {
	n := 0
	if v := d.take(2); v != nil {
		n = int(binary.BigEndian.Uint16(v))
	}
	return string(d.take(n))
}

func (d *decoder) id() (id engine.TopicID) {
	copy(id[:], d.take(len(id)))
	return id
}

// flags reads a flag byte and fails on bits outside known.
func (d *decoder) flags(known uint8) uint8 {
	f := d.u8()
	if f&^known != 0 {
		d.fail("unknown flags %#x", f)
	}
	return f
}

// count reads a u32 count and bounds it by max and by the bytes left
// (each element takes at least size bytes) before the caller allocates.
func (d *decoder) count(max, size int) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(max) || uint64(n)*uint64(size) > uint64(len(d.b)) {
		d.fail("count %d over the limit (%d) or the %d bytes left", n, max, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) int32s() []int32 {
	n := d.count(maxReplicas, 4)
	if n == 0 {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = d.i32()
	}
	return v
}

// nullableInt32s reads what appendNullableInt32s wrote: count -1 is nil,
// 0 is an empty non-nil slice.
func (d *decoder) nullableInt32s() []int32 {
	if len(d.b) >= 4 && binary.BigEndian.Uint32(d.b) == math.MaxUint32 {
		d.take(4)
		return nil
	}
	v := d.int32s()
	if v == nil && d.err == nil {
		v = []int32{}
	}
	return v
}

// configs reads what appendConfigs wrote (nil for none).
func (d *decoder) configs() []Config {
	n := d.count(maxConfigs, 4)
	if n == 0 {
		return nil
	}
	cs := make([]Config, n)
	for i := range cs {
		cs[i] = Config{Name: d.str(), Value: d.str()}
	}
	return cs
}

// records reads a count and that many records.
func (d *decoder) records() []Record {
	n := d.count(maxRecords, recordHeaderSize)
	if n == 0 {
		return nil
	}
	recs := make([]Record, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		recs = append(recs, d.record())
	}
	if d.err != nil {
		return nil
	}
	return recs
}

// record reads one record; its body must be read exactly.
func (d *decoder) record() Record {
	t := RecordType(d.u8())
	v := d.u8()
	n := int(d.u32())
	body := d.take(n)
	if d.err != nil {
		return nil
	}
	if int(t) >= len(maxRecordVersions) || typeNames[t] == "" {
		d.fail("unknown record type %d", t)
		return nil
	}
	if v > maxRecordVersions[t] {
		d.err = fmt.Errorf("%w: %s version %d", ErrUnsupportedVersion, t, v)
		d.b = nil
		return nil
	}
	rd := decoder{b: body}
	r := rd.body(t, v)
	rd.end()
	if rd.err != nil {
		d.err = fmt.Errorf("%s: %w", t, rd.err)
		d.b = nil
		return nil
	}
	return r
}

func (d *decoder) body(t RecordType, v uint8) Record {
	switch t {
	case TypeClusterID:
		return ClusterIDRecord{ClusterID: d.str()}
	case TypeRegisterBroker:
		var r RegisterBrokerRecord
		r.ID = d.i32()
		r.Epoch = d.i64()
		r.Incarnation = d.u64()
		r.Host = d.str()
		r.Port = d.i32()
		r.RaftAddr = d.str()
		r.Rack = d.str()
		f := d.flags(flagControllerEligible | flagFenced)
		r.ControllerEligible = f&flagControllerEligible != 0
		r.Fenced = f&flagFenced != 0
		return r
	case TypeFenceBroker:
		return FenceBrokerRecord{Broker: d.i32(), Epoch: d.i64()}
	case TypeUnfenceBroker:
		return UnfenceBrokerRecord{Broker: d.i32(), Epoch: d.i64()}
	case TypeTopic:
		var r TopicRecord
		r.Name = d.str()
		r.ID = d.id()
		r.Configs = d.configs()
		return r
	case TypeTopicConfig:
		var r TopicConfigRecord
		r.Topic = d.id()
		r.Configs = d.configs()
		return r
	case TypeBrokerConfig:
		var r BrokerConfigRecord
		r.Broker = d.i32()
		r.Configs = d.configs()
		return r
	case TypePartition:
		var r PartitionRecord
		r.Topic = d.id()
		r.Partition = d.i32()
		r.Replicas = d.int32s()
		r.ISR = d.int32s()
		r.Leader = d.i32()
		r.LeaderEpoch = d.i32()
		r.PartitionEpoch = d.i32()
		if v >= 1 {
			r.Adding = d.int32s()
			r.Removing = d.int32s()
		}
		if v >= 2 {
			r.UncleanEpoch = d.i32()
		}
		if v >= 1 && r.version() != v {
			d.fail("partition version %d written as version %d", v, r.version())
		}
		return r
	case TypePartitionChange:
		var r PartitionChangeRecord
		r.Topic = d.id()
		r.Partition = d.i32()
		r.LeaderEpoch = d.i32()
		r.PartitionEpoch = d.i32()
		r.Leader = d.i32()
		r.ISR = d.nullableInt32s()
		r.Replicas = d.nullableInt32s()
		r.Unclean = d.flags(flagUnclean)&flagUnclean != 0
		if v == 1 {
			r.Adding = d.nullableInt32s()
			r.Removing = d.nullableInt32s()
			if r.version() != 1 {
				d.fail("partition-change version 1 without a reassignment (written as version 0)")
			}
		}
		return r
	case TypeRemoveTopic:
		return RemoveTopicRecord{Topic: d.id()}
	case TypeProducerIDs:
		return ProducerIDsRecord{Broker: d.i32(), BrokerEpoch: d.i64(), Start: d.i64(), Size: d.i64()}
	}
	d.fail("unknown record type %d", t)
	return nil
}
