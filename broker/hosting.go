package broker

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/replica"
)

// hostingRetry is how soon hosting tries again after a partition could not
// be opened or moved to its epoch (a full disk, say), when no metadata
// change comes first.
const hostingRetry = 2 * time.Second

// hostKey names a partition by topic name, as the engine does.
type hostKey struct {
	topic     string
	partition int32
}

// hostedPart is what hosting did to one partition.
type hostedPart struct {
	p      *engine.Partition
	id     engine.TopicID
	leader bool  // led here in epoch
	epoch  int32 // the leader epoch the engine's partition was moved to
	// groupsEpoch is the leader epoch in which this broker loaded the
	// partition's groups (__consumer_offsets only), -1 when not loaded.
	groupsEpoch int32
}

// wantPart is one partition the metadata assigns to this broker.
type wantPart struct {
	info      engine.TopicInfo
	partition int32
	leader    int32
	epoch     int32
	meta      *cluster.Partition // immutable
	topic     *cluster.Topic     // immutable
	// leaderAddr is the leader's Kafka address ("" if it has none).
	leaderAddr string
}

// runHosting keeps the engine's partitions in line with the node's copy of
// the metadata, level-triggered: it reads the whole copy and fixes every
// difference, each time the copy changes (and after a failure, every
// hostingRetry). It starts once the node is Ready: before that the copy may
// lag the cluster, and a broker acting on an old copy would lead partitions
// that have moved on. Logs on disk that the metadata does not assign here
// are set aside (never deleted) after the first pass that hosted everything
// it should.
func (b *Broker) runHosting() {
	defer close(b.hostingDone)
	select {
	case <-b.node.Ready():
	case <-b.closed:
		return
	}
	hosted := make(map[hostKey]*hostedPart)
	topics := make(map[string]engine.TopicID)       // topics of the copy, for offsets of deleted ones
	settings := make(map[string]engine.TopicConfig) // what each hosted topic's partitions were last set to
	var following []replica.Assignment
	setAside := false
	for {
		changed := b.node.Changed()
		ok := b.reconcileHosting(hosted, topics, &following)
		ok = b.applySettings(hosted, settings) && ok
		b.passed.Lock()
		close(b.passed.ch)
		b.passed.ch = make(chan struct{})
		b.passed.Unlock()
		if ok && !setAside {
			if n, err := b.eng.SetAsideUnhosted(); err != nil {
				b.log.Error("broker: cannot set aside logs the cluster does not assign here", "err", err)
				ok = false
			} else {
				setAside = true
				if n > 0 {
					b.log.Warn("broker: set aside logs the cluster does not assign here", "logs", n)
				}
				close(b.hostedAll)
			}
		}
		var retry <-chan time.Time
		if !ok {
			retry = time.After(hostingRetry)
		}
		select {
		case <-changed:
		case <-retry:
		case <-b.closed:
			return
		}
	}
}

// reconcileHosting makes one pass (see runHosting) and reports whether
// every partition is as the metadata says.
// following is the set last handed to the fetchers.
func (b *Broker) reconcileHosting(hosted map[hostKey]*hostedPart, topics map[string]engine.TopicID, following *[]replica.Assignment) bool {
	self := b.cfg.NodeID
	var (
		wants []wantPart
		now   = make(map[string]engine.TopicID)
	)
	b.node.View(func(s *cluster.State) {
		for _, t := range s.Topics() {
			now[t.Name] = t.ID
		}
		var info engine.TopicInfo
		for _, p := range s.ReplicatedOn(self) {
			t := s.TopicByID(p.Topic)
			if t == nil {
				continue // cannot happen: State keeps partitions with their topics
			}
			if info.ID != t.ID {
				info = b.topicInfo(s, t)
			}
			w := wantPart{info: info, partition: p.Index, leader: p.Leader, epoch: p.LeaderEpoch, meta: p, topic: t}
			if br := s.Broker(p.Leader); br != nil && p.Leader != self {
				w.leaderAddr = net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
			}
			wants = append(wants, w)
		}
	})
	ok := true

	// The partitions to follow. Those whose assignment changes, or that are
	// about to be led here or removed, stop being fetched before the
	// engine's partitions change (Kafka removes a fetcher before makeLeader):
	// no old leader's batch may land on a new leader. The rest are fetched
	// once moved to their epoch as followers, below.
	var follow []replica.Assignment
	next := make(map[replica.Assignment]bool)
	for _, w := range wants {
		if w.leader != self && w.leader >= 0 && w.leaderAddr != "" {
			a := replica.Assignment{Topic: w.info.Name, TopicID: w.info.ID, Partition: w.partition,
				Leader: w.leader, LeaderAddr: w.leaderAddr, LeaderEpoch: w.epoch, UncleanEpoch: w.meta.UncleanEpoch}
			follow = append(follow, a)
			next[a] = true
		}
	}
	keep := slices.DeleteFunc(slices.Clone(*following), func(a replica.Assignment) bool { return !next[a] })
	if len(keep) != len(*following) {
		b.fetchers.Set(keep)
	}
	defer func() {
		b.fetchers.Set(follow)
		*following = follow
	}()

	// Stop what the metadata no longer assigns here, or assigns under
	// another topic id (the topic was deleted and created again), first:
	// the engine hosts one topic of a name at a time.
	want := make(map[hostKey]engine.TopicID, len(wants))
	for _, w := range wants {
		want[hostKey{w.info.Name, w.partition}] = w.info.ID
	}
	for k, h := range hosted {
		if id, still := want[k]; still && id == h.id {
			continue
		}
		b.isr.drop(k)
		if k.topic == engine.ConsumerOffsetsTopic && h.groupsEpoch >= 0 {
			b.groups.UnloadPartition(k.partition)
		}
		// Delete the data: the topic is gone or the replica moved away
		// (the metadata only moves forward, and hosting began once the
		// copy had caught up, so this is not an old copy's view).
		if err := b.eng.StopHosting(k.topic, k.partition, true); err != nil && !errors.Is(err, engine.ErrUnknownTopic) && !errors.Is(err, engine.ErrUnknownPartition) {
			b.log.Error("broker: cannot remove a partition the cluster no longer assigns here", "topic", k.topic, "partition", k.partition, "err", err)
			ok = false
			continue
		}
		b.log.Info("broker: stopped hosting partition", "topic", k.topic, "partition", k.partition)
		delete(hosted, k)
	}

	for _, w := range wants {
		k := hostKey{w.info.Name, w.partition}
		h := hosted[k]
		if h != nil && h.epoch == w.epoch && h.leader == (w.leader == self) {
			if h.leader {
				b.isr.lead(k, h.p, w.meta, w.topic) // the ISR may have changed
			}
			ok = b.groupLeadership(k, h, w) && ok
			continue
		}
		p, err := b.eng.HostPartition(w.info, w.partition)
		if err != nil {
			b.log.Error("broker: cannot host partition", "topic", k.topic, "partition", k.partition, "err", err)
			ok = false
			continue
		}
		if h == nil {
			h = &hostedPart{id: w.info.ID, epoch: -1, groupsEpoch: -1}
			hosted[k] = h
		}
		h.p = p
		lead := w.leader == self
		switch {
		case lead && (p.IsFollower() || p.LeaderEpoch() < w.epoch):
			err = p.BecomeLeader(w.epoch)
		case !lead && (!p.IsFollower() || p.LeaderEpoch() < w.epoch):
			err = p.BecomeFollower(w.epoch)
		}
		if err != nil {
			b.log.Error("broker: cannot move partition to its leader epoch", "topic", k.topic, "partition", k.partition, "leader", w.leader, "epoch", w.epoch, "err", err)
			ok = false
			continue
		}
		if h.epoch != w.epoch || h.leader != lead {
			b.log.Info("broker: partition role", "topic", k.topic, "partition", k.partition, "leader", lead, "epoch", w.epoch)
		}
		h.epoch, h.leader = w.epoch, lead
		if lead {
			b.isr.lead(k, p, w.meta, w.topic)
		} else {
			b.isr.drop(k)
		}
		ok = b.groupLeadership(k, h, w) && ok
	}

	// Committed offsets of deleted topics go too, on whichever broker
	// coordinates their groups (not only where the topic was hosted).
	for name, id := range topics {
		if now[name] == id {
			continue
		}
		if err := b.groups.DeleteTopicOffsets(name); err != nil {
			b.log.Warn("broker: cannot delete the committed offsets of a deleted topic", "topic", name, "err", err)
		}
		delete(topics, name)
	}
	for name, id := range now {
		topics[name] = id
	}
	return ok
}

// applySettings hands each hosted topic's settings to the engine when they
// changed (AlterConfigs of the topic, or of a dynamic broker default): its
// open partitions follow them from their next append, roll, flush and
// retention pass (engine.SetTopicConfig). settings holds what each topic
// was last set to. It reports false when a change could not be applied.
func (b *Broker) applySettings(hosted map[hostKey]*hostedPart, settings map[string]engine.TopicConfig) bool {
	want := make(map[string]engine.TopicConfig)
	b.node.View(func(s *cluster.State) {
		for k := range hosted {
			if _, done := want[k.topic]; done {
				continue
			}
			if t := s.Topic(k.topic); t != nil {
				want[k.topic] = b.topicInfo(s, t).Config
			}
		}
	})
	ok := true
	for name, cfg := range want {
		if cur, seen := settings[name]; seen && cur == cfg {
			continue
		}
		if err := b.eng.SetTopicConfig(name, cfg); err != nil {
			b.log.Error("broker: cannot apply a topic's settings", "topic", name, "err", err)
			ok = false
			continue
		}
		if _, seen := settings[name]; seen {
			b.log.Info("broker: applied changed topic settings", "topic", name)
		}
		settings[name] = cfg
	}
	for name := range settings {
		if _, still := want[name]; !still {
			delete(settings, name)
		}
	}
	return ok
}

// groupLeadership loads the groups of a __consumer_offsets partition this
// broker leads and unloads them where it does not. A partition led here in
// a newer epoch than the one its groups were loaded in is loaded again:
// another leader may have written in between. It reports false when a load
// failed.
func (b *Broker) groupLeadership(k hostKey, h *hostedPart, w wantPart) bool {
	if k.topic != engine.ConsumerOffsetsTopic {
		return true
	}
	lead := w.leader == b.cfg.NodeID
	if h.groupsEpoch >= 0 && (!lead || h.groupsEpoch != w.epoch) {
		b.groups.UnloadPartition(k.partition)
		h.groupsEpoch = -1
	}
	if lead && h.groupsEpoch < 0 {
		if err := b.groups.LoadPartition(k.partition); err != nil {
			b.log.Error("broker: cannot load consumer groups", "partition", k.partition, "err", err)
			return false
		}
		h.groupsEpoch = w.epoch
	}
	return true
}

// topicInfo is the engine's description of a topic of the metadata s: its
// name, id, partition count and storage settings: the topic's own over the
// dynamic broker defaults that apply here (see configs.go; the engine's
// Options.Defaults fill the rest). The controller's own settings, such as
// min.insync.replicas, are not the engine's.
func (b *Broker) topicInfo(s *cluster.State, t *cluster.Topic) engine.TopicInfo {
	info := engine.TopicInfo{
		Name:     t.Name,
		ID:       t.ID,
		Internal: t.Name == engine.ConsumerOffsetsTopic,
	}
	info.Config.Partitions = t.Partitions
	for _, c := range append(b.dynamicDefaults(s), t.Configs...) {
		switch c.Name {
		case cluster.ConfigUncleanLeaderElection, cluster.ConfigMinInsyncReplicas:
			continue
		}
		// The controller validated every config before committing the
		// topic; one this broker does not know came from a newer broker.
		if err := info.Config.Set(c.Name, c.Value); err != nil {
			b.log.Warn("broker: topic config unknown to this broker; the default applies", "topic", t.Name, "config", c.Name, "err", err)
		}
	}
	return info
}

// waitHosted waits, until ctx ends, for this broker to serve as leader every
// partition of topic that the metadata says it leads: CreateTopics and
// CreatePartitions answer then, so that a client's next Metadata here names
// a leader that takes its writes (a single node, or the controller broker,
// reads its own writes). Partitions led by other brokers are theirs to
// host. A ctx that ends first is not an error: the topic is created.
func (b *Broker) waitHosted(ctx context.Context, topic string) {
	for {
		b.passed.Lock()
		ch := b.passed.ch
		b.passed.Unlock()
		done := true
		b.node.View(func(s *cluster.State) {
			t := s.Topic(topic)
			if t == nil {
				return
			}
			for _, p := range s.Partitions(t.ID) {
				if p.Leader == b.cfg.NodeID && !b.servesAsLeader(topic, p) {
					done = false
					return
				}
			}
		})
		if done {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-b.closed:
			return
		}
	}
}
