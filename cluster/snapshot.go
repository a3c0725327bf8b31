package cluster

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Snapshot format constants. Frozen.
const (
	snapshotMagic   = "EMDS" // Easel metadata snapshot
	snapshotVersion = 0
	// snapshotOverhead is the magic, version, record count and checksum.
	snapshotOverhead = len(snapshotMagic) + 1 + 4 + 8
)

// Records returns the records that rebuild s from the empty state, in a
// fixed order: the cluster id, the brokers by id (each as it stands, fenced
// or not, at its epoch), the dynamic broker settings by broker id (the
// cluster-wide defaults first), each topic by name followed by its partitions by
// index (a moving one with its reassignment), and one block reserving the producer ids handed out so far. Equal
// states give equal records.
func (s *State) Records() []Record {
	recs := make([]Record, 0, 2+len(s.brokers)+len(s.topics)+len(s.parts))
	if s.clusterID != "" {
		recs = append(recs, ClusterIDRecord{ClusterID: s.clusterID})
	}
	for _, b := range s.Brokers() {
		recs = append(recs, RegisterBrokerRecord{BrokerInfo: b.BrokerInfo, Epoch: b.Epoch, Fenced: b.Fenced})
	}
	ids := slices.Sorted(maps.Keys(s.brokerConfigs))
	for _, id := range ids {
		recs = append(recs, BrokerConfigRecord{Broker: id, Configs: s.brokerConfigs[id]})
	}
	for _, t := range s.Topics() {
		recs = append(recs, TopicRecord{Name: t.Name, ID: t.ID, Configs: t.Configs})
		for _, p := range s.Partitions(t.ID) {
			recs = append(recs, PartitionRecord{
				Topic: p.Topic, Partition: p.Index, Replicas: p.Replicas, ISR: p.ISR,
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				Adding: p.Adding, Removing: p.Removing, UncleanEpoch: p.UncleanEpoch,
			})
		}
	}
	if s.nextProducerID > 0 {
		recs = append(recs, ProducerIDsRecord{Broker: -1, Start: 0, Size: s.nextProducerID})
	}
	return recs
}

// Snapshot encodes the state (see the package doc for the layout): Records,
// framed and checksummed. It is deterministic: equal states, however they
// were reached, give equal bytes. The slice is the caller's.
func (s *State) Snapshot() []byte {
	b := make([]byte, 0, 64*(len(s.brokers)+len(s.parts))+snapshotOverhead)
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	recs := s.Records()
	b = binary.BigEndian.AppendUint32(b, uint32(len(recs)))
	for _, r := range recs {
		b = AppendRecord(b, r)
	}
	return binary.BigEndian.AppendUint64(b, xxhash.Sum64(b))
}

// Restore replaces s with the state b encodes (what Snapshot wrote). On
// error s is unchanged. b is not retained.
func (s *State) Restore(b []byte) error {
	if len(b) < snapshotOverhead || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: not a metadata snapshot", ErrCorrupt)
	}
	body, sum := b[:len(b)-8], binary.BigEndian.Uint64(b[len(b)-8:])
	if xxhash.Sum64(body) != sum {
		return fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	if v := body[len(snapshotMagic)]; v != snapshotVersion {
		return fmt.Errorf("%w: snapshot version %d", ErrUnsupportedVersion, v)
	}
	d := decoder{b: body[len(snapshotMagic)+1:]}
	recs := d.records()
	d.end()
	if d.err != nil {
		return fmt.Errorf("snapshot: %w", d.err)
	}
	n := NewState()
	if err := n.applyEntry(recs, false); err != nil {
		return fmt.Errorf("%w: snapshot does not apply: %w", ErrCorrupt, err)
	}
	*s = *n
	return nil
}
