package cluster

import (
	"errors"
	"fmt"

	"github.com/easel-io/easel/engine"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Errors. A decision returns one of them (wrapped with details) and no
// records; State.Apply returns an error wrapping ErrRejected and, where one
// fits, one of the others. KafkaError maps them to Kafka error codes.
var (
	// ErrCorrupt: an entry or snapshot does not decode.
	ErrCorrupt = errors.New("cluster: corrupt metadata encoding")
	// ErrUnsupportedVersion: an entry, record or snapshot version this code
	// does not know (written by a newer broker).
	ErrUnsupportedVersion = errors.New("cluster: unsupported metadata version")
	// ErrRejected: a record does not apply to the state; the state is as it
	// was before the entry.
	ErrRejected = errors.New("cluster: metadata record rejected")

	// ErrClusterIDMismatch: the metadata already names another cluster.
	ErrClusterIDMismatch = errors.New("cluster: cluster id differs")
	// ErrUnknownBroker: no broker is registered under the id.
	ErrUnknownBroker = errors.New("cluster: broker not registered")
	// ErrStaleBrokerEpoch: a request or record names a broker epoch that is
	// not the broker's current one (an older incarnation, or fenced since).
	ErrStaleBrokerEpoch = errors.New("cluster: stale broker epoch")
	// ErrUnknownTopic: no topic has the name, or a partition index is out of
	// the topic's range.
	ErrUnknownTopic = errors.New("cluster: unknown topic or partition")
	// ErrUnknownTopicID: no topic has the id.
	ErrUnknownTopicID = errors.New("cluster: unknown topic id")
	// ErrTopicExists: a topic with the name (or id) exists.
	ErrTopicExists = errors.New("cluster: topic already exists")
	// ErrInvalidTopic: the name is not a valid Kafka topic name, or collides
	// with an existing one once '.' and '_' are treated alike.
	ErrInvalidTopic = errors.New("cluster: invalid topic name")
	// ErrInvalidPartitions: a partition count below 1, above the limit, or
	// not above the current count (CreatePartitions).
	ErrInvalidPartitions = errors.New("cluster: invalid partition count")
	// ErrInvalidReplicationFactor: below 1, or more than the live brokers.
	ErrInvalidReplicationFactor = errors.New("cluster: invalid replication factor")
	// ErrInvalidReplicaAssignment: an explicit assignment names a broker
	// twice or an unregistered broker, differs in length between
	// partitions, or has no live broker.
	ErrInvalidReplicaAssignment = errors.New("cluster: invalid replica assignment")
	// ErrInvalidConfig: a topic config that is unknown, malformed or given
	// twice.
	ErrInvalidConfig = errors.New("cluster: invalid topic config")
	// ErrInvalidRequest: a request that is malformed in another way (an ISR
	// that is not a subset of the replicas or lacks the leader, a bad broker
	// address, both an assignment and a count).
	ErrInvalidRequest = errors.New("cluster: invalid request")
	// ErrFencedLeaderEpoch: an ISR change names a leader epoch older than the
	// partition's.
	ErrFencedLeaderEpoch = errors.New("cluster: stale leader epoch")
	// ErrInvalidUpdateVersion: an ISR change names a partition epoch older
	// than the partition's.
	ErrInvalidUpdateVersion = errors.New("cluster: stale partition epoch")
	// ErrNotController: a request names epochs newer than this state has
	// seen: the state is behind, and the caller should retry (at the
	// controller).
	ErrNotController = errors.New("cluster: metadata behind the request")
	// ErrNotLeader: an ISR change from a broker that does not lead the
	// partition.
	ErrNotLeader = errors.New("cluster: broker does not lead the partition")
	// ErrIneligibleReplica: an ISR or leader names a fenced broker.
	ErrIneligibleReplica = errors.New("cluster: replica is fenced")
	// ErrNoReassignmentInProgress: a reassignment cancelled where none is
	// in progress.
	ErrNoReassignmentInProgress = errors.New("cluster: no reassignment in progress")
	// ErrProducerIDsExhausted: no producer id block is left.
	ErrProducerIDsExhausted = errors.New("cluster: producer ids exhausted")
)

// kafkaErrors maps errors to Kafka error codes, checked in order with
// errors.Is, so the specific entries come before ErrRejected.
var kafkaErrors = []struct {
	err   error
	kafka *kerr.Error
}{
	{ErrClusterIDMismatch, kerr.InconsistentClusterID},
	{ErrUnknownBroker, kerr.BrokerIDNotRegistered},
	{ErrStaleBrokerEpoch, kerr.StaleBrokerEpoch},
	{ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{ErrUnknownTopicID, kerr.UnknownTopicID},
	{ErrTopicExists, kerr.TopicAlreadyExists},
	{ErrInvalidTopic, kerr.InvalidTopicException},
	{engine.ErrInvalidTopic, kerr.InvalidTopicException},
	{ErrInvalidPartitions, kerr.InvalidPartitions},
	{ErrInvalidReplicationFactor, kerr.InvalidReplicationFactor},
	{ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment},
	{ErrInvalidConfig, kerr.InvalidConfig},
	{engine.ErrInvalidConfig, kerr.InvalidConfig},
	{ErrInvalidRequest, kerr.InvalidRequest},
	{ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{ErrInvalidUpdateVersion, kerr.InvalidUpdateVersion},
	{ErrNotController, kerr.NotController},
	{ErrNotLeader, kerr.NotLeaderForPartition},
	{ErrIneligibleReplica, kerr.IneligibleReplica},
	{ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress},
	{ErrProducerIDsExhausted, kerr.UnknownServerError},
	{ErrRejected, kerr.UnknownServerError},
	{ErrCorrupt, kerr.UnknownServerError},
	{ErrUnsupportedVersion, kerr.UnknownServerError},
}

// KafkaError returns the Kafka error for err: nil for nil, the table's entry
// for the package's errors, UNKNOWN_SERVER_ERROR for anything else.
func KafkaError(err error) *kerr.Error {
	if err == nil {
		return nil
	}
	for _, e := range kafkaErrors {
		if errors.Is(err, e.err) {
			return e.kafka
		}
	}
	return kerr.UnknownServerError
}

// ErrorCode is KafkaError's code: 0 for nil.
func ErrorCode(err error) int16 {
	if e := KafkaError(err); e != nil {
		return e.Code
	}
	return 0
}

// RejectError is the error of a record State.Apply refused. It wraps
// ErrRejected and the reason's sentinel error, when there is one.
type RejectError struct {
	// Record is the refused record; Index is its position in the entry.
	Record Record
	Index  int
	// Reason says why, Cause is the sentinel error it matches (or nil).
	Reason string
	Cause  error
}

// Error names the record and the reason.
func (e *RejectError) Error() string {
	return fmt.Sprintf("cluster: record %d (%s) rejected: %s", e.Index, e.Record, e.Reason)
}

// Unwrap returns ErrRejected and the cause.
func (e *RejectError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrRejected}
	}
	return []error{ErrRejected, e.Cause}
}

// detailError is one of the package's sentinel errors (cause; nil for a
// rejection no sentinel names) with the details of one case.
type detailError struct {
	cause error
	msg   string
}

func (e *detailError) Error() string {
	if e.cause == nil {
		return "cluster: " + e.msg
	}
	return e.cause.Error() + ": " + e.msg
}

func (e *detailError) Unwrap() error { return e.cause }

// errf returns a *detailError.
func errf(cause error, format string, args ...any) error {
	return &detailError{cause, fmt.Sprintf(format, args...)}
}
