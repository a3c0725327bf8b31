package cluster

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/easel-io/easel/engine"
)

// decisionCase sets a state up with harness commands, makes one decision
// and compares its rendered records (or "error: CODE").
type decisionCase struct {
	name   string
	setup  []string
	decide func(p Policy, s *State) ([]Record, error)
	want   string
}

func runDecisions(t *testing.T, cases []decisionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tc.setup {
				if out := h.run(c); strings.HasPrefix(out, "error") {
					t.Fatalf("setup %q: %s", c, out)
				}
			}
			recs, err := tc.decide(h.p, h.s)
			got := ""
			if err != nil {
				if recs != nil {
					t.Fatalf("error %v with records", err)
				}
				got = "error: " + KafkaError(err).Message
			} else {
				for _, r := range recs {
					if tr, ok := r.(TopicRecord); ok {
						h.names[tr.ID] = tr.Name
					}
				}
				got = strings.TrimSpace(h.render(recs))
				h.commit(recs)
			}
			if got != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// threeUp registers and unfences brokers 1-3 and creates t with one
// partition on replicas [1,2,3].
var threeUp = []string{
	"register 1", "register 2", "register 3", "caught-up 1", "caught-up 2", "caught-up 3",
	"create-topic t assign=1,2,3",
}

func with(cmds ...string) []string { return append(append([]string{}, threeUp...), cmds...) }

func TestBrokerDecisions(t *testing.T) {
	info := func(id int32, inc uint64) BrokerInfo {
		return BrokerInfo{ID: id, Incarnation: inc, Host: "b" + string(rune('0'+id)), Port: 9092, RaftAddr: "b" + string(rune('0'+id)) + ":9093"}
	}
	joined := func(i BrokerInfo) func(Policy, *State) ([]Record, error) {
		return func(p Policy, s *State) ([]Record, error) { return p.BrokerJoined(s, i) }
	}
	failed := func(id int32) func(Policy, *State) ([]Record, error) {
		return func(p Policy, s *State) ([]Record, error) { return p.BrokerFailed(s, id) }
	}
	caughtUp := func(id int32, epoch int64) func(Policy, *State) ([]Record, error) {
		return func(p Policy, s *State) ([]Record, error) { return p.BrokerCaughtUp(s, id, epoch) }
	}
	shutdown := func(id int32, epoch int64) func(Policy, *State) ([]Record, error) {
		return func(p Policy, s *State) ([]Record, error) { return p.ControlledShutdown(s, id, epoch) }
	}
	runDecisions(t, []decisionCase{
		{"join new", nil, joined(info(1, 1)), "register-broker 1 epoch=1 inc=1 kafka=b1:9092 raft=b1:9093 fenced"},
		{"join known", with(), joined(info(1, 1)), ""},
		{"join fenced, new incarnation", with("fail 3"), joined(info(3, 2)), "register-broker 3 epoch=3 inc=2 kafka=b3:9092 raft=b3:9093 fenced"},
		{"join live, new incarnation", with(), joined(info(1, 2)),
			"partition-change t/0 from=0/0 leader=2 isr=[2,3]\nfence-broker 1 epoch=2\nregister-broker 1 epoch=3 inc=2 kafka=b1:9092 raft=b1:9093 fenced"},
		{"join invalid", nil, joined(BrokerInfo{ID: 1, Host: "h"}), "error: INVALID_REQUEST"},
		{"fail leader", with(), failed(1), "partition-change t/0 from=0/0 leader=2 isr=[2,3]\nfence-broker 1 epoch=2"},
		{"fail follower", with(), failed(3), "partition-change t/0 from=0/0 isr=[1,2]\nfence-broker 3 epoch=2"},
		{"fail out-of-ISR replica", with("alter-isr t/0 isr=1,2"), failed(3), "fence-broker 3 epoch=2"},
		{"fail last ISR member", with("alter-isr t/0 isr=1"), failed(1), "partition-change t/0 from=0/1 leader=-1\nfence-broker 1 epoch=2"},
		{"fail last ISR member, unclean", with("policy unclean=true", "alter-isr t/0 isr=1"), failed(1),
			"partition-change t/0 from=0/1 leader=2 isr=[2] unclean\nfence-broker 1 epoch=2"},
		{"fail last ISR member, unclean, nothing live", with("policy unclean=true", "alter-isr t/0 isr=1", "fail 2", "fail 3"), failed(1),
			"partition-change t/0 from=0/1 leader=-1\nfence-broker 1 epoch=2"},
		{"fail fenced", with("fail 1"), failed(1), ""},
		{"fail unknown", nil, failed(1), "error: BROKER_ID_NOT_REGISTERED"},
		{"caught up", []string{"register 1"}, caughtUp(1, 1), "unfence-broker 1 epoch=1"},
		{"caught up, stale", []string{"register 1"}, caughtUp(1, 0), "error: STALE_BROKER_EPOCH"},
		{"caught up, live", with(), caughtUp(1, 1), ""},
		{"caught up, unknown", nil, caughtUp(1, 1), "error: BROKER_ID_NOT_REGISTERED"},
		{"caught up, leads offline", with("alter-isr t/0 isr=1", "fail 1"), caughtUp(1, 2),
			"unfence-broker 1 epoch=2\npartition-change t/0 from=1/2 leader=1"},
		{"caught up, unclean takes offline", with("policy unclean=true", "alter-isr t/0 isr=1", "fail 2", "fail 3", "fail 1"), caughtUp(3, 2),
			"unfence-broker 3 epoch=2\npartition-change t/0 from=1/2 leader=3 isr=[3] unclean"},
		{"caught up, clean waits", with("alter-isr t/0 isr=1", "fail 1"), caughtUp(1, 2), "unfence-broker 1 epoch=2\npartition-change t/0 from=1/2 leader=1"},
		{"shutdown leader", with(), shutdown(1, 1), "partition-change t/0 from=0/0 leader=2 isr=[2,3]\nfence-broker 1 epoch=2"},
		{"shutdown sole ISR member, unclean allowed", with("policy unclean=true", "alter-isr t/0 isr=1"), shutdown(1, 1),
			"partition-change t/0 from=0/1 leader=-1\nfence-broker 1 epoch=2"},
		{"shutdown stale", with(), shutdown(1, 0), "error: STALE_BROKER_EPOCH"},
		{"shutdown fenced", with("fail 1"), shutdown(1, 2), ""},
		{"shutdown unknown", nil, shutdown(1, 1), "error: BROKER_ID_NOT_REGISTERED"},
		{"reconcile: register", nil, func(p Policy, s *State) ([]Record, error) { return p.Reconcile(s, []BrokerInfo{info(2, 1)}) },
			"register-broker 2 epoch=1 inc=1 kafka=b2:9092 raft=b2:9093 fenced"},
		{"reconcile: fail the missing", with(), func(p Policy, s *State) ([]Record, error) {
			return p.Reconcile(s, []BrokerInfo{info(2, 1), info(3, 1)})
		}, "partition-change t/0 from=0/0 leader=2 isr=[2,3]\nfence-broker 1 epoch=2"},
		{"reconcile: agreed", with(), func(p Policy, s *State) ([]Record, error) {
			return p.Reconcile(s, []BrokerInfo{info(3, 1), info(2, 1), info(1, 1)})
		}, ""},
		{"init", nil, func(p Policy, s *State) ([]Record, error) { return p.InitCluster(s, "c", 10) },
			`cluster-id "c"` + "\nproducer-ids broker=-1 epoch=0 start=0 size=10"},
		{"init other", []string{"init cluster=c"}, func(p Policy, s *State) ([]Record, error) { return p.InitCluster(s, "d", 0) },
			"error: INCONSISTENT_CLUSTER_ID"},
		{"init empty", nil, func(p Policy, s *State) ([]Record, error) { return p.InitCluster(s, "", 0) }, "error: INVALID_REQUEST"},
		{"producer ids", with("policy pid-block=10", "alloc-pids 1"), func(p Policy, s *State) ([]Record, error) {
			return p.AllocateProducerIDs(s, 2, 1)
		}, "producer-ids broker=2 epoch=1 start=10 size=10"},
		{"producer ids, stale", with(), func(p Policy, s *State) ([]Record, error) { return p.AllocateProducerIDs(s, 2, 2) }, "error: STALE_BROKER_EPOCH"},
		{"producer ids, unknown", nil, func(p Policy, s *State) ([]Record, error) { return p.AllocateProducerIDs(s, 2, 1) }, "error: BROKER_ID_NOT_REGISTERED"},
		{"producer ids, exhausted", []string{"register 1", "init next-pid=9223372036854775000"}, func(p Policy, s *State) ([]Record, error) {
			return p.AllocateProducerIDs(s, 1, 1)
		}, "error: UNKNOWN_SERVER_ERROR"},
	})
}

func TestPartitionDecisions(t *testing.T) {
	alter := func(mod func(*AlterPartitionRequest)) func(Policy, *State) ([]Record, error) {
		return func(p Policy, s *State) ([]Record, error) {
			part := s.Partition("t", 0)
			req := AlterPartitionRequest{Broker: part.Leader, BrokerEpoch: s.Broker(part.Leader).Epoch, Topic: part.Topic,
				LeaderEpoch: part.LeaderEpoch, PartitionEpoch: part.PartitionEpoch, ISR: []int32{1, 2}}
			mod(&req)
			return p.AlterPartition(s, req)
		}
	}
	preferred := func(p Policy, s *State) ([]Record, error) { return p.ElectPreferredLeaders(s), nil }
	offline := func(p Policy, s *State) ([]Record, error) { return p.ElectOfflineLeaders(s), nil }
	runDecisions(t, []decisionCase{
		{"shrink", with(), alter(func(r *AlterPartitionRequest) {}), "partition-change t/0 from=0/0 isr=[1,2]"},
		{"expand", with("alter-isr t/0 isr=1"), alter(func(r *AlterPartitionRequest) { r.ISR = []int32{1, 3} }), "partition-change t/0 from=0/1 isr=[1,3]"},
		{"same set", with(), alter(func(r *AlterPartitionRequest) { r.ISR = []int32{3, 1, 2} }), ""},
		{"stale broker epoch", with(), alter(func(r *AlterPartitionRequest) { r.BrokerEpoch = 0 }), "error: STALE_BROKER_EPOCH"},
		{"unknown broker", with(), alter(func(r *AlterPartitionRequest) { r.Broker = 9 }), "error: STALE_BROKER_EPOCH"},
		{"unknown topic id", with(), alter(func(r *AlterPartitionRequest) { r.Topic = engine.TopicID{9} }), "error: UNKNOWN_TOPIC_ID"},
		{"unknown partition", with(), alter(func(r *AlterPartitionRequest) { r.Partition = 1 }), "error: UNKNOWN_TOPIC_OR_PARTITION"},
		{"stale leader epoch", with("fail 1", "return 1"), alter(func(r *AlterPartitionRequest) { r.LeaderEpoch = 0 }), "error: FENCED_LEADER_EPOCH"},
		{"newer leader epoch", with(), alter(func(r *AlterPartitionRequest) { r.LeaderEpoch = 1 }), "error: NOT_CONTROLLER"},
		{"not the leader", with(), alter(func(r *AlterPartitionRequest) { r.Broker = 2 }), "error: NOT_LEADER_FOR_PARTITION"},
		{"stale partition epoch", with("alter-isr t/0 isr=1,2"), alter(func(r *AlterPartitionRequest) { r.PartitionEpoch = 0 }), "error: INVALID_UPDATE_VERSION"},
		{"newer partition epoch", with(), alter(func(r *AlterPartitionRequest) { r.PartitionEpoch = 1 }), "error: NOT_CONTROLLER"},
		{"not a subset", with("register 4", "caught-up 4"), alter(func(r *AlterPartitionRequest) { r.ISR = []int32{1, 4} }), "error: INVALID_REQUEST"},
		{"without the leader", with(), alter(func(r *AlterPartitionRequest) { r.ISR = []int32{2, 3} }), "error: INVALID_REQUEST"},
		{"empty", with(), alter(func(r *AlterPartitionRequest) { r.ISR = nil }), "error: INVALID_REQUEST"},
		{"twice", with(), alter(func(r *AlterPartitionRequest) { r.ISR = []int32{1, 2, 1} }), "error: INVALID_REQUEST"},
		{"fenced member", with("fail 3"), alter(func(r *AlterPartitionRequest) { r.ISR = []int32{1, 2, 3} }), "error: INELIGIBLE_REPLICA"},
		{"preferred: back to the first replica", with("fail 1", "return 1", "alter-isr t/0 isr=2,3,1"), preferred,
			"partition-change t/0 from=1/2 leader=1"},
		{"preferred: not while out of the ISR", with("fail 1", "return 1"), preferred, ""},
		{"preferred: not while fenced", with("alter-isr t/0 isr=1", "shutdown 1"), preferred, ""},
		{"preferred: already", with(), preferred, ""},
		{"offline: unclean by topic config", []string{"register 1", "register 2", "caught-up 1", "caught-up 2",
			"create-topic t assign=1,2 unclean=true", "alter-isr t/0 isr=1", "shutdown 1"}, offline,
			"partition-change t/0 from=1/2 leader=2 isr=[2] unclean"},
		{"offline: clean stays", with("alter-isr t/0 isr=1", "shutdown 1"), offline, ""},
	})
}

func TestTopicDecisions(t *testing.T) {
	create := func(req CreateTopicRequest) func(Policy, *State) ([]Record, error) {
		return func(p Policy, s *State) ([]Record, error) {
			if req.ID.IsZero() {
				req.ID = engine.TopicID{15: 99}
			}
			return p.CreateTopic(s, req)
		}
	}
	strict := func(p Policy, s *State) ([]Record, error) {
		p.ValidateConfigs = func([]Config) error { return ErrInvalidConfig }
		return p.CreateTopic(s, CreateTopicRequest{Name: "u", ID: engine.TopicID{15: 99}, Partitions: 1, ReplicationFactor: 1,
			Configs: []Config{{"retention.ms", "1"}}})
	}
	runDecisions(t, []decisionCase{
		{"defaults", with("policy rf=2 partitions=2"), create(CreateTopicRequest{Name: "u", Partitions: -1, ReplicationFactor: -1}),
			"topic u\npartition u/0 replicas=[1,3] isr=[1,3] leader=1 epochs=0/0\npartition u/1 replicas=[2,1] isr=[2,1] leader=2 epochs=0/0"},
		{"zero id", with(), func(p Policy, s *State) ([]Record, error) {
			return p.CreateTopic(s, CreateTopicRequest{Name: "u", Partitions: 1, ReplicationFactor: 1})
		}, "error: INVALID_REQUEST"},
		{"id taken", with(), func(p Policy, s *State) ([]Record, error) {
			return p.CreateTopic(s, CreateTopicRequest{Name: "u", ID: s.Topic("t").ID, Partitions: 1, ReplicationFactor: 1})
		}, "error: TOPIC_ALREADY_EXISTS"},
		{"policy's config check", with(), strict, "error: INVALID_CONFIG"},
		{"empty assignment", with(), create(CreateTopicRequest{Name: "u", Partitions: -1, ReplicationFactor: -1, Assignment: [][]int32{}}), "error: INVALID_PARTITIONS"},
		{"delete by id", with(), func(p Policy, s *State) ([]Record, error) { return p.DeleteTopicByID(s, s.Topic("t").ID) }, "remove-topic t"},
		{"delete by unknown id", with(), func(p Policy, s *State) ([]Record, error) { return p.DeleteTopicByID(s, engine.TopicID{9}) }, "error: UNKNOWN_TOPIC_ID"},
		{"create partitions, none live", with("fail 1", "fail 2", "fail 3"), func(p Policy, s *State) ([]Record, error) {
			return p.CreatePartitions(s, "t", 2, nil)
		}, "error: INVALID_REPLICATION_FACTOR"},
	})
}

// TestCompleteReassignments: a reassignment whose target is in sync with no
// decision having completed it (its ISR change committed by an older
// controller, say) is completed by CompleteReassignments, in one change;
// one that is not in sync, or offline, waits.
func TestCompleteReassignments(t *testing.T) {
	s := baseState(t) // t/0 replicas [1,2,3] isr [1,2] leader 1, epochs 5/7
	var p Policy
	if recs := p.CompleteReassignments(s); recs != nil {
		t.Fatalf("nothing moving: %v", recs)
	}
	// Moving to [2,3]: 3 is not in sync yet.
	recs, err := p.AlterReassignment(s, "t", 0, []int32{2, 3})
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	if err := s.Apply(recs); err != nil {
		t.Fatal(err)
	}
	part := s.Partition("t", 0)
	if !slices.Equal(part.Replicas, []int32{2, 3, 1}) || !slices.Equal(part.Removing, []int32{1}) || part.Adding != nil || part.Leader != 1 {
		t.Fatalf("moving: %+v", part)
	}
	if recs := p.CompleteReassignments(s); recs != nil {
		t.Fatalf("3 not in sync: %v", recs)
	}
	// The ISR grows by a bare record (no decision folded the completion).
	if err := s.Apply([]Record{PartitionChangeRecord{Topic: testID, LeaderEpoch: 5, PartitionEpoch: 8, Leader: NoLeaderChange, ISR: []int32{1, 2, 3}}}); err != nil {
		t.Fatal(err)
	}
	recs = p.CompleteReassignments(s)
	want := PartitionChangeRecord{Topic: testID, LeaderEpoch: 5, PartitionEpoch: 9, Leader: 2, ISR: []int32{2, 3},
		Replicas: []int32{2, 3}, Adding: []int32{}, Removing: []int32{}}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0], want) {
		t.Fatalf("got %v\nwant %v", recs, want)
	}
	if err := s.Apply(recs); err != nil {
		t.Fatal(err)
	}
	if part := s.Partition("t", 0); part.Reassigning() || len(s.Reassignments()) != 0 || part.LeaderEpoch != 6 {
		t.Fatalf("completed: %+v", part)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestCompactOffsetsTopic: an offsets topic with the delete policy (made
// before compaction existed) is given compact, its other settings kept;
// a compacted one, or none, changes nothing.
func TestCompactOffsetsTopic(t *testing.T) {
	decide := func(p Policy, s *State) ([]Record, error) { return p.CompactOffsetsTopic(s), nil }
	runDecisions(t, []decisionCase{
		{"delete policy", with("create-topic __consumer_offsets assign=1,2,3 config:cleanup.policy=delete config:retention.ms=-1"), decide,
			"topic-config __consumer_offsets configs=[cleanup.policy=compact,retention.ms=-1]"},
		{"no policy", with("create-topic __consumer_offsets assign=1,2,3"), decide,
			"topic-config __consumer_offsets configs=[cleanup.policy=compact]"},
		{"compacted", with("create-topic __consumer_offsets assign=1,2,3 config:cleanup.policy=compact"), decide, ""},
		{"no offsets topic", with(), decide, ""},
	})
}
