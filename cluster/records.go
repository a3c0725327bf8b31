package cluster

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/easel-io/easel/engine"
)

// RecordType identifies a metadata record. The values are frozen: they are
// part of the encoding (see the package doc).
type RecordType uint8

// The record types. Frozen.
const (
	TypeClusterID       RecordType = 1
	TypeRegisterBroker  RecordType = 2
	TypeFenceBroker     RecordType = 3
	TypeUnfenceBroker   RecordType = 4
	TypeTopic           RecordType = 5
	TypePartition       RecordType = 6
	TypePartitionChange RecordType = 7
	TypeRemoveTopic     RecordType = 8
	TypeProducerIDs     RecordType = 9
	TypeTopicConfig     RecordType = 10
	TypeBrokerConfig    RecordType = 11
)

var typeNames = [...]string{
	TypeClusterID:       "cluster-id",
	TypeRegisterBroker:  "register-broker",
	TypeFenceBroker:     "fence-broker",
	TypeUnfenceBroker:   "unfence-broker",
	TypeTopic:           "topic",
	TypePartition:       "partition",
	TypePartitionChange: "partition-change",
	TypeRemoveTopic:     "remove-topic",
	TypeProducerIDs:     "producer-ids",
	TypeTopicConfig:     "topic-config",
	TypeBrokerConfig:    "broker-config",
}

// String names the type as transcripts and errors show it.
func (t RecordType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "record-type-" + strconv.Itoa(int(t))
}

// Leader values with a special meaning.
const (
	// NoLeader is a partition's leader when it has none (it is offline).
	NoLeader int32 = -1
	// NoLeaderChange in PartitionChangeRecord.Leader keeps the leader (KRaft's
	// value for the same field).
	NoLeaderChange int32 = -2
)

// Record is one entry of the metadata log: State.Apply takes them in order.
// The set of records is closed (the types of this file); records are values
// and own their slices once decoded.
type Record interface {
	// Type is the record's frozen type number.
	Type() RecordType
	// String renders the record on one line, for transcripts and errors.
	String() string
	// version is the record version the record is written in: the oldest
	// that holds what it says, so records that use no newer field read the
	// same as before the field existed.
	version() uint8
	// appendBody appends the record's body in that version.
	appendBody(dst []byte) []byte
}

// ClusterIDRecord names the cluster. It is the first record of a cluster's
// log and is never changed.
type ClusterIDRecord struct {
	ClusterID string
}

// BrokerInfo is what a broker says about itself when it joins (gossip's node
// metadata): who it is and where to reach it.
type BrokerInfo struct {
	// ID is the broker's node id (>= 0).
	ID int32
	// Incarnation tells one run of the broker from the next (the broker picks
	// it at start, e.g. its start time): a new one means it restarted.
	Incarnation uint64
	// Host and Port are the advertised Kafka address.
	Host string
	Port int32
	// RaftAddr is the address of the broker's raft transport.
	RaftAddr string
	// Rack is broker.rack; "" for none. Placement spreads replicas over racks.
	Rack string
	// ControllerEligible is set on the raft voters.
	ControllerEligible bool
}

// RegisterBrokerRecord registers a broker, or one of its new incarnations,
// under a new broker epoch. A broker registers fenced and is unfenced once it
// has caught up on the metadata log.
type RegisterBrokerRecord struct {
	BrokerInfo
	// Epoch is the broker epoch of this registration. Invariant: greater than
	// any epoch the broker had before.
	Epoch int64
	// Fenced registers the broker fenced (what the controller does); a
	// snapshot registers each broker as it stands.
	Fenced bool
}

// FenceBrokerRecord fences a broker (it failed or shut down) under a new
// broker epoch, so requests made under its old epoch are stale. It leads no
// partition and is in no led partition's ISR when this record applies.
type FenceBrokerRecord struct {
	Broker int32
	// Epoch is the new broker epoch. Invariant: greater than the current one.
	Epoch int64
}

// UnfenceBrokerRecord lets a fenced broker lead and join ISRs again, once it
// has caught up on the metadata log at the epoch it names.
type UnfenceBrokerRecord struct {
	Broker int32
	// Epoch is the broker's current epoch (a stale unfence does not apply).
	Epoch int64
}

// Config is one topic setting by its Kafka name (retention.ms,
// unclean.leader.election.enable, ...).
type Config struct {
	Name, Value string
}

// TopicRecord creates a topic. Its partitions follow as PartitionRecords in
// the same entry: a topic is never without partitions once an entry applies.
type TopicRecord struct {
	Name string
	// ID is the topic's id (KIP-516). Never zero.
	ID engine.TopicID
	// Configs are the topic's explicit settings, sorted by name, no name
	// twice.
	Configs []Config
}

// PartitionRecord creates a topic's next partition (its index is the
// topic's partition count) or, in a snapshot, restores one as it stands.
type PartitionRecord struct {
	Topic     engine.TopicID
	Partition int32
	// Replicas are the brokers holding the partition, preferred leader first.
	Replicas []int32
	// ISR is the in-sync replica set. Invariant: a non-empty subset of
	// Replicas.
	ISR []int32
	// Leader is NoLeader or a member of ISR on an unfenced broker.
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	// Adding and Removing are an ongoing reassignment's (a snapshot's
	// partition that is moving; see Partition). Both empty (the usual case)
	// writes record version 0, else version 1.
	Adding, Removing []int32
	// UncleanEpoch is a snapshot's Partition.UncleanEpoch; non-zero writes
	// record version 2.
	UncleanEpoch int32
}

// PartitionChangeRecord changes a partition's leader, ISR or replicas (the
// AlterPartition-like record). It names the leader and partition epochs it
// replaces and applies only while they are current; the partition epoch then
// grows by one, and the leader epoch by one when the leader changes.
type PartitionChangeRecord struct {
	Topic     engine.TopicID
	Partition int32
	// LeaderEpoch and PartitionEpoch are the epochs the change replaces.
	LeaderEpoch    int32
	PartitionEpoch int32
	// Leader is the new leader, NoLeader, or NoLeaderChange.
	Leader int32
	// ISR is the new ISR; nil keeps it.
	ISR []int32
	// Replicas are the new replicas; nil keeps them (reassignment).
	Replicas []int32
	// Unclean marks a leader elected from outside the ISR: committed records
	// may be lost. The new leader epoch becomes the partition's
	// UncleanEpoch. Only with a leader change.
	Unclean bool
	// Adding and Removing set the partition's ongoing reassignment (see
	// Partition): nil keeps each, an empty slice clears it. Both nil (every
	// change but a reassignment's) writes record version 0, else version 1.
	Adding, Removing []int32
}

// RemoveTopicRecord deletes a topic and its partitions.
type RemoveTopicRecord struct {
	Topic engine.TopicID
}

// ProducerIDsRecord hands the block of producer ids [Start, Start+Size) to a
// broker (KIP-730). Broker -1 reserves ids handed out before the cluster
// kept the counter (a single node's old state file).
type ProducerIDsRecord struct {
	Broker      int32
	BrokerEpoch int64
	// Start is the block's first id. Invariant: the state's next producer id.
	Start int64
	// Size is the number of ids in the block (> 0).
	Size int64
}

// TopicConfigRecord replaces a topic's explicit settings (AlterConfigs,
// IncrementalAlterConfigs): every broker hosting the topic's partitions
// applies them to its logs.
type TopicConfigRecord struct {
	Topic engine.TopicID
	// Configs are the topic's explicit settings from now on, sorted by name,
	// no name twice; empty: all defaults.
	Configs []Config
}

// DefaultBrokerConfigs is the broker of a BrokerConfigRecord that sets the
// cluster-wide defaults (Kafka's BROKER resource named "").
const DefaultBrokerConfigs int32 = -1

// BrokerConfigRecord replaces the dynamic settings of one broker, or with
// Broker DefaultBrokerConfigs the cluster-wide dynamic defaults, by their
// broker names (log.retention.ms, min.insync.replicas, ...; see
// DynamicBrokerConfigs). A broker's own settings override the cluster's,
// and a topic's override both.
type BrokerConfigRecord struct {
	// Broker is a broker id (>= 0, registered or not) or
	// DefaultBrokerConfigs.
	Broker int32
	// Configs are the settings from now on, sorted by name, no name twice;
	// empty: none.
	Configs []Config
}

// Type implements Record.
func (ClusterIDRecord) Type() RecordType { return TypeClusterID }

// Type implements Record.
func (TopicConfigRecord) Type() RecordType { return TypeTopicConfig }

// Type implements Record.
func (BrokerConfigRecord) Type() RecordType { return TypeBrokerConfig }

// Type implements Record.
func (RegisterBrokerRecord) Type() RecordType { return TypeRegisterBroker }

// Type implements Record.
func (FenceBrokerRecord) Type() RecordType { return TypeFenceBroker }

// Type implements Record.
func (UnfenceBrokerRecord) Type() RecordType { return TypeUnfenceBroker }

// Type implements Record.
func (TopicRecord) Type() RecordType { return TypeTopic }

// Type implements Record.
func (PartitionRecord) Type() RecordType { return TypePartition }

// Type implements Record.
func (PartitionChangeRecord) Type() RecordType { return TypePartitionChange }

// Type implements Record.
func (RemoveTopicRecord) Type() RecordType { return TypeRemoveTopic }

// Type implements Record.
func (ProducerIDsRecord) Type() RecordType { return TypeProducerIDs }

// String implements Record.
func (r ClusterIDRecord) String() string { return "cluster-id " + strconv.Quote(r.ClusterID) }

// String implements Record.
func (r RegisterBrokerRecord) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "register-broker %d epoch=%d inc=%d kafka=%s raft=%s", r.ID, r.Epoch, r.Incarnation,
		joinHostPort(r.Host, r.Port), r.RaftAddr)
	if r.Rack != "" {
		b.WriteString(" rack=" + r.Rack)
	}
	if r.ControllerEligible {
		b.WriteString(" controller")
	}
	if r.Fenced {
		b.WriteString(" fenced")
	}
	return b.String()
}

// String implements Record.
func (r FenceBrokerRecord) String() string {
	return fmt.Sprintf("fence-broker %d epoch=%d", r.Broker, r.Epoch)
}

// String implements Record.
func (r UnfenceBrokerRecord) String() string {
	return fmt.Sprintf("unfence-broker %d epoch=%d", r.Broker, r.Epoch)
}

// String implements Record.
func (r TopicRecord) String() string {
	s := "topic " + r.Name + " id=" + r.ID.String()
	if len(r.Configs) > 0 {
		s += " configs=" + configList(r.Configs)
	}
	return s
}

// String implements Record.
func (r TopicConfigRecord) String() string {
	return "topic-config " + r.Topic.String() + " configs=" + configList(r.Configs)
}

// String implements Record.
func (r BrokerConfigRecord) String() string {
	return "broker-config " + strconv.Itoa(int(r.Broker)) + " configs=" + configList(r.Configs)
}

// configList renders configs as [a=1,b=2].
func configList(cs []Config) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Name + "=" + c.Value
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// String implements Record.
func (r PartitionRecord) String() string {
	s := fmt.Sprintf("partition %s/%d replicas=%s isr=%s leader=%d epochs=%d/%d",
		r.Topic, r.Partition, brokerList(r.Replicas), brokerList(r.ISR), r.Leader, r.LeaderEpoch, r.PartitionEpoch)
	if len(r.Adding) > 0 || len(r.Removing) > 0 {
		s += " adding=" + brokerList(r.Adding) + " removing=" + brokerList(r.Removing)
	}
	if r.UncleanEpoch != 0 {
		s += fmt.Sprintf(" unclean_epoch=%d", r.UncleanEpoch)
	}
	return s
}

// String implements Record.
func (r PartitionChangeRecord) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partition-change %s/%d from=%d/%d", r.Topic, r.Partition, r.LeaderEpoch, r.PartitionEpoch)
	if r.Leader != NoLeaderChange {
		fmt.Fprintf(&b, " leader=%d", r.Leader)
	}
	if r.ISR != nil {
		b.WriteString(" isr=" + brokerList(r.ISR))
	}
	if r.Replicas != nil {
		b.WriteString(" replicas=" + brokerList(r.Replicas))
	}
	if r.Adding != nil {
		b.WriteString(" adding=" + brokerList(r.Adding))
	}
	if r.Removing != nil {
		b.WriteString(" removing=" + brokerList(r.Removing))
	}
	if r.Unclean {
		b.WriteString(" unclean")
	}
	return b.String()
}

// String implements Record.
func (r RemoveTopicRecord) String() string { return "remove-topic " + r.Topic.String() }

// String implements Record.
func (r ProducerIDsRecord) String() string {
	return fmt.Sprintf("producer-ids broker=%d epoch=%d start=%d size=%d", r.Broker, r.BrokerEpoch, r.Start, r.Size)
}

// brokerList renders ids as [1,2,3].
func brokerList(ids []int32) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(id)))
	}
	b.WriteByte(']')
	return b.String()
}

func joinHostPort(host string, port int32) string {
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}
