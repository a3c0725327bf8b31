package group

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// Sentinel errors of LoadPartition and DeleteTopicOffsets, for errors.Is.
var (
	// ErrClosed is returned once the Coordinator is closed.
	ErrClosed = errors.New("group: coordinator closed")
	// ErrNoPartition is returned for a partition number outside
	// __consumer_offsets.
	ErrNoPartition = errors.New("group: no such __consumer_offsets partition")
)

// LoadPartition makes this coordinator serve the groups of partition p of
// __consumer_offsets, as when it becomes the partition's leader: it replays
// the partition's records (committed offsets, group metadata, tombstones)
// and serves the groups as they were last stored: offsets, and for a stable
// group its generation and members, each with a fresh session timeout, so
// they continue without a rebalance. Requests for those groups get
// COORDINATOR_LOAD_IN_PROGRESS while it runs. Loading a loaded partition does
// nothing. On error the partition's groups get COORDINATOR_NOT_AVAILABLE
// until a later LoadPartition succeeds.
func (c *Coordinator) LoadPartition(p int32) error {
	if p < 0 || p >= c.n {
		return fmt.Errorf("%w: %d (of %d)", ErrNoPartition, p, c.n)
	}
	if c.openErr != nil {
		return c.openErr
	}
	s := c.shards[p]
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	c.mu.Lock()
	switch {
	case c.mu.closed:
		c.mu.Unlock()
		return ErrClosed
	case s.state == shardLoaded:
		c.mu.Unlock()
		return nil
	}
	s.state = shardLoading
	c.mu.Unlock()
	if c.hooks.loading != nil {
		c.hooks.loading(p)
	}
	start := time.Now()
	w, groups, err := c.replay(s)
	c.mu.Lock()
	if err == nil && c.mu.closed {
		err = ErrClosed
	}
	if err != nil {
		s.state = shardFailed
		c.mu.Unlock()
		if w != nil {
			w.close()
		}
		c.log.Error("group: cannot load partition", "partition", p, "err", err)
		return fmt.Errorf("group: load %s/%d: %w", engine.ConsumerOffsetsTopic, p, err)
	}
	// The loaded groups, listed before the map is published: once it is,
	// requests add groups to it under c.mu.
	loaded := make([]*group, 0, len(groups))
	for _, g := range groups {
		loaded = append(loaded, g)
	}
	s.state, s.groups, s.w = shardLoaded, groups, w
	c.mu.Unlock()
	members := 0
	for _, g := range loaded {
		g.mu.Lock()
		for _, m := range g.members {
			g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		}
		members += len(g.members)
		g.mu.Unlock()
	}
	if len(loaded) > 0 {
		c.log.Debug("group: loaded partition", "partition", p, "groups", len(loaded), "members", members, "took", time.Since(start))
	}
	return nil
}

// UnloadPartition stops serving the groups of partition p, as when this
// broker stops leading it: their requests get NOT_COORDINATOR (JoinGroup and
// SyncGroup requests waiting there too), so clients find the new
// coordinator. It returns once the writes already accepted for the partition
// are appended, so a later LoadPartition, here or on the new leader, sees
// them. Unloading a partition that is not loaded does nothing.
func (c *Coordinator) UnloadPartition(p int32) {
	if p < 0 || p >= c.n {
		return
	}
	s := c.shards[p]
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	c.mu.Lock()
	groups, w := s.groups, s.w
	s.groups, s.w = nil, nil
	if s.state != shardFailed || c.openErr == nil {
		s.state = shardUnloaded
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.state = stateDead
		g.shutdownLocked()
		g.mu.Unlock()
	}
	if w != nil {
		w.close()
	}
	if groups != nil {
		c.log.Debug("group: unloaded partition", "partition", p, "groups", len(groups))
	}
}

// replay reads shard s's partition into groups, with the writer they will
// use. The groups are not yet served: no lock is needed on them, and their
// timers are not armed.
func (c *Coordinator) replay(s *shard) (*writer, map[string]*group, error) {
	part, err := c.eng.Partition(engine.ConsumerOffsetsTopic, s.id)
	if err != nil {
		return nil, nil, err
	}
	info, err := c.eng.Topic(engine.ConsumerOffsetsTopic)
	if err != nil {
		return nil, nil, err
	}
	w := newWriter(part, int(info.Config.MaxMessageBytes), c.cfg.Now, c.cfg.OffsetCommitTimeout, &c.wg)
	type loaded struct {
		offsets map[engine.TopicPartition]committed
		meta    *stored
	}
	all := make(map[string]*loaded)
	get := func(id string) *loaded {
		l := all[id]
		if l == nil {
			l = &loaded{offsets: make(map[engine.TopicPartition]committed)}
			all[id] = l
		}
		return l
	}
	skipped := 0
	// To the log end: on a new leader the high watermark may lag it until
	// the followers fetch, and every record in a leader's log stays.
	it := part.RecordsToEnd(part.StartOffset())
	for it.Next() {
		r := it.Record()
		st, err := decodeStored(r.Key, r.Value)
		switch {
		case err != nil:
			if skipped++; skipped <= 10 {
				c.log.Warn("group: skipping undecodable record", "partition", s.id, "offset", r.Offset, "err", err)
			}
			continue
		case st.kind == kindOffset && st.offset != nil:
			get(st.group).offsets[st.tp] = *st.offset
		case st.kind == kindOffset:
			if l := all[st.group]; l != nil {
				delete(l.offsets, st.tp)
			}
		case st.kind == kindGroup && st.meta != nil:
			get(st.group).meta = &st
		case st.kind == kindGroup:
			if l := all[st.group]; l != nil {
				l.meta = nil
			}
		}
	}
	if err := it.Close(); err != nil {
		w.close()
		return nil, nil, err
	}
	now := c.cfg.Now()
	groups := make(map[string]*group, len(all))
	for id, l := range all {
		if len(l.offsets) == 0 && l.meta == nil {
			continue
		}
		if PartitionFor(id, c.n) != s.id {
			c.log.Warn("group: record of a group on the wrong partition; ignored", "group", id, "partition", s.id)
			continue
		}
		g := newGroup(c, s, w, id)
		g.offsets = l.offsets
		for _, o := range l.offsets {
			g.lastCommit = maxTime(g.lastCommit, time.UnixMilli(o.commitMs))
		}
		g.emptySince = time.Time{} // a group known only by its offsets expires by them
		if l.meta != nil {
			g.restoreLocked(l.meta.meta, now)
		}
		groups[id] = g
	}
	return w, groups, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// DeleteTopicOffsets deletes every committed offset of topic held by the
// groups loaded here, writing a tombstone for each, and returns once they are
// appended. The broker calls it when it deletes a topic, after the engine
// has: a commit that races with the deletion either finished before (and is
// deleted here) or finds the topic gone.
func (c *Coordinator) DeleteTopicOffsets(topic string) error {
	groups, code := c.snapshot()
	if code == kerr.NotCoordinator.Code {
		return ErrClosed
	}
	type pending struct {
		g   *group
		tps []engine.TopicPartition
		ch  chan error
	}
	var ps []pending
	var errs []error
	// Sorted: commit locks of several groups are held at once, always taken
	// in id order.
	slices.SortFunc(groups, func(a, b *group) int { return strings.Compare(a.id, b.id) })
	for _, g := range groups {
		g.commitMu.Lock()
		g.mu.Lock()
		var tps []engine.TopicPartition
		if g.state != stateDead {
			for tp := range g.offsets {
				if tp.Topic == topic {
					tps = append(tps, tp)
				}
			}
		}
		g.mu.Unlock()
		if len(tps) == 0 {
			g.commitMu.Unlock()
			continue
		}
		recs := make([]record.Record, len(tps))
		for i, tp := range tps {
			recs[i] = record.Record{Key: appendOffsetKey(nil, g.id, tp.Topic, tp.Partition)}
		}
		ch := make(chan error, 1)
		if err := g.w.submit(newWrite(recs, func(err error) { ch <- err })); err != nil {
			g.commitMu.Unlock()
			errs = append(errs, fmt.Errorf("group %q: %w", g.id, err))
			continue
		}
		ps = append(ps, pending{g, tps, ch}) // commitMu stays held until applied
	}
	for _, p := range ps {
		if err := <-p.ch; err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", p.g.id, err))
		} else {
			p.g.mu.Lock()
			for _, tp := range p.tps {
				delete(p.g.offsets, tp)
			}
			p.g.mu.Unlock()
		}
		p.g.commitMu.Unlock()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("group: delete offsets of topic %q: %w", topic, err)
	}
	return nil
}
