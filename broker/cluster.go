package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

// In a cluster (Config.Cluster set) the broker answers from its node's copy
// of the metadata log and serves only what that copy gives it:
//
//   - Metadata, DescribeCluster and FindCoordinator name the brokers, leaders
//     and epochs of the copy;
//   - Produce, Fetch, ListOffsets, OffsetForLeaderEpoch and DeleteRecords
//     for a partition it does not lead get NOT_LEADER_OR_FOLLOWER, and so do
//     all of them until the node is caught up and unfenced (Ready): a
//     restarted broker must not act on leaderships the cluster has moved;
//   - CreateTopics, DeleteTopics and CreatePartitions are decided by the
//     controller: on the controller broker through its node, elsewhere
//     forwarded to it (hosting.go and the API files);
//   - hosting.go keeps the engine's partitions in line with the copy: the
//     partitions whose replicas name this broker are hosted, as leader or
//     follower in the copy's leader epoch, and the group coordinator loads
//     the __consumer_offsets partitions this broker leads.

// clusterRequestTimeout bounds a request to the controller made for a
// client request that has no timeout of its own (InitProducerId, an
// auto-create).
const clusterRequestTimeout = 10 * time.Second

// hostedWait bounds how long CreateTopics and CreatePartitions wait for
// this broker to host the new partitions it leads (waitHosted).
const hostedWait = 5 * time.Second

// errNotLeader is a partition request at a broker that does not lead the
// partition in its copy of the metadata (NOT_LEADER_OR_FOLLOWER).
var errNotLeader = fmt.Errorf("broker: not the partition's leader: %w", engine.ErrNotLeader)

// leaderIn returns the leader of topic/partition in the node's copy of the
// metadata, and whether the copy has the partition at all.
func (b *Broker) leaderIn(topic string, partition int32) (leader int32, known bool) {
	leader = cluster.NoLeader
	b.node.View(func(s *cluster.State) {
		if p := s.Partition(topic, partition); p != nil {
			leader, known = p.Leader, true
		}
	})
	return leader, known
}

// localPartition returns the engine's partition for a request that needs a
// replica here: in a cluster, one the copy of the metadata assigns to this
// broker and, with requireLeader, one this broker leads and is ready to
// serve.
func (b *Broker) localPartition(topic string, partition int32, requireLeader bool) (*engine.Partition, error) {
	if b.node == nil {
		return b.eng.Partition(topic, partition)
	}
	leader, known := b.leaderIn(topic, partition)
	if !known {
		if err := engine.ValidateTopicName(topic); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s/%d", engine.ErrUnknownTopic, topic, partition)
	}
	if requireLeader {
		switch {
		case leader != b.cfg.NodeID:
			return nil, fmt.Errorf("%w: %s/%d is led by %d", errNotLeader, topic, partition, leader)
		case !b.ready():
			return nil, fmt.Errorf("%w: %s/%d: this broker is not caught up on the metadata yet", errNotLeader, topic, partition)
		}
	}
	p, err := b.eng.Partition(topic, partition)
	if errors.Is(err, engine.ErrUnknownTopic) || errors.Is(err, engine.ErrUnknownPartition) {
		// Assigned here but not hosted yet: hosting follows the metadata
		// a moment later. Retriable.
		return nil, fmt.Errorf("%w: %s/%d is not hosted here yet", errNotLeader, topic, partition)
	}
	return p, err
}

// topic describes a topic: the engine's own on a single node, the
// metadata's in a cluster (whether or not this broker hosts it).
func (b *Broker) topic(name string) (engine.TopicInfo, error) {
	if b.node == nil {
		return b.eng.Topic(name)
	}
	var (
		info  engine.TopicInfo
		found bool
	)
	b.node.View(func(s *cluster.State) {
		if t := s.Topic(name); t != nil {
			info, found = b.topicInfo(s, t), true
		}
	})
	if !found {
		return info, fmt.Errorf("%w: %q", engine.ErrUnknownTopic, name)
	}
	return info, nil
}

// servesAsLeader reports whether this broker is ready to lead partition p
// of the metadata: caught up, and hosting it as leader in p's epoch.
func (b *Broker) servesAsLeader(topic string, p *cluster.Partition) bool {
	if !b.ready() {
		return false
	}
	ep, err := b.eng.Partition(topic, p.Index)
	return err == nil && !ep.IsFollower() && ep.LeaderEpoch() >= p.LeaderEpoch
}

// ready reports whether the cluster node has caught up on the metadata log
// and is unfenced, so that its copy's leaderships are current.
func (b *Broker) ready() bool {
	select {
	case <-b.node.Ready():
		return true
	default:
		return false
	}
}

// offsetsReplicationFactor is offsets.topic.replication.factor's default
// (Kafka's 3), lowered to the live brokers when there are fewer.
const offsetsReplicationFactor = 3

// locateCoordinator is the group coordinator's Locate in a cluster: the
// leader of the group's __consumer_offsets partition and its advertised
// address. A missing topic is created through the controller (in the
// background; the client retries COORDINATOR_NOT_AVAILABLE meanwhile), as
// Kafka creates it on the first FindCoordinator.
func (b *Broker) locateCoordinator(_ context.Context, partition int32) (int32, string, int32, error) {
	var (
		exists     bool
		partitions int32
		leader     = cluster.NoLeader
		host       string
		port       int32
		live       int
	)
	b.node.View(func(s *cluster.State) {
		live = len(s.LiveBrokers())
		t := s.Topic(engine.ConsumerOffsetsTopic)
		if t == nil {
			return
		}
		exists, partitions = true, t.Partitions
		if p := s.Partition(t.Name, partition); p != nil {
			leader = p.Leader
		}
		if br := s.Broker(leader); br != nil && !br.Fenced {
			host, port = br.Host, br.Port
		}
	})
	switch {
	case !exists:
		b.createOffsetsTopic(min(live, offsetsReplicationFactor))
		return 0, "", 0, fmt.Errorf("broker: %s is being created", engine.ConsumerOffsetsTopic)
	case partitions != b.groups.Partitions():
		err := fmt.Errorf("broker: %s has %d partitions in the cluster but this broker is configured with %d (offsets.topic.num.partitions must be the same on every broker)",
			engine.ConsumerOffsetsTopic, partitions, b.groups.Partitions())
		b.log.Error("broker: cannot coordinate consumer groups", "err", err)
		return 0, "", 0, err
	case leader < 0 || host == "":
		return 0, "", 0, fmt.Errorf("broker: %s/%d has no leader", engine.ConsumerOffsetsTopic, partition)
	}
	return leader, host, port, nil
}

// createOffsetsTopic asks the controller to create __consumer_offsets,
// unless a request is already on its way.
func (b *Broker) createOffsetsTopic(rf int) {
	if rf < 1 || !b.creatingOffsets.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.creatingOffsets.Store(false)
		r := kmsg.NewPtrCreateTopicsRequest()
		r.TimeoutMillis = 30000
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = engine.ConsumerOffsetsTopic
		t.NumPartitions = b.groups.Partitions()
		t.ReplicationFactor = int16(rf)
		for _, c := range [...]string{"retention.ms", "retention.bytes"} {
			v := "-1" // offsets are kept until their groups expire
			t.Configs = append(t.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: c, Value: &v})
		}
		t.Configs = append(t.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: "cleanup.policy", Value: kmsg.StringPtr(engine.CleanupCompact)}) // as in Kafka
		r.Topics = append(r.Topics, t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp := b.createTopicsInCluster(ctx, r)
		for _, rt := range resp.Topics {
			if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				b.log.Warn("broker: cannot create "+engine.ConsumerOffsetsTopic+"; clients will retry", "err", err)
			} else {
				b.log.Info("broker: created "+engine.ConsumerOffsetsTopic, "partitions", t.NumPartitions, "replication_factor", rf)
			}
		}
	}()
}
