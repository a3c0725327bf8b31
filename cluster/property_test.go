package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/easel-io/easel/engine"
)

// TestRandomEvents drives random sequences of events through the decisions
// (fixed seeds: deterministic) and checks after every step: a decision
// either fails with no records or returns records that apply; the state's
// invariants hold (leader in ISR, ISR within replicas, no fenced leader or
// led-ISR member); across steps epochs only grow and a leader epoch has one
// leader (History); an offline partition has no live ISR member (the
// decisions elect whatever they can); reassignments keep their lists within
// the replicas and complete as soon as their target is in sync. Every few steps the snapshot must
// round-trip, and at the end replaying the log must give the same state.
func TestRandomEvents(t *testing.T) {
	seeds, steps := 16, 400
	if testing.Short() {
		seeds = 4
	}
	total := map[string]int{}
	for seed := 0; seed < seeds; seed++ {
		counts := runRandom(t, uint64(seed), steps)
		for k, v := range counts {
			total[k] += v
		}
	}
	// The walk must reach the interesting cases, or it proves little.
	for _, k := range []string{"fail", "failover", "offline", "unclean", "caught-up", "shutdown",
		"alter-isr", "alter-isr-rejected", "create-topic", "create-partitions", "delete-topic",
		"elect-preferred", "elect-offline", "restart", "reconcile", "alloc-pids",
		"reassign", "reassign-cancel", "reassign-complete", "reassign-cancel NO_REASSIGNMENT_IN_PROGRESS"} {
		if total[k] == 0 {
			t.Errorf("no %s in %d random steps: %v", k, seeds*steps, total)
		}
	}
	t.Logf("%v", total)
}

func runRandom(t *testing.T, seed uint64, steps int) map[string]int {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	h := newHarness(t)
	h.snapEvery = 16
	h.p.UncleanLeaderElection = seed%3 == 0
	counts := map[string]int{}
	inc := map[int32]uint64{}
	const brokers = 5
	info := func(id int32) BrokerInfo {
		rack := ""
		if seed%2 == 0 {
			rack = string(rune('a' + id%3))
		}
		return BrokerInfo{ID: id, Incarnation: inc[id], Host: fmt.Sprintf("b%d", id), Port: 9092, Rack: rack}
	}
	pickBroker := func() int32 { return int32(1 + rng.IntN(brokers)) }
	pickPartition := func() *Partition {
		ps := h.s.allPartitions()
		if len(ps) == 0 {
			return nil
		}
		return ps[rng.IntN(len(ps))]
	}
	var topicSeq byte
	step := func(i int) {
		defer func() {
			if t.Failed() {
				t.Fatalf("seed %d step %d", seed, i)
			}
		}()
		var recs []Record
		var err error
		kind := ""
		switch r := rng.IntN(100); {
		case r < 10:
			kind = "join"
			id := pickBroker()
			if rng.IntN(3) == 0 {
				inc[id]++
				if h.s.Live(id) {
					kind = "restart"
				}
			}
			recs, err = h.p.BrokerJoined(h.s, info(id))
		case r < 16:
			kind = "fail"
			id := pickBroker()
			if h.s.Broker(id) == nil {
				return
			}
			before := h.s.LedBy(id)
			recs, err = h.p.BrokerFailed(h.s, id)
			if err == nil && len(before) > 0 {
				counts["failover"]++
			}
		case r < 32:
			kind = "caught-up"
			id := pickBroker()
			for n := 0; n < 3 && h.s.Live(id); n++ {
				id = pickBroker() // mostly a fenced one
			}
			epoch := h.epochOf(id)
			if rng.IntN(5) == 0 {
				epoch--
			}
			recs, err = h.p.BrokerCaughtUp(h.s, id, epoch)
		case r < 35:
			kind = "shutdown"
			id := pickBroker()
			recs, err = h.p.ControlledShutdown(h.s, id, h.epochOf(id))
		case r < 37:
			kind = "reconcile"
			var live []BrokerInfo
			for id := int32(1); id <= brokers; id++ {
				if rng.IntN(8) != 0 {
					live = append(live, info(id))
				}
			}
			for n := 0; ; n++ {
				if n > 3*brokers {
					t.Fatalf("seed %d: reconcile does not converge", seed)
				}
				recs, err := h.p.Reconcile(h.s, live)
				if err != nil {
					t.Fatalf("seed %d: reconcile: %v", seed, err)
				}
				if len(recs) == 0 {
					break
				}
				h.commit(recs)
				h.afterStep()
			}
			counts[kind]++
			return
		case r < 44:
			kind = "create-topic"
			topicSeq++
			req := CreateTopicRequest{
				Name: fmt.Sprintf("t%d", rng.IntN(6)), ID: engine.TopicID{0: byte(seed), 1: topicSeq, 15: 1},
				Partitions: int32(1 + rng.IntN(4)), ReplicationFactor: int16(1 + rng.IntN(3)),
			}
			if rng.IntN(4) == 0 {
				req.Configs = []Config{{ConfigUncleanLeaderElection, "true"}}
			}
			if rng.IntN(5) == 0 {
				req.Partitions, req.ReplicationFactor = -1, -1
				req.Assignment = [][]int32{{pickBroker(), pickBroker()}, {pickBroker(), pickBroker()}}
			}
			recs, err = h.p.CreateTopic(h.s, req)
			if err == nil {
				h.names[req.ID] = req.Name
			}
		case r < 48:
			kind = "create-partitions"
			ts := h.s.Topics()
			if len(ts) == 0 {
				return
			}
			tp := ts[rng.IntN(len(ts))]
			recs, err = h.p.CreatePartitions(h.s, tp.Name, tp.Partitions+int32(1+rng.IntN(2)), nil)
		case r < 51:
			kind = "delete-topic"
			recs, err = h.p.DeleteTopic(h.s, fmt.Sprintf("t%d", rng.IntN(6)))
		case r < 53:
			// Settings changed at run time: a topic's unclean election
			// flips, or the cluster-wide default does (which decides for
			// the topics that do not set it).
			kind = "alter-config"
			var cs []Config
			if rng.IntN(2) == 0 {
				cs = []Config{{ConfigUncleanLeaderElection, strconv.FormatBool(rng.IntN(2) == 0)}}
			}
			if rng.IntN(2) == 0 {
				recs, err = h.p.AlterBrokerConfigs(h.s, DefaultBrokerConfigs, cs)
			} else {
				recs, err = h.p.AlterTopicConfigs(h.s, fmt.Sprintf("t%d", rng.IntN(6)), cs)
			}
		case r < 85:
			kind = "alter-isr"
			p := pickPartition()
			for n := 0; n < 4 && p != nil && p.Leader == NoLeader; n++ {
				p = pickPartition() // mostly a led one
			}
			if p == nil {
				return
			}
			req := AlterPartitionRequest{
				Broker: p.Leader, BrokerEpoch: h.epochOf(p.Leader), Topic: p.Topic, Partition: p.Index,
				LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
			}
			if p.Leader == NoLeader {
				req.Broker = p.Replicas[0]
				req.BrokerEpoch = h.epochOf(req.Broker)
			}
			// Mostly what a leader would propose: itself and some replicas.
			req.ISR = []int32{req.Broker}
			all := rng.IntN(2) == 0 // every live replica caught up
			for _, r := range p.Replicas {
				if r != req.Broker && (all || rng.IntN(2) == 0) && (h.s.Live(r) || rng.IntN(8) == 0) {
					req.ISR = append(req.ISR, r)
				}
			}
			switch rng.IntN(16) {
			case 0:
				req.LeaderEpoch--
			case 1:
				req.PartitionEpoch--
			case 2:
				req.ISR = append(req.ISR, pickBroker())
			case 3:
				req.BrokerEpoch--
			}
			recs, err = h.p.AlterPartition(h.s, req)
			if err != nil {
				counts["alter-isr-rejected"]++
				counts["alter-isr "+KafkaError(err).Message]++
			} else if recs == nil {
				counts["alter-isr-same"]++
			}
		case r < 90:
			kind = "elect-preferred"
			recs = h.p.ElectPreferredLeaders(h.s)
		case r < 92:
			kind = "elect-offline"
			recs = h.p.ElectOfflineLeaders(h.s)
		case r < 97:
			kind = "reassign"
			p := pickPartition()
			if p == nil {
				return
			}
			var target []int32
			if rng.IntN(5) == 0 && len(h.s.Reassignments()) > 0 {
				p = h.s.Reassignments()[0]
			}
			if rng.IntN(4) == 0 {
				kind = "reassign-cancel"
			} else {
				for n := 1 + rng.IntN(3); len(target) < n; {
					if b := pickBroker(); !slices.Contains(target, b) || rng.IntN(20) == 0 {
						target = append(target, b)
					}
				}
			}
			recs, err = h.p.AlterReassignment(h.s, h.names[p.Topic], p.Index, target)
			if err != nil {
				counts[kind+" "+KafkaError(err).Message]++
			}
		default:
			kind = "alloc-pids"
			id := pickBroker()
			recs, err = h.p.AllocateProducerIDs(h.s, id, h.epochOf(id))
		}
		if err != nil {
			if recs != nil {
				t.Fatalf("seed %d step %d: %s failed (%v) with records", seed, i, kind, err)
			}
			if KafkaError(err) == nil {
				t.Fatalf("seed %d step %d: no Kafka error for %v", seed, i, err)
			}
			return
		}
		h.commit(recs)
		h.afterStep()
		if len(recs) > 0 {
			counts[kind]++
		}
		for _, r := range recs {
			if c, ok := r.(PartitionChangeRecord); ok {
				if c.Unclean {
					counts["unclean"]++
				}
				if c.Leader == NoLeader {
					counts["offline"]++
				}
				if c.Replicas != nil && c.Adding != nil && len(c.Adding) == 0 {
					counts["reassign-complete"]++
				}
			}
		}
	}
	for id := int32(1); id <= brokers; id++ {
		inc[id] = 1
		h.decided(h.p.BrokerJoined(h.s, info(id)))
		h.decided(h.p.BrokerCaughtUp(h.s, id, 1))
	}
	for i := 0; i < steps; i++ {
		step(i)
	}
	h.replayCheck()
	return counts
}

// afterStep checks what must hold after every committed decision beyond
// harness.check: an offline partition has no live ISR member, and no
// reassignment is left that could complete (every decision completes what
// its change allows).
func (h *harness) afterStep() {
	h.t.Helper()
	if recs := h.p.CompleteReassignments(h.s); len(recs) > 0 {
		h.t.Fatalf("a reassignment left complete: %s", h.render(recs))
	}
	for _, p := range h.s.allPartitions() {
		if p.Leader == NoLeader && slices.ContainsFunc(p.ISR, h.s.Live) {
			h.t.Fatalf("%s is offline with a live ISR member: %v", h.s.partitionName(p), p.ISR)
		}
	}
}
