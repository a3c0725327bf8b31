package main

// Reading the cluster's state through Metadata, sent straight to one broker
// (never routed by the client), and timing a failover from it.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// pollEvery is the Metadata polling period of a failover measurement.
const pollEvery = 10 * time.Millisecond

// tp names a partition.
type tp struct {
	topic string
	part  int32
}

// view is one broker's answer to Metadata.
type view struct {
	brokers    []int32 // sorted
	controller int32
	leader     map[tp]int32
	epoch      map[tp]int32
	isr        map[tp][]int32
	ok         bool // every partition of every asked topic is present, without error
}

func (v view) leads(id int32) []tp {
	var out []tp
	for p, l := range v.leader {
		if l == id {
			out = append(out, p)
		}
	}
	return out
}

// metadata asks broker id about topics.
func (c *cluster) metadata(ctx context.Context, id int32, topics []string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	seeds := c.nodes[id].client.SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("broker %d: no seed", id)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := seeds[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// view asks broker id about topics, each expected with parts partitions.
func (c *cluster) view(ctx context.Context, id int32, topics []string, parts int) (view, error) {
	resp, err := c.metadata(ctx, id, topics)
	if err != nil {
		return view{}, err
	}
	v := view{controller: resp.ControllerID, leader: map[tp]int32{}, epoch: map[tp]int32{}, isr: map[tp][]int32{}, ok: true}
	for _, b := range resp.Brokers {
		v.brokers = append(v.brokers, b.NodeID)
	}
	slices.Sort(v.brokers)
	n := 0
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 || t.Topic == nil {
			v.ok = false
			continue
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 && p.ErrorCode != kerr.LeaderNotAvailable.Code {
				v.ok = false
			}
			k := tp{*t.Topic, p.Partition}
			v.leader[k], v.epoch[k], v.isr[k] = p.Leader, p.LeaderEpoch, p.ISR
			n++
		}
	}
	if topics != nil && n != len(topics)*parts {
		v.ok = false
	}
	return v, nil
}

// waitStable waits until every running broker answers Metadata with the
// same brokers (all running ones), controller, leaders and epochs, every
// partition led by a running broker, and, if balanced, every running broker
// leading a partition.
func (c *cluster) waitStable(ctx context.Context, topics []string, parts int, balanced bool, timeout time.Duration) (view, error) {
	deadline := time.Now().Add(timeout)
	live := c.live()
	var last string
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return view{}, err
		}
		v, why := c.agree(ctx, live, topics, parts, balanced)
		if why == "" {
			return v, nil
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	return view{}, fmt.Errorf("no stable metadata within %v: %s", timeout, last)
}

func (c *cluster) agree(ctx context.Context, live []int32, topics []string, parts int, balanced bool) (view, string) {
	var first view
	for i, id := range live {
		v, err := c.view(ctx, id, topics, parts)
		switch {
		case err != nil:
			return v, fmt.Sprintf("broker %d: %v", id, err)
		case !v.ok:
			return v, fmt.Sprintf("broker %d: partitions missing or in error", id)
		case !slices.Equal(v.brokers, live):
			return v, fmt.Sprintf("broker %d lists brokers %v, running %v", id, v.brokers, live)
		case v.controller < 0:
			return v, fmt.Sprintf("broker %d knows no controller", id)
		}
		for p, l := range v.leader {
			if !slices.Contains(live, l) {
				return v, fmt.Sprintf("broker %d: %s/%d led by %d", id, p.topic, p.part, l)
			}
		}
		if i == 0 {
			first = v
			continue
		}
		if v.controller != first.controller {
			return v, fmt.Sprintf("controller %d at broker %d, %d at %d", v.controller, id, first.controller, live[0])
		}
		for p, l := range v.leader {
			if first.leader[p] != l || first.epoch[p] != v.epoch[p] {
				return v, fmt.Sprintf("%s/%d: brokers %d and %d disagree", p.topic, p.part, live[0], id)
			}
		}
	}
	if balanced && len(first.leader) >= len(live) {
		for _, id := range live {
			if len(first.leads(id)) == 0 {
				return first, fmt.Sprintf("broker %d leads nothing", id)
			}
		}
	}
	return first, ""
}

// sample is one kill's measurements, from the SIGKILL unless said otherwise.
type sample struct {
	kind   string // "leader" or "controller"
	victim int32
	led    int // partitions the victim led
	vals   map[string]time.Duration
	fails  []string
}

func (s *sample) set(metric string, d time.Duration) { s.vals[metric] = d }
func (s *sample) fail(format string, args ...any) {
	s.fails = append(s.fails, fmt.Sprintf(format, args...))
}

// Metric names, in the order they are reported.
const (
	mSuspect  = "gossip: first suspicion logged"
	mDetect   = "gossip: first 'marked failed' logged"
	mElect    = "raft: new controller logged 'won leadership'"
	mNewCtrl  = "Metadata: new controller id (first survivor)"
	mUsable   = "CreateTopics succeeds (controller usable)"
	mFenced   = "Metadata: dead broker unlisted (first survivor)"
	mMoved    = "Metadata: its partitions re-led, epoch bumped (first survivor)"
	mMovedAll = "Metadata: the same on both survivors"
	mStarted  = "restart: exec to 'easel started'"
	mRejoined = "restart: exec to listed in Metadata (unfenced)"
)

var (
	suspectRE = regexp.MustCompile(`Suspect`)
	failedRE  = regexp.MustCompile(`Marking \S+ as failed`)
	wonRE     = regexp.MustCompile(`controller: won leadership`)
)

// failoverTimeout is the longest a failover may take before it counts as a
// failure.
const failoverTimeout = 30 * time.Second

// measureKill SIGKILLs victim, which in before leads the partitions it
// leads, and times the failover as seen by the other running brokers.
func (c *cluster) measureKill(ctx context.Context, s *sample, before view, topics []string, parts int, probe string) error {
	dead := s.victim
	oldEpoch := map[tp]int32{}
	for _, p := range before.leads(dead) {
		oldEpoch[p] = before.epoch[p]
	}
	s.led = len(oldEpoch)
	wasCtrl := before.controller == dead
	killAt, err := c.kill(dead)
	if err != nil {
		return err
	}
	survivors := c.live()
	deadline := killAt.Add(failoverTimeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	type seen struct{ fenced, moved, ctrl time.Time }
	res := make([]seen, len(survivors))
	var wg sync.WaitGroup
	for i, id := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &res[i]
			tick := time.NewTicker(pollEvery)
			defer tick.Stop()
			for {
				if v, err := c.view(wctx, id, topics, parts); err == nil {
					now := time.Now()
					if r.fenced.IsZero() && !slices.Contains(v.brokers, dead) {
						r.fenced = now
					}
					if r.ctrl.IsZero() && v.controller >= 0 && v.controller != dead {
						r.ctrl = now
					}
					if r.moved.IsZero() && movedOff(v, oldEpoch, dead) {
						r.moved = now
					}
				}
				if !r.fenced.IsZero() && !r.moved.IsZero() && !r.ctrl.IsZero() {
					return
				}
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	var usable time.Time
	if wasCtrl {
		wg.Add(1)
		go func() {
			defer wg.Done()
			usable = c.createUntilOK(wctx, survivors, probe)
		}()
	}
	wg.Wait()

	first := func(metric string, get func(seen) time.Time) {
		var t time.Time
		for _, r := range res {
			if g := get(r); !g.IsZero() && (t.IsZero() || g.Before(t)) {
				t = g
			}
		}
		if t.IsZero() {
			s.fail("%s: not within %v", metric, failoverTimeout)
			return
		}
		s.set(metric, t.Sub(killAt))
	}
	first(mFenced, func(r seen) time.Time { return r.fenced })
	if s.led > 0 {
		first(mMoved, func(r seen) time.Time { return r.moved })
		var last time.Time
		for _, r := range res {
			if r.moved.IsZero() {
				last = time.Time{}
				break
			}
			if r.moved.After(last) {
				last = r.moved
			}
		}
		if !last.IsZero() {
			s.set(mMovedAll, last.Sub(killAt))
		}
	}
	if wasCtrl {
		first(mNewCtrl, func(r seen) time.Time { return r.ctrl })
		if usable.IsZero() {
			s.fail("%s: not within %v", mUsable, failoverTimeout)
		} else {
			s.set(mUsable, usable.Sub(killAt))
		}
		if t, _, ok := c.firstEvent(wonRE, killAt, dead); ok {
			s.set(mElect, t.Sub(killAt))
		}
	}
	if t, _, ok := c.firstEvent(suspectRE, killAt, dead); ok {
		s.set(mSuspect, t.Sub(killAt))
	}
	if t, _, ok := c.firstEvent(failedRE, killAt, dead); ok {
		s.set(mDetect, t.Sub(killAt))
	}
	return nil
}

// movedOff reports whether every partition in old is led by a broker other
// than dead with an epoch above its old one.
func movedOff(v view, old map[tp]int32, dead int32) bool {
	if !v.ok {
		return false
	}
	for p, e := range old {
		if l := v.leader[p]; l < 0 || l == dead || v.epoch[p] <= e {
			return false
		}
	}
	return true
}

// createUntilOK sends CreateTopics for topic (1 partition, replication
// factor 1) to the survivors in turn until one succeeds, and returns when.
func (c *cluster) createUntilOK(ctx context.Context, survivors []int32, topic string) time.Time {
	for i := 0; ctx.Err() == nil; i++ {
		id := survivors[i%len(survivors)]
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 2000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
		req.Topics = append(req.Topics, rt)
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := c.nodes[id].client.SeedBrokers()[0].Request(rctx, req)
		cancel()
		if err == nil {
			r := resp.(*kmsg.CreateTopicsResponse)
			if len(r.Topics) == 1 && (r.Topics[0].ErrorCode == 0 || r.Topics[0].ErrorCode == kerr.TopicAlreadyExists.Code) {
				return time.Now()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
		}
	}
	return time.Time{}
}

// measureRestart starts id again with its data dir and times it until it
// is listed in Metadata by the others (registered and unfenced).
func (c *cluster) measureRestart(ctx context.Context, s *sample, topics []string, parts int) error {
	others := c.live()
	if err := c.start(ctx, s.victim); err != nil {
		return err
	}
	p := c.nodes[s.victim].proc
	s.set(mStarted, time.Since(p.started))
	deadline := p.started.Add(failoverTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, o := range others {
			if v, err := c.view(ctx, o, topics, parts); err == nil && slices.Contains(v.brokers, s.victim) {
				s.set(mRejoined, time.Since(p.started))
				return nil
			}
		}
		time.Sleep(pollEvery)
	}
	s.fail("%s: not within %v", mRejoined, failoverTimeout)
	return nil
}
