package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/easel-io/easel/engine"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestKafkaError(t *testing.T) {
	for _, e := range kafkaErrors {
		if got := KafkaError(fmt.Errorf("context: %w", e.err)); got != e.kafka {
			t.Errorf("%v: %v, want %v", e.err, got, e.kafka)
		}
	}
	if KafkaError(nil) != nil || ErrorCode(nil) != 0 {
		t.Error("nil is not an error")
	}
	if KafkaError(errors.New("other")) != kerr.UnknownServerError {
		t.Error("an unknown error is not UNKNOWN_SERVER_ERROR")
	}
	if ErrorCode(ErrFencedLeaderEpoch) != kerr.FencedLeaderEpoch.Code {
		t.Error("ErrorCode")
	}
	// A rejected record maps by its cause, not as UNKNOWN_SERVER_ERROR.
	s := baseState(t)
	err := s.Apply([]Record{PartitionChangeRecord{Topic: testID, LeaderEpoch: 4, PartitionEpoch: 7, Leader: 2}})
	if KafkaError(err) != kerr.FencedLeaderEpoch || !errors.Is(err, ErrRejected) {
		t.Errorf("%v maps to %v", err, KafkaError(err))
	}
	if KafkaError(engine.ValidateTopicName("")) != kerr.InvalidTopicException {
		t.Error("engine's invalid topic")
	}
	// Every sentinel has an entry.
	for _, e := range []error{ErrCorrupt, ErrUnsupportedVersion, ErrRejected, ErrClusterIDMismatch, ErrUnknownBroker,
		ErrStaleBrokerEpoch, ErrUnknownTopic, ErrUnknownTopicID, ErrTopicExists, ErrInvalidTopic, ErrInvalidPartitions,
		ErrInvalidReplicationFactor, ErrInvalidReplicaAssignment, ErrInvalidConfig, ErrInvalidRequest, ErrFencedLeaderEpoch,
		ErrInvalidUpdateVersion, ErrNotController, ErrNotLeader, ErrIneligibleReplica, ErrProducerIDsExhausted,
		ErrNoReassignmentInProgress} {
		found := false
		for _, k := range kafkaErrors {
			found = found || k.err == e
		}
		if !found {
			t.Errorf("%v is not in the table", e)
		}
	}
}
