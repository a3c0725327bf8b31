package broker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// The engine's sentinels reach errorCode wrapped, as the engine returns them.
func TestErrorCodeEngineSentinels(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("engine: append to t/0: %w", err) }
	tests := []struct {
		err  error
		want *kerr.Error
	}{
		{wrap(engine.ErrLogFailed), kerr.KafkaStorageError},
		// TruncateTo wraps its cause after ErrLogFailed; the first wins.
		{fmt.Errorf("%w: %w", engine.ErrLogFailed, engine.ErrOffsetOutOfRange), kerr.KafkaStorageError},
		{wrap(engine.ErrNotLeader), kerr.NotLeaderForPartition},
		{wrap(engine.ErrFencedLeaderEpoch), kerr.FencedLeaderEpoch},
		{errFencedEpoch, kerr.FencedLeaderEpoch},
		{errLeaderEpoch, kerr.UnknownLeaderEpoch},
		{fmt.Errorf("%w: %q is being created or deleted", engine.ErrTopicBusy, "t"), kerr.RequestTimedOut},
		{engine.ErrExternalMetadata, kerr.NotController},
		{engine.ErrClosed, kerr.NotLeaderForPartition},
		{errTimedOut, kerr.RequestTimedOut},
		{errPolicy, kerr.PolicyViolation},
		{errInternalTopic, kerr.InvalidTopicException},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want.Code {
			t.Errorf("errorCode(%v) = %d (%v), want %s", tt.err, got, kerr.ErrorForCode(got), tt.want.Message)
		}
		// Clients retry these; a non-retriable code here would strand them.
		if !tt.want.Retriable && tt.want != kerr.InvalidTopicException && tt.want != kerr.PolicyViolation {
			t.Errorf("%v maps to non-retriable %s", tt.err, tt.want.Message)
		}
	}
}

// failingStore is a memory store whose fsyncs fail once armed: a disk that
// stopped taking writes, under the engine.
type failingStore struct {
	*engine.MemoryStore
	fail atomic.Bool
}

type failingLog struct {
	engine.Log
	s *failingStore
}

var errDiskGone = errors.New("test: disk gone")

func (s *failingStore) OpenLog(name string, cfg engine.LogConfig, clean bool) (engine.Log, error) {
	l, err := s.MemoryStore.OpenLog(name, cfg, clean)
	if err != nil {
		return nil, err
	}
	return failingLog{l, s}, nil
}

func (l failingLog) Sync() error {
	if l.s.fail.Load() {
		return errDiskGone
	}
	return l.Log.Sync()
}

// A partition whose fsync failed answers produces with KAFKA_STORAGE_ERROR,
// also after the failure, and keeps serving what it has.
func TestProduceStorageError(t *testing.T) {
	store := &failingStore{MemoryStore: engine.NewMemoryStore()}
	ts := startServer(t, serverOpts{engine: engine.Options{Store: store}})
	if err := ts.eng.CreateTopic("disk", engine.TopicConfig{FlushMessages: 1}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	if p := produceRaw(t, rc, 9, -1, "disk", 0, makeBatch(t, batchOpts{})); p.ErrorCode != 0 {
		t.Fatalf("healthy produce: %+v", p)
	}
	store.fail.Store(true)
	for i, acks := range []int16{-1, 1} {
		p := produceRaw(t, rc, 9, acks, "disk", 0, makeBatch(t, batchOpts{}))
		if p.ErrorCode != kerr.KafkaStorageError.Code || p.ErrorMessage == nil {
			t.Fatalf("produce %d after the fsync failure: %+v", i, p)
		}
	}
	// What was synced before is still served.
	resp := rc.roundTrip(fetchReq("disk", 0, 0, 0, 1, 1<<20, 1<<20), 12).(*kmsg.FetchResponse)
	if fp := resp.Topics[0].Partitions[0]; fp.ErrorCode != 0 || len(fp.RecordBatches) == 0 {
		t.Fatalf("fetch after the failure: %+v", fp)
	}
}

// A follower partition refuses produces with NOT_LEADER_OR_FOLLOWER.
func TestProduceNotLeader(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore()}})
	if err := ts.eng.CreateTopic("f", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := ts.eng.Partition("f", 0)
	if err := p.BecomeFollower(1); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	for _, acks := range []int16{1, -1} {
		if r := produceRaw(t, rc, 9, acks, "f", 0, makeBatch(t, batchOpts{})); r.ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("acks %d: %+v", acks, r)
		}
	}
}

// An engine whose topics belong to the cluster's metadata refuses to create
// or delete them: NOT_CONTROLLER.
func TestTopicsExternalMetadata(t *testing.T) {
	ts := startServer(t, serverOpts{engine: engine.Options{Store: engine.NewMemoryStore(), ExternalMetadata: true}})
	rc := dialRaw(t, ts.addr)
	c := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "ext", 1, 1
	c.Topics = append(c.Topics, ct)
	cr := rc.roundTrip(c, 5).(*kmsg.CreateTopicsResponse)
	if code := cr.Topics[0].ErrorCode; code != kerr.NotController.Code {
		t.Fatalf("create: code %d (%v)", code, kerr.ErrorForCode(code))
	}
}
