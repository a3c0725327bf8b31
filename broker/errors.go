package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// Errors the broker itself detects. The table in errorCode maps them, with
// the engine's, record's and codec's sentinels, to Kafka error codes.
var (
	errUnknownAPI       = errors.New("broker: unsupported api key")
	errBadVersion       = errors.New("broker: unsupported api version")
	errBodyTooBig       = errors.New("broker: request body too large for its api")
	errDecode           = errors.New("broker: malformed request body")
	errOldProduce       = errors.New("broker: produce v0-2 (message sets) is not supported; use v3+")
	errTransactions     = errors.New("broker: transactions are not supported")
	errNoBatch          = fmt.Errorf("broker: produce: no record batch: %w", record.ErrInvalid)
	errTwoBatches       = fmt.Errorf("broker: produce: more than one record batch per partition: %w", record.ErrInvalid)
	errTrailingBytes    = fmt.Errorf("broker: produce: bytes after the record batch: %w", record.ErrCorrupt)
	errInternalTopic    = errors.New("broker: internal topic: clients may not produce to it or delete its records")
	errInvalidAcks      = errors.New("broker: acks must be -1, 0 or 1")
	errPartitions       = errors.New("broker: invalid number of partitions")
	errReplication      = errors.New("broker: invalid replication factor (one broker)")
	errAssignment       = errors.New("broker: invalid replica assignment")
	errInvalidRequest   = errors.New("broker: invalid request")
	errLeaderEpoch      = errors.New("broker: leader epoch newer than the broker's")
	errFencedEpoch      = fmt.Errorf("broker: leader epoch older than the broker's: %w", engine.ErrFencedLeaderEpoch)
	errTimedOut         = errors.New("broker: request timed out")
	errPolicy           = errors.New("broker: not allowed by the topic's cleanup.policy")
	errFetchSession     = errors.New("broker: fetch sessions are not supported")
	errProducerIDSource = errors.New("broker: cannot reserve producer ids")
	// errLeaderNotAvailable: a topic being created, or a partition without
	// a leader (cluster only).
	errLeaderNotAvailable = errors.New("broker: leader not available")
	// errNoController: no controller could be reached in time (cluster
	// only); retriable.
	errNoController = errors.New("broker: no controller reachable")
	// errNotEnoughReplicas: an acks=all produce to a partition whose ISR is
	// smaller than min.insync.replicas, refused before the append;
	// errNotEnoughReplicasAfterAppend: the ISR shrank below it while the
	// produce waited (the records are appended, not acknowledged).
	errNotEnoughReplicas            = errors.New("broker: not enough in-sync replicas")
	errNotEnoughReplicasAfterAppend = errors.New("broker: not enough in-sync replicas after the append")
)

// errorCodes maps Go errors to Kafka error codes, checked in order with
// errors.Is (an error that wraps two sentinels gets the first one's code).
// This is the only place where that mapping lives.
var errorCodes = [...]struct {
	err  error
	code *kerr.Error
}{
	// An fsync failed: what was acknowledged may not be on disk. Retriable:
	// with replicas the client goes on with another leader.
	{engine.ErrLogFailed, kerr.KafkaStorageError},
	{engine.ErrNotLeader, kerr.NotLeaderForPartition}, // NOT_LEADER_OR_FOLLOWER
	{engine.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	// A create or delete of the same topic is in progress. Kafka answers a
	// CreateTopics or DeleteTopics whose topic is still being created or
	// deleted when its timeout ends with REQUEST_TIMED_OUT
	// (DelayedCreateTopics, DelayedDeleteTopics): retriable.
	{engine.ErrTopicBusy, kerr.RequestTimedOut},
	// The engine's topics belong to the cluster's metadata: creating and
	// deleting them is the controller's job, as a Kafka broker that is not
	// the controller answers. Retriable: clients look the controller up.
	{engine.ErrExternalMetadata, kerr.NotController},
	{engine.ErrMessageTooLarge, kerr.MessageTooLarge},
	{engine.ErrInvalidTimestamp, kerr.InvalidTimestamp},
	{engine.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{engine.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{engine.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{engine.ErrUnknownPartition, kerr.UnknownTopicOrPartition},
	{engine.ErrInvalidTopic, kerr.InvalidTopicException},
	{engine.ErrTopicExists, kerr.TopicAlreadyExists},
	{engine.ErrInvalidConfig, kerr.InvalidConfig},
	{engine.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{engine.ErrClosed, kerr.NotLeaderForPartition}, // shutting down: retriable
	{codec.ErrUnknownCodec, kerr.UnsupportedCompressionType},
	{record.ErrInvalid, kerr.InvalidRecord},
	{record.ErrCorrupt, kerr.CorruptMessage},
	{record.ErrShort, kerr.CorruptMessage},
	{codec.ErrCorrupt, kerr.CorruptMessage},
	{codec.ErrTooLarge, kerr.CorruptMessage},
	{errOldProduce, kerr.UnsupportedVersion},
	{errBadVersion, kerr.UnsupportedVersion},
	{errTransactions, kerr.TransactionalIDAuthorizationFailed},
	{errInternalTopic, kerr.InvalidTopicException},
	{errInvalidAcks, kerr.InvalidRequiredAcks},
	{errPartitions, kerr.InvalidPartitions},
	{errReplication, kerr.InvalidReplicationFactor},
	{errAssignment, kerr.InvalidReplicaAssignment},
	{errInvalidRequest, kerr.InvalidRequest},
	{errLeaderEpoch, kerr.UnknownLeaderEpoch},
	{errTimedOut, kerr.RequestTimedOut},
	{errPolicy, kerr.PolicyViolation},
	{errFetchSession, kerr.FetchSessionIDNotFound},
	{errProducerIDSource, kerr.KafkaStorageError},
	{errLeaderNotAvailable, kerr.LeaderNotAvailable},
	{errNoController, kerr.NotController},
	{errNotEnoughReplicas, kerr.NotEnoughReplicas},
	{errNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend},
	{controller.ErrNotController, kerr.NotController},
}

// errorCode returns the Kafka error code for err: 0 for nil,
// UNKNOWN_SERVER_ERROR (-1) for an error the table does not know.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	// A code another broker or the controller answered with keeps its code.
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	// The controller's decisions have their own table (UNKNOWN_SERVER_ERROR
	// for what it does not know either).
	return cluster.ErrorCode(err)
}

// errorMessage returns err's text for the error_message fields of responses,
// or nil for no error.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
