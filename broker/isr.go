package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

// The leader side of replication (cluster only), Kafka's Partition.scala:
// for each partition this broker leads, the followers' fetch progress, the
// high watermark over the ISR, and the ISR changes proposed to the
// controller.
//
//   - A follower's fetch offset is its log end (LEO). It is caught up when
//     it fetches at the leader's LEO, or at the LEO the leader had at its
//     previous fetch (then it was caught up at that fetch's time).
//   - The high watermark is the smallest LEO over the maximal ISR: the
//     committed ISR plus the followers a pending expansion adds (a pending
//     shrink removes no one until the controller commits it, KIP-497), and
//     the leader itself. A follower whose LEO is not known yet in this
//     leader epoch holds it.
//   - A follower outside the ISR that reaches the high watermark, and the
//     offset this leader epoch began at, is proposed for the ISR; an ISR
//     member not caught up for Config.ReplicaLagTimeMax is proposed out.
//     One proposal per partition is in flight at a time (AlterPartition to
//     the controller, under the leader and partition epochs this broker
//     knows); the metadata log then carries the committed ISR back.
//   - acks=all needs min.insync.replicas members in the ISR before the
//     append (NOT_ENOUGH_REPLICAS) and when the high watermark passes the
//     batch (NOT_ENOUGH_REPLICAS_AFTER_APPEND).

// Defaults of the replication settings.
const (
	DefaultReplicaLagTimeMax = 30 * time.Second // replica.lag.time.max.ms
	DefaultMinInsyncReplicas = 1                // min.insync.replicas
)

// isrTracker holds the leader-side state of the partitions this broker
// leads. Safe for concurrent use.
type isrTracker struct {
	b      *Broker
	lagMax time.Duration
	minISR int // the broker's min.insync.replicas

	mu    sync.Mutex
	parts map[hostKey]*ledPart
}

// ledPart is one partition led here in one leader epoch.
type ledPart struct {
	p                           *engine.Partition
	topicID                     engine.TopicID
	leaderEpoch, partitionEpoch int32
	epochStart                  int64   // the log end when this epoch began
	replicas, isr               []int32 // as the metadata has them
	minISR                      int
	// pending is the ISR proposed to the controller, nil when none is in
	// flight; pendingEpoch the partition epoch it was proposed under.
	pending      []int32
	pendingEpoch int32
	followers    map[int32]*followerState
}

// followerState is one follower's progress as its fetches show it.
type followerState struct {
	leo                int64 // -1: not fetched in this leader epoch
	lastFetch          time.Time
	lastFetchLeaderLEO int64
	lastCaughtUp       time.Time
}

func newISRTracker(b *Broker, lagMax time.Duration, minISR int) *isrTracker {
	if lagMax <= 0 {
		lagMax = DefaultReplicaLagTimeMax
	}
	if minISR < 1 {
		minISR = DefaultMinInsyncReplicas
	}
	return &isrTracker{b: b, lagMax: lagMax, minISR: minISR, parts: map[hostKey]*ledPart{}}
}

// lead records that p is led here as the metadata partition mp says (the
// hosting loop calls it on every pass): a new leader epoch starts fresh
// follower state; otherwise the committed ISR and partition epoch are
// updated, ending a pending proposal the metadata has moved past.
func (t *isrTracker) lead(k hostKey, p *engine.Partition, mp *cluster.Partition, topic *cluster.Topic) {
	minISR := t.b.minInsyncReplicas(topic, t.minISR)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	lp := t.parts[k]
	if lp == nil || lp.p != p || lp.leaderEpoch != mp.LeaderEpoch {
		lp = &ledPart{p: p, topicID: mp.Topic, leaderEpoch: mp.LeaderEpoch, epochStart: p.EndOffset(), followers: map[int32]*followerState{}}
		for _, id := range mp.Replicas {
			if id != t.b.cfg.NodeID {
				// Kafka's makeLeader: every follower starts "caught up
				// now" with an unknown log end.
				lp.followers[id] = &followerState{leo: -1, lastCaughtUp: now}
			}
		}
		t.parts[k] = lp
	}
	lp.replicas, lp.minISR = mp.Replicas, minISR
	if mp.PartitionEpoch >= lp.partitionEpoch { // not behind an AlterPartition answer
		t.b.counters.countISRChange(lp.isr, mp.ISR, mp.PartitionEpoch > lp.partitionEpoch)
		lp.partitionEpoch, lp.isr = mp.PartitionEpoch, mp.ISR
	}
	if lp.pending != nil && mp.PartitionEpoch > lp.pendingEpoch {
		lp.pending = nil // committed (or overtaken); the metadata has the result
	}
	for _, id := range mp.Replicas {
		if id != t.b.cfg.NodeID && lp.followers[id] == nil {
			lp.followers[id] = &followerState{leo: -1, lastCaughtUp: now}
		}
	}
	t.advanceLocked(lp)
}

// drop forgets partitions no longer led here.
func (t *isrTracker) drop(k hostKey) {
	t.mu.Lock()
	delete(t.parts, k)
	t.mu.Unlock()
}

// fetched records a follower's fetch of a partition led here at offset
// (lastFetchedEpoch as the request has it, -1 if none) and moves the high
// watermark; a fetch whose log diverged from this one tells nothing.
func (t *isrTracker) fetched(replica int32, topic string, partition int32, offset int64, lastFetchedEpoch int32) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	lp := t.parts[hostKey{topic, partition}]
	if lp == nil {
		return
	}
	f := lp.followers[replica]
	if f == nil {
		return // not a replica of the partition
	}
	if lastFetchedEpoch >= 0 {
		pt := fetchPart{offset: offset, lastFetchedEpoch: lastFetchedEpoch}
		if divergence(lp.p, &pt, lp.p.StartOffset()) != 0 || pt.diverged {
			return
		}
	}
	leo := lp.p.EndOffset()
	switch {
	case offset >= leo:
		f.lastCaughtUp = now
	case offset >= f.lastFetchLeaderLEO && !f.lastFetch.IsZero():
		f.lastCaughtUp = f.lastFetch
	}
	f.leo, f.lastFetch, f.lastFetchLeaderLEO = offset, now, leo
	t.advanceLocked(lp)
	// A follower outside the ISR that has caught up joins it.
	if lp.pending == nil && !slices.Contains(lp.isr, replica) && offset >= lp.p.HighWatermark() && offset >= lp.epochStart {
		t.proposeLocked(topic, partition, lp, append(slices.Clone(lp.isr), replica))
	}
}

// advanceLocked sets the high watermark to the smallest LEO over the
// maximal ISR (the leader's own counted as far as it is durable under its
// flush policy: engine.Partition.DurableEnd).
func (t *isrTracker) advanceLocked(lp *ledPart) {
	maximal := t.maximalISR(lp)
	// Alone in the ISR, the leader's own appends commit: the engine moves
	// the high watermark itself, also for writes that do not come through
	// Produce (the group coordinator's).
	lp.p.SetSoleReplica(len(maximal) == 1 && maximal[0] == t.b.cfg.NodeID)
	hw := lp.p.DurableEnd()
	for _, id := range maximal {
		if id == t.b.cfg.NodeID {
			continue
		}
		f := lp.followers[id]
		if f == nil || f.leo < 0 {
			return // its log end is not known yet: nothing can be committed
		}
		hw = min(hw, f.leo)
	}
	lp.p.SetHighWatermark(hw)
}

// maximalISR is the committed ISR plus the members a pending proposal adds.
func (t *isrTracker) maximalISR(lp *ledPart) []int32 {
	if lp.pending == nil {
		return lp.isr
	}
	out := slices.Clone(lp.isr)
	for _, id := range lp.pending {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// enough checks min.insync.replicas for an acks=all produce to a partition
// led here: an error wrapping errNotEnoughReplicas when the ISR is smaller.
func (t *isrTracker) enough(topic string, partition int32, sentinel error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	lp := t.parts[hostKey{topic, partition}]
	if lp == nil || len(lp.isr) >= lp.minISR {
		return nil
	}
	return fmt.Errorf("%w: %s/%d has %d in-sync replicas, min.insync.replicas is %d", sentinel, topic, partition, len(lp.isr), lp.minISR)
}

// runLagCheck proposes lagging followers out of the ISR, every half
// replica.lag.time.max.ms (as Kafka checks), until the broker closes.
func (t *isrTracker) runLagCheck(done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(max(t.lagMax/2, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-t.b.closed:
			return
		case now := <-tick.C:
			t.checkLag(now)
		}
	}
}

func (t *isrTracker) checkLag(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, lp := range t.parts {
		if lp.pending != nil {
			continue
		}
		keep := make([]int32, 0, len(lp.isr))
		for _, id := range lp.isr {
			f := lp.followers[id]
			if id == t.b.cfg.NodeID || f == nil || now.Sub(f.lastCaughtUp) <= t.lagMax {
				keep = append(keep, id)
			}
		}
		if len(keep) < len(lp.isr) {
			t.proposeLocked(k.topic, k.partition, lp, keep)
		}
	}
}

// proposeLocked sends an ISR change to the controller in the background.
// The answer (or the metadata log, whichever comes first) ends it.
func (t *isrTracker) proposeLocked(topic string, partition int32, lp *ledPart, isr []int32) {
	// The name may be a view of a fetch request's body (decoded without
	// copying), which is reused once the request is answered: the
	// goroutine below outlives it.
	topic = strings.Clone(topic)
	lp.pending, lp.pendingEpoch = isr, lp.partitionEpoch
	epoch, _, ok := t.b.node.BrokerEpoch()
	if !ok {
		lp.pending = nil
		return
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.SetVersion(2) // topic ids, a plain ISR
	req.BrokerID, req.BrokerEpoch = t.b.cfg.NodeID, epoch
	rt := kmsg.NewAlterPartitionRequestTopic()
	rt.TopicID = lp.topicID
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = partition, lp.leaderEpoch, lp.partitionEpoch, isr
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	t.b.log.Info("broker: proposing an ISR change", "topic", topic, "partition", partition, "isr", lp.isr, "new_isr", isr,
		"leader_epoch", lp.leaderEpoch, "partition_epoch", lp.partitionEpoch)
	go t.sendProposal(req, topic, partition, lp, isr)
}

// proposalRetry is the pause before a proposal that could not reach the
// controller (or that it could not decide yet) is sent again.
const proposalRetry = 100 * time.Millisecond

// sendProposal sends one ISR proposal and settles it, Kafka's way
// (KIP-497): the pending ISR, and so the maximal ISR the high watermark is
// computed over, is replaced only by what the controller committed. An
// answer in this leader epoch replaces it with the committed ISR; an
// answer that moved leadership, or a refusal because this broker's epochs
// are stale, leaves it pending until the metadata log brings the new state
// (lead clears it then): the partition may have a new leader that lacks
// what only the old ISR has, so the high watermark must not move past it.
// A refusal that changed nothing (an ineligible replica, a malformed
// request) drops it; a failure to reach the controller is retried.
func (t *isrTracker) sendProposal(req *kmsg.AlterPartitionRequest, topic string, partition int32, lp *ledPart, isr []int32) {
	current := func() bool {
		cur := t.parts[hostKey{topic, partition}]
		return cur == lp && slices.Equal(lp.pending, isr)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		resp, err := t.b.node.Forward(ctx, req)
		cancel()
		code := int16(0)
		var got *kmsg.AlterPartitionResponseTopicPartition
		if err == nil {
			ar, ok := resp.(*kmsg.AlterPartitionResponse)
			switch {
			case !ok:
				err = fmt.Errorf("unexpected response %T", resp)
			case ar.ErrorCode != 0:
				code = ar.ErrorCode
			case len(ar.Topics) == 1 && len(ar.Topics[0].Partitions) == 1:
				got = &ar.Topics[0].Partitions[0]
				code = got.ErrorCode
			default:
				err = fmt.Errorf("malformed AlterPartition response")
			}
		}
		if err == nil && code != 0 {
			err = kerr.ErrorForCode(code)
		}
		retry := err != nil && (code == 0 || kerr.IsRetriable(err)) &&
			code != kerr.FencedLeaderEpoch.Code && code != kerr.InvalidUpdateVersion.Code
		t.mu.Lock()
		if !current() {
			t.mu.Unlock()
			return // the metadata moved on: nothing to settle
		}
		switch {
		case retry:
		case err == nil && got.LeaderEpoch == lp.leaderEpoch:
			lp.pending = nil
			if got.PartitionEpoch > lp.partitionEpoch {
				t.b.counters.countISRChange(lp.isr, got.ISR, true)
				lp.isr, lp.partitionEpoch = got.ISR, got.PartitionEpoch
			}
			t.advanceLocked(lp)
		case err == nil, code == kerr.FencedLeaderEpoch.Code, code == kerr.InvalidUpdateVersion.Code, code == kerr.NotLeaderForPartition.Code:
			// Leadership or the partition moved on: wait for the metadata.
		default:
			lp.pending = nil // refused; the committed state is unchanged
			t.advanceLocked(lp)
		}
		t.mu.Unlock()
		if err != nil {
			t.b.log.Warn("broker: ISR change not accepted", "topic", topic, "partition", partition, "new_isr", isr, "retry", retry, "err", err)
		}
		if !retry {
			return
		}
		select {
		case <-t.b.closed:
			return
		case <-time.After(proposalRetry):
		}
	}
}
