package replica

import (
	"time"

	"sync"

	"github.com/easel-io/easel/engine"
)

// part is one followed partition.
type part struct {
	key tp
	src source // immutable: another leader is another part
	// want is the assignment as Set last gave it; guarded by
	// Fetchers.mu (Set compares with it without taking part.mu).
	want Assignment

	// mu guards the fields in it. The fetcher holds it while it reads or
	// writes the engine partition for this part, and Set while it changes
	// the assignment: so nothing asked under an old generation is written
	// after Set returns.
	mu struct {
		sync.Mutex
		asg Assignment
		// gen grows with every change Set makes (and at removal). A
		// response to a request of another generation is dropped.
		gen     uint64
		removed bool
		// truncating: the log has not been checked against this
		// leader's yet (see the package doc).
		truncating bool
		// stopped: no fetching until Set changes the assignment.
		stopped bool
		// retryAt: no fetching before this time (a backoff); backoff
		// the pause after the last of consecutive errors (0 after a
		// success).
		retryAt  time.Time
		backoff  time.Duration
		err      error
		leaderHW int64
		caughtUp bool
	}
}

func newPart(k tp, a Assignment) *part {
	p := &part{key: k, src: sourceOf(a), want: a}
	p.mu.asg = a
	p.mu.truncating = true
	p.mu.leaderHW = -1
	return p
}

// reassign moves p to a new assignment of the same leader: its state
// restarts from the truncation check.
func (p *part) reassign(a Assignment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.asg = a
	p.mu.gen++
	p.mu.truncating, p.mu.stopped = true, false
	p.mu.retryAt, p.mu.err, p.mu.backoff = time.Time{}, nil, 0
	p.mu.leaderHW, p.mu.caughtUp = -1, false
}

// remove marks p no longer followed: its fetcher drops it and whatever is in
// flight for it.
func (p *part) remove() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.removed = true
	p.mu.gen++
}

func (p *part) status(e *engine.Engine) Status {
	p.mu.Lock()
	s := Status{
		Assignment:          p.mu.asg,
		LeaderHighWatermark: p.mu.leaderHW,
		Truncating:          p.mu.truncating,
		CaughtUp:            p.mu.caughtUp,
		Stopped:             p.mu.stopped,
		Err:                 p.mu.err,
	}
	p.mu.Unlock()
	s.FetchOffset, s.HighWatermark = -1, -1
	var ep *engine.Partition
	var err error
	if !s.TopicID.IsZero() {
		ep, err = e.PartitionByID(s.TopicID, s.Partition)
	} else {
		ep, err = e.Partition(s.Topic, s.Partition)
	}
	if err == nil {
		s.FetchOffset, s.HighWatermark = ep.EndOffset(), ep.HighWatermark()
	}
	if s.LeaderHighWatermark >= 0 && s.FetchOffset >= 0 {
		s.Lag = max(0, s.LeaderHighWatermark-s.FetchOffset)
	}
	return s
}

// lastEpoch is the leader epoch of the last batch of ep's log (whose end is
// leo), or UndefinedEpoch for an empty log or one whose epoch cache does not
// cover its end: what a follower sends as last_fetched_epoch and asks
// OffsetForLeaderEpoch about.
func lastEpoch(ep *engine.Partition, leo int64) int32 {
	if leo <= ep.StartOffset() {
		return engine.UndefinedEpoch
	}
	return ep.EpochAt(leo - 1)
}

// truncationOffset is where the follower log ep must be cut, given the
// leader's answer for the follower's last epoch: the leader's largest epoch
// at or below it and where that epoch ends in the leader's log (from
// OffsetForLeaderEpoch or a Fetch diverging_epoch). done is false when the
// follower's own log holds an older epoch there, so the leader must be
// asked again about the follower's epoch at the new end (KIP-279). It is
// Kafka's AbstractFetcherThread.getOffsetTruncationState.
func truncationOffset(ep *engine.Partition, leaderEpoch int32, leaderEnd int64) (off int64, done bool) {
	leo := ep.EndOffset()
	if leaderEpoch == engine.UndefinedEpoch || leaderEnd == engine.UndefinedOffset {
		// The leader knows nothing of the epoch: keep what is committed.
		return min(ep.HighWatermark(), leo), true
	}
	fe, fend := ep.EndOffsetForEpoch(leaderEpoch)
	switch {
	case fend == engine.UndefinedOffset:
		// No local epoch at or below the leader's.
		return min(leaderEnd, leo), true
	case fe == leaderEpoch:
		return min(leaderEnd, fend, leo), true
	default:
		// The local log's epoch there is older than the leader's:
		// cut to its end and ask again.
		return min(fend, leo), false
	}
}
