package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// fetcher fetches every partition followed from one leader, one request at
// a time, on its own goroutine (run).
type fetcher struct {
	f      *Fetchers
	src    source
	log    *slog.Logger
	ctx    context.Context // ends when the fetcher is stopped or at Close
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: Set changed something
	// frame is the buffer the last Fetch response was read into, reused
	// for the next one (run's goroutine only): a follower allocates no
	// buffer per response. nil after an error.
	frame []byte

	mu struct {
		sync.Mutex
		parts map[tp]*part
		// inflight cancels the request in flight, so that a Set that
		// adds or restarts a partition need not wait out a long poll.
		inflight context.CancelFunc
		// version is the Fetch version the leader last answered, 0
		// before any: it says whether truncation can ride on Fetch
		// (v12, diverging_epoch) or needs OffsetForLeaderEpoch.
		version int16
	}
}

func newFetcher(f *Fetchers, src source) *fetcher {
	fe := &fetcher{f: f, src: src, wake: make(chan struct{}, 1),
		log: f.cfg.Logger.With("leader", src.id, "leader_addr", src.addr)}
	fe.ctx, fe.cancel = context.WithCancel(f.ctx)
	fe.mu.parts = make(map[tp]*part)
	return fe
}

func (fe *fetcher) add(p *part) {
	fe.mu.Lock()
	fe.mu.parts[p.key] = p
	fe.mu.Unlock()
}

// drop removes a partition and returns how many are left.
func (fe *fetcher) drop(k tp) int {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	delete(fe.mu.parts, k)
	return len(fe.mu.parts)
}

// kick wakes the fetcher after Set added or restarted a partition: a fetch
// in flight is abandoned (kclient drops its response) so that the next one
// includes the change at once.
func (fe *fetcher) kick() {
	select {
	case fe.wake <- struct{}{}:
	default:
	}
	fe.mu.Lock()
	if fe.mu.inflight != nil {
		fe.mu.inflight()
	}
	fe.mu.Unlock()
}

// run fetches until the fetcher is stopped.
func (fe *fetcher) run() {
	for fe.ctx.Err() == nil {
		wait := fe.round()
		if wait == 0 {
			continue
		}
		var t *time.Timer
		var timer <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-fe.ctx.Done():
		case <-fe.wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// item is one partition of a request: what it was asked with.
type item struct {
	p         *part
	ep        *engine.Partition
	asg       Assignment
	gen       uint64
	leo       int64
	lastEpoch int32
	// truncating: the partition was in the truncation phase when asked.
	truncating bool
}

// never is the wait of a fetcher with nothing to do until woken.
const never = -1

// round sends one request and handles its response. It returns how long to
// wait before the next round: 0 none, never until woken.
func (fe *fetcher) round() time.Duration {
	select { // what Set changed until now is in this round
	case <-fe.wake:
	default:
	}
	fe.mu.Lock()
	parts := make([]*part, 0, len(fe.mu.parts))
	for _, p := range fe.mu.parts {
		parts = append(parts, p)
	}
	version := fe.mu.version
	fe.mu.Unlock()

	now := time.Now()
	wait := time.Duration(never)
	var fetch, epochs []item
	for _, p := range parts {
		it, retry, ok := fe.prepare(p, now, version)
		if retry > 0 && (wait == never || retry < wait) {
			wait = retry
		}
		switch {
		case !ok:
		case it.truncating && version > 0 && version < 12:
			epochs = append(epochs, it)
		default:
			fetch = append(fetch, it)
		}
	}
	if len(epochs) > 0 {
		return fe.offsetsForEpochs(epochs)
	}
	if len(fetch) == 0 {
		return wait
	}
	return fe.fetch(fetch)
}

// prepare decides whether p goes into this round's request. Without ok,
// retry > 0 says when p may go again (a backoff).
func (fe *fetcher) prepare(p *part, now time.Time, version int16) (it item, retry time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.removed || p.mu.stopped {
		return item{}, 0, false
	}
	if now.Before(p.mu.retryAt) {
		return item{}, p.mu.retryAt.Sub(now), false
	}
	ep, err := fe.f.lookup(&p.mu.asg)
	var w *engine.FollowerWriter
	if err == nil {
		if w, err = ep.Follower(p.mu.asg.LeaderEpoch); err != nil {
			err = fmt.Errorf("%w: %w", ErrNotFollower, err)
		}
	}
	if err != nil {
		fe.backoffLocked(p, err)
		return item{}, fe.f.cfg.Backoff, false
	}
	leo := ep.EndOffset()
	last := lastEpoch(ep, leo)
	if p.mu.truncating {
		switch {
		case leo <= ep.StartOffset():
			p.mu.truncating = false // an empty log diverges from nothing
		case last == engine.UndefinedEpoch:
			// No epoch to ask about (KIP-101's fallback): keep only
			// what is committed.
			if !fe.truncateLocked(p, w, ep, ep.HighWatermark(), "no leader epoch for the log end") {
				return item{}, 0, false
			}
			p.mu.truncating = false
			leo = ep.EndOffset()
			last = lastEpoch(ep, leo)
		}
	}
	return item{p: p, ep: ep, asg: p.mu.asg, gen: p.mu.gen, leo: leo, lastEpoch: last, truncating: p.mu.truncating}, 0, true
}

// requestCtx is the context of one request: it ends with the fetcher or
// after the request timeout, and, if interruptible (a fetch, which may wait
// in the leader's purgatory), when kick interrupts it or already has since
// the round began.
func (fe *fetcher) requestCtx(interruptible bool) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(fe.ctx, fe.f.cfg.MaxWait+fe.f.cfg.RequestTimeout)
	if !interruptible {
		return ctx, cancel
	}
	fe.mu.Lock()
	fe.mu.inflight = cancel
	fe.mu.Unlock()
	if len(fe.wake) > 0 {
		cancel() // a Set came after the round's snapshot
	}
	return ctx, func() {
		fe.mu.Lock()
		fe.mu.inflight = nil
		fe.mu.Unlock()
		cancel()
	}
}

// failed handles a request that got no usable response: the whole fetcher
// backs off, unless it was stopped or interrupted by Set.
func (fe *fetcher) failed(ctx context.Context, what string, err error) time.Duration {
	if fe.ctx.Err() != nil {
		return 0 // stopping
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return 0 // interrupted by a Set: go again at once
	}
	fe.log.Warn("replica: "+what+" failed; backing off", "err", err, "backoff", fe.f.cfg.Backoff)
	return fe.f.cfg.Backoff
}

// fetch sends one Fetch for items and applies the response.
func (fe *fetcher) fetch(items []item) time.Duration {
	cfg := &fe.f.cfg
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(maxFetchVersion) // a cap: kclient picks min(this, the leader's)
	req.ReplicaID = cfg.NodeID
	req.MaxWaitMillis = int32(cfg.MaxWait / time.Millisecond)
	req.MinBytes, req.MaxBytes = cfg.MinBytes, cfg.MaxBytes
	topics := make(map[string]int)
	for _, it := range items {
		i, ok := topics[it.asg.Topic]
		if !ok {
			i = len(req.Topics)
			topics[it.asg.Topic] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = it.asg.Topic, it.asg.TopicID
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = it.asg.Partition
		rp.CurrentLeaderEpoch = it.asg.LeaderEpoch
		rp.FetchOffset = it.leo
		rp.LastFetchedEpoch = it.lastEpoch
		rp.LogStartOffset = it.ep.StartOffset()
		rp.PartitionMaxBytes = cfg.PartitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}

	ctx, done := fe.requestCtx(true)
	resp, err := fe.f.requestInto(ctx, fe.src.addr, req, &fe.frame)
	done()
	if err != nil {
		return fe.failed(ctx, "fetch", err)
	}
	r, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return fe.failed(ctx, "fetch", fmt.Errorf("response %T to a fetch", resp))
	}
	version := req.GetVersion()
	fe.mu.Lock()
	fe.mu.version = version
	fe.mu.Unlock()
	if r.ErrorCode != 0 {
		return fe.failed(ctx, "fetch", kerr.ErrorForCode(r.ErrorCode))
	}
	got := make(map[tp]*kmsg.FetchResponseTopicPartition)
	for i := range r.Topics {
		t := &r.Topics[i]
		for j := range t.Partitions {
			got[tp{t.Topic, t.Partitions[j].Partition}] = &t.Partitions[j]
		}
	}
	fe.applyEach(items, func(it item) bool { return fe.applyFetch(it, got[it.p.key], version) })
	return 0
}

// applyEach applies each item's partition of a response (apply reports
// OFFSET_OUT_OF_RANGE), then handles the out-of-range ones, which need
// requests of their own, once every partition's lock is released.
func (fe *fetcher) applyEach(items []item, apply func(item) bool) {
	var outOfRange []item
	for _, it := range items {
		if apply(it) {
			outOfRange = append(outOfRange, it)
		}
	}
	for _, it := range outOfRange {
		fe.outOfRange(it)
	}
}

// applyFetch applies one partition of a Fetch response. It reports
// OFFSET_OUT_OF_RANGE, which the caller handles (with requests) afterwards.
func (fe *fetcher) applyFetch(it item, rp *kmsg.FetchResponseTopicPartition, version int16) (outOfRange bool) {
	p := it.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.removed || p.mu.gen != it.gen {
		fe.f.dropped.Add(1)
		return false
	}
	if rp == nil {
		fe.backoffLocked(p, errors.New("replica: partition missing from the fetch response"))
		return false
	}
	if rp.ErrorCode != 0 {
		return fe.partitionErrorLocked(p, rp.ErrorCode)
	}
	ep := it.ep
	w, ok := fe.writerLocked(it)
	if !ok {
		return false
	}
	if ep.EndOffset() != it.leo {
		return false // the log changed under the request; ask again
	}
	if version >= 12 && rp.DivergingEpoch.EndOffset >= 0 {
		off, _ := truncationOffset(ep, rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset)
		if fe.truncateLocked(p, w, ep, off, "diverging epoch") {
			// Whether done or not, the next fetch carries the
			// epoch at the new end and the leader checks again.
			p.mu.truncating = false
		}
		return false
	}
	if it.truncating && (version < 12 || it.lastEpoch < 0) {
		// The leader did not check the log against its own: the
		// records may not follow on. Check with OffsetForLeaderEpoch
		// first (round does, now that the version is known).
		return false
	}
	p.mu.truncating = false
	fe.appendLocked(p, w, ep, rp)
	return false
}

// appendLocked appends the records of one partition of a Fetch response and
// takes the leader's high watermark and log start.
func (fe *fetcher) appendLocked(p *part, w *engine.FollowerWriter, ep *engine.Partition, rp *kmsg.FetchResponseTopicPartition) {
	if len(rp.RecordBatches) > 0 {
		if _, err := w.Append(rp.RecordBatches); err != nil {
			switch {
			case errors.Is(err, engine.ErrNotFollowerInEpoch):
				// Moved on between the check and the write (the engine
				// checked again under its append lock).
				err = fmt.Errorf("%w: %w", ErrNotFollower, err)
			case errors.Is(err, engine.ErrNotContiguous):
				p.mu.truncating = true // check the log against the leader's again
			}
			fe.backoffLocked(p, fmt.Errorf("replica: append: %w", err))
			return
		}
	}
	if hw := rp.HighWatermark; hw >= 0 {
		ep.SetHighWatermark(min(hw, ep.EndOffset()))
	}
	if start := min(rp.LogStartOffset, ep.HighWatermark()); start > ep.StartOffset() {
		if _, err := ep.DeleteRecords(start); err != nil {
			fe.backoffLocked(p, fmt.Errorf("replica: moving the log start to the leader's %d: %w", start, err))
			return
		}
	}
	p.mu.leaderHW = rp.HighWatermark
	p.mu.caughtUp = len(rp.RecordBatches) == 0
	fe.okLocked(p)
}

// partitionErrorLocked handles a partition's error code from the leader
// (Fetch or OffsetForLeaderEpoch). It reports OFFSET_OUT_OF_RANGE.
func (fe *fetcher) partitionErrorLocked(p *part, code int16) (outOfRange bool) {
	err := kerr.ErrorForCode(code)
	switch {
	case errors.Is(err, kerr.OffsetOutOfRange):
		return true
	case errors.Is(err, kerr.FencedLeaderEpoch):
		fe.stopLocked(p, fmt.Errorf("%w (epoch %d): %w", ErrFenced, p.mu.asg.LeaderEpoch, err))
	default:
		// NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH: the leader's
		// metadata may lag ours; UNKNOWN_TOPIC_*: it may not host the
		// partition yet. Retry after the backoff (a Set with news
		// restarts the partition sooner).
		fe.backoffLocked(p, err)
	}
	return false
}

// outOfRange handles OFFSET_OUT_OF_RANGE as Kafka's
// AbstractFetcherThread.fetchOffsetAndTruncate does: a local log longer than
// the leader's is cut to the leader's end; one ending below the leader's log
// start starts over there (see startOver).
func (fe *fetcher) outOfRange(it item) {
	end, err := fe.listOffset(it, -1)
	if err != nil {
		fe.backoff(it, err)
		return
	}
	p := it.p
	p.mu.Lock()
	if p.mu.removed || p.mu.gen != it.gen {
		p.mu.Unlock()
		fe.f.dropped.Add(1)
		return
	}
	w, ok := fe.writerLocked(it)
	if !ok {
		p.mu.Unlock()
		return
	}
	if leo := it.ep.EndOffset(); end < leo {
		fe.truncateLocked(p, w, it.ep, end, "local log longer than the leader's")
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()

	start, err := fe.listOffset(it, -2)
	if err != nil {
		fe.backoff(it, err)
		return
	}
	if leo := it.ep.EndOffset(); start > leo {
		fe.startOver(it, start)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.removed || p.mu.gen != it.gen {
		fe.f.dropped.Add(1)
		return
	}
	// In range after all (the leader moved meanwhile): fetch again,
	// after the backoff in case it keeps happening.
	fe.backoffLocked(p, fmt.Errorf("replica: fetch offset out of range; leader's log is [%d, %d): %w", start, end, kerr.OffsetOutOfRange))
}

// startOver restarts a local log that ends below the leader's log start
// (Kafka's truncateFullyAndStartAt): it fetches the leader's log at start
// first, because the batch holding start may begin below it (DeleteRecords
// moves a log start into a batch) and appends must begin at the log end;
// then it starts the local log over, empty, at that batch's base offset
// (or start, with nothing to fetch there yet), and appends what the fetch
// brought. Should the batch begin at or below the local log end, the log is
// cut to it instead (a refusal stops the partition, as every truncation
// does). Between the fetch and the writes the generation, the role and the
// local log end are checked again, like any response's.
func (fe *fetcher) startOver(it item, start int64) {
	rp, err := fe.fetchAt(it, start)
	if err != nil {
		fe.backoff(it, err)
		return
	}
	p := it.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.removed || p.mu.gen != it.gen {
		fe.f.dropped.Add(1)
		return
	}
	if rp.ErrorCode != 0 {
		if fe.partitionErrorLocked(p, rp.ErrorCode) {
			// The leader's log start moved on meanwhile: look again.
			fe.backoffLocked(p, fmt.Errorf("replica: starting over at %d: %w", start, kerr.OffsetOutOfRange))
		}
		return
	}
	ep := it.ep
	w, ok := fe.writerLocked(it)
	if !ok {
		return
	}
	leo := ep.EndOffset()
	if leo != it.leo {
		return // the log changed under the request; ask again
	}
	at := start
	if h, err := record.ParseHeader(rp.RecordBatches); err == nil {
		at = min(h.BaseOffset, start)
	}
	switch {
	case at > leo:
		if err := w.TruncateFullyAndStartAt(at); err != nil {
			if errors.Is(err, engine.ErrNotFollowerInEpoch) {
				fe.backoffLocked(p, fmt.Errorf("%w: %w", ErrNotFollower, err))
			} else {
				fe.stopLocked(p, fmt.Errorf("replica: starting the log over at %d: %w", at, err))
			}
			return
		}
		fe.log.Info("replica: started follower log over at the leader's log start", "topic", p.key.topic, "partition", p.key.partition,
			"epoch", p.mu.asg.LeaderEpoch, "leader_log_start", start, "at", at, "log_end_before", leo)
	case at < leo:
		if !fe.truncateLocked(p, w, ep, at, "the leader's log starts in a batch below the local log end") {
			return
		}
	}
	p.mu.truncating = false
	fe.appendLocked(p, w, ep, rp)
}

// fetchAt fetches one partition from offset, without waiting and without
// last_fetched_epoch (the local log does not reach offset: nothing to check
// against the leader's).
func (fe *fetcher) fetchAt(it item, offset int64) (*kmsg.FetchResponseTopicPartition, error) {
	cfg := &fe.f.cfg
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(maxFetchVersion)
	req.ReplicaID = cfg.NodeID
	req.MaxWaitMillis = 0
	req.MinBytes, req.MaxBytes = 1, cfg.MaxBytes
	t := kmsg.NewFetchRequestTopic()
	t.Topic, t.TopicID = it.asg.Topic, it.asg.TopicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = it.asg.Partition
	rp.CurrentLeaderEpoch = it.asg.LeaderEpoch
	rp.FetchOffset = offset
	rp.LastFetchedEpoch = engine.UndefinedEpoch
	rp.LogStartOffset = it.ep.StartOffset()
	rp.PartitionMaxBytes = cfg.PartitionMaxBytes
	t.Partitions = append(t.Partitions, rp)
	req.Topics = append(req.Topics, t)
	ctx, done := fe.requestCtx(false)
	resp, err := fe.f.request(ctx, fe.src.addr, req)
	done()
	if err != nil {
		return nil, fmt.Errorf("replica: fetch at the leader's log start %d: %w", offset, err)
	}
	r, ok := resp.(*kmsg.FetchResponse)
	if !ok || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("replica: fetch at the leader's log start %d: malformed response", offset)
	}
	if r.ErrorCode != 0 {
		return nil, fmt.Errorf("replica: fetch at the leader's log start %d: %w", offset, kerr.ErrorForCode(r.ErrorCode))
	}
	return &r.Topics[0].Partitions[0], nil
}

// listOffset asks the leader for its log end (ts -1; replica id set, so the
// log end, not the high watermark) or its log start (ts -2).
func (fe *fetcher) listOffset(it item, ts int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = fe.f.cfg.NodeID
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = it.asg.Topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = it.asg.Partition
	rp.CurrentLeaderEpoch = it.asg.LeaderEpoch
	rp.Timestamp = ts
	t.Partitions = append(t.Partitions, rp)
	req.Topics = append(req.Topics, t)
	ctx, done := fe.requestCtx(false)
	resp, err := fe.f.request(ctx, fe.src.addr, req)
	done()
	if err != nil {
		return 0, fmt.Errorf("replica: list offsets: %w", err)
	}
	r, ok := resp.(*kmsg.ListOffsetsResponse)
	if !ok || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return 0, fmt.Errorf("replica: list offsets: malformed response")
	}
	got := &r.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
		return 0, fmt.Errorf("replica: list offsets: %w", err)
	}
	return got.Offset, nil
}

// offsetsForEpochs asks the leader, with OffsetForLeaderEpoch, where each
// item's last local epoch ends, and truncates to what that says.
func (fe *fetcher) offsetsForEpochs(items []item) time.Duration {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = fe.f.cfg.NodeID
	topics := make(map[string]int)
	for _, it := range items {
		i, ok := topics[it.asg.Topic]
		if !ok {
			i = len(req.Topics)
			topics[it.asg.Topic] = i
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = it.asg.Topic
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = it.asg.Partition
		rp.CurrentLeaderEpoch = it.asg.LeaderEpoch
		rp.LeaderEpoch = it.lastEpoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	ctx, done := fe.requestCtx(false)
	resp, err := fe.f.request(ctx, fe.src.addr, req)
	done()
	if err != nil {
		return fe.failed(ctx, "offset for leader epoch", err)
	}
	r, ok := resp.(*kmsg.OffsetForLeaderEpochResponse)
	if !ok {
		return fe.failed(ctx, "offset for leader epoch", fmt.Errorf("response %T", resp))
	}
	version := req.GetVersion()
	got := make(map[tp]*kmsg.OffsetForLeaderEpochResponseTopicPartition)
	for i := range r.Topics {
		t := &r.Topics[i]
		for j := range t.Partitions {
			got[tp{t.Topic, t.Partitions[j].Partition}] = &t.Partitions[j]
		}
	}
	fe.applyEach(items, func(it item) bool { return fe.applyEpoch(it, got[it.p.key], version) })
	return 0
}

// applyEpoch applies one partition of an OffsetForLeaderEpoch response.
func (fe *fetcher) applyEpoch(it item, rp *kmsg.OffsetForLeaderEpochResponseTopicPartition, version int16) (outOfRange bool) {
	p := it.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.removed || p.mu.gen != it.gen {
		fe.f.dropped.Add(1)
		return false
	}
	if rp == nil {
		fe.backoffLocked(p, errors.New("replica: partition missing from the offset for leader epoch response"))
		return false
	}
	if rp.ErrorCode != 0 {
		return fe.partitionErrorLocked(p, rp.ErrorCode)
	}
	ep := it.ep
	w, ok := fe.writerLocked(it)
	if !ok {
		return false
	}
	if ep.EndOffset() != it.leo {
		return false
	}
	var off int64
	done := true
	if version == 0 {
		// v0 answers carry no epoch: the end offset is the answer.
		off = min(rp.EndOffset, it.leo)
		if rp.EndOffset == engine.UndefinedOffset {
			off = min(ep.HighWatermark(), it.leo)
		}
	} else {
		off, done = truncationOffset(ep, rp.LeaderEpoch, rp.EndOffset)
	}
	if !fe.truncateLocked(p, w, ep, off, "offset for leader epoch") {
		return false
	}
	if done {
		p.mu.truncating = false
	}
	fe.okLocked(p)
	return false
}

// writerLocked returns the engine partition's write path in the epoch the
// item was asked under, or backs off (ErrNotFollower) if the broker moved it
// on (BecomeLeader, a newer BecomeFollower) before Set told us: nothing of
// the old assignment may be written to it. The writer checks again at each
// write, under the engine's append lock, so a move after this check is
// caught too.
func (fe *fetcher) writerLocked(it item) (*engine.FollowerWriter, bool) {
	w, err := it.ep.Follower(it.asg.LeaderEpoch)
	if err != nil {
		fe.backoffLocked(it.p, fmt.Errorf("%w: %w", ErrNotFollower, err))
		return nil, false
	}
	return w, true
}

// truncateLocked cuts ep's log to off through w (nothing if off is at or
// past its end). A truncation the engine refuses stops the partition,
// unless the partition moved on (then it backs off); it reports whether the
// log now ends at or before off.
func (fe *fetcher) truncateLocked(p *part, w *engine.FollowerWriter, ep *engine.Partition, off int64, why string) bool {
	leo := ep.EndOffset()
	if off >= leo {
		return true
	}
	// Committed records go only after an unclean election this log has
	// not followed a leader since (Assignment.UncleanEpoch).
	unclean := p.mu.asg.UncleanEpoch > 0 && lastEpoch(ep, leo) < p.mu.asg.UncleanEpoch
	if hw := ep.HighWatermark(); unclean && off < hw {
		fe.log.Warn("replica: truncating committed records after an unclean leader election", "topic", p.key.topic, "partition", p.key.partition,
			"epoch", p.mu.asg.LeaderEpoch, "unclean_epoch", p.mu.asg.UncleanEpoch, "to", off, "high_watermark", hw)
	}
	end, err := w.TruncateTo(off, unclean)
	if errors.Is(err, engine.ErrNotFollowerInEpoch) {
		fe.backoffLocked(p, fmt.Errorf("%w: %w", ErrNotFollower, err))
		return false
	}
	if err != nil {
		fe.stopLocked(p, fmt.Errorf("replica: truncating to %d (%s): %w", off, why, err))
		return false
	}
	fe.log.Info("replica: truncated follower log", "topic", p.key.topic, "partition", p.key.partition,
		"epoch", p.mu.asg.LeaderEpoch, "why", why, "to", off, "log_end_before", leo, "log_end", end)
	return true
}

// backoffLocked records err and keeps p out of requests for the backoff.
func (fe *fetcher) backoffLocked(p *part, err error) {
	if p.mu.err == nil {
		fe.log.Warn("replica: partition fetch failed; backing off", "topic", p.key.topic, "partition", p.key.partition,
			"epoch", p.mu.asg.LeaderEpoch, "err", err)
	}
	p.mu.err, p.mu.caughtUp = err, false
	// Growing from minPartitionBackoff to Config.Backoff: the usual error
	// is transient, a new leader that has not applied its own promotion
	// yet (UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER) a few ms after
	// this broker's metadata named it, and a whole Backoff then would
	// hold every acks=all produce that needs this follower.
	p.mu.backoff = min(max(2*p.mu.backoff, minPartitionBackoff), fe.f.cfg.Backoff)
	p.mu.retryAt = time.Now().Add(p.mu.backoff)
}

// minPartitionBackoff is the first pause after a partition's error.
const minPartitionBackoff = 10 * time.Millisecond

// backoff is backoffLocked for an item whose generation is still current.
func (fe *fetcher) backoff(it item, err error) {
	p := it.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.removed && p.mu.gen == it.gen && fe.ctx.Err() == nil {
		fe.backoffLocked(p, err)
	}
}

// stopLocked stops p until Set changes its assignment.
func (fe *fetcher) stopLocked(p *part, err error) {
	fe.log.Error("replica: partition stopped until its assignment changes", "topic", p.key.topic, "partition", p.key.partition,
		"epoch", p.mu.asg.LeaderEpoch, "err", err)
	p.mu.err, p.mu.stopped, p.mu.caughtUp = err, true, false
}

// okLocked clears p's error after a success.
func (fe *fetcher) okLocked(p *part) {
	p.mu.backoff = 0
	if p.mu.err != nil {
		fe.log.Info("replica: partition fetching again", "topic", p.key.topic, "partition", p.key.partition,
			"epoch", p.mu.asg.LeaderEpoch, "after", p.mu.err)
		p.mu.err = nil
	}
}
