package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(3, 0, 9, (*Broker).handleMetadata, smallBody) }

// handleMetadata serves Metadata v0–9. On a single node this node is the
// only broker, the controller, and the leader and only replica of every
// partition, with the partition's leader epoch (0 unless the replica layer
// moved it); in a cluster the answer is the node's copy of the metadata
// (clusterMetadata). Unknown topics are created when
// Config.AutoCreateTopics is set and, from v4, the request allows it.
func (b *Broker) handleMetadata(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrMetadataRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	if b.node != nil {
		return netio.Response{Msg: b.clusterMetadata(ctx, req, r)}
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(req.APIVersion)
	host, port := b.advertised(req)
	node := b.cfg.NodeID
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: node, Host: host, Port: port}}
	resp.ClusterID = &b.clusterID
	resp.ControllerID = node

	// v0: an empty list means every topic; v1+: null means every topic and
	// empty means none.
	all := r.Topics == nil || (req.APIVersion == 0 && len(r.Topics) == 0)
	if all {
		infos := b.eng.Topics()
		resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(infos))
		for _, info := range infos {
			resp.Topics = append(resp.Topics, b.topicMetadata(info.Name, info, nil))
		}
		return netio.Response{Msg: resp}
	}

	autoCreate := b.cfg.AutoCreateTopics && (req.APIVersion < 4 || r.AllowAutoTopicCreation)
	seen := make(map[string]struct{}, len(r.Topics))
	resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(r.Topics))
	for _, t := range r.Topics {
		if t.Topic == nil {
			continue // only v10+ may ask by topic id, which we do not serve
		}
		name := *t.Topic
		if _, dup := seen[name]; dup {
			continue
		}
		seen[name] = struct{}{}
		info, err := b.metadataTopic(name, autoCreate)
		if err != nil {
			b.rejected(req, "metadata topic", err, "topic", name)
		}
		resp.Topics = append(resp.Topics, b.topicMetadata(name, info, err))
	}
	return netio.Response{Msg: resp}
}

// metadataTopic looks a topic up, creating it if it is unknown and
// autoCreate is set.
func (b *Broker) metadataTopic(name string, autoCreate bool) (engine.TopicInfo, error) {
	info, err := b.eng.Topic(name)
	if err == nil || !errors.Is(err, engine.ErrUnknownTopic) {
		return info, err
	}
	if verr := engine.ValidateTopicName(name); verr != nil {
		return info, verr
	}
	if !autoCreate {
		return info, err
	}
	name = strings.Clone(name) // the engine keeps it
	cerr := b.eng.CreateTopic(name, engine.TopicConfig{Partitions: b.cfg.NumPartitions})
	switch {
	case cerr == nil:
		b.log.Info("broker: auto-created topic", "topic", name, "partitions", b.cfg.NumPartitions)
	case !errors.Is(cerr, engine.ErrTopicExists): // a concurrent request won the race
		return info, cerr
	}
	return b.eng.Topic(name)
}

// topicMetadata describes one topic, or the error that stands in for it.
func (b *Broker) topicMetadata(name string, info engine.TopicInfo, err error) kmsg.MetadataResponseTopic {
	t := kmsg.NewMetadataResponseTopic()
	t.Topic = &name
	if err != nil {
		t.ErrorCode = errorCode(err)
		return t
	}
	t.IsInternal = info.Internal
	node := []int32{b.cfg.NodeID} // shared by every partition: encoding only reads it
	t.Partitions = make([]kmsg.MetadataResponseTopicPartition, info.Config.Partitions)
	for i := range t.Partitions {
		mp := &t.Partitions[i]
		mp.Partition = int32(i)
		mp.Leader = b.cfg.NodeID
		mp.LeaderEpoch = 0
		if p, err := b.eng.Partition(name, int32(i)); err == nil {
			// Clients send it back as current_leader_epoch (Fetch,
			// ListOffsets, OffsetForLeaderEpoch).
			mp.LeaderEpoch = p.LeaderEpoch()
		}
		mp.Replicas = node
		mp.ISR = node
	}
	return t
}

// clusterMetadata answers Metadata from the node's copy of the metadata:
// the live (unfenced) brokers with their racks, the controller, and each
// partition's leader (-1 and LEADER_NOT_AVAILABLE when it is offline),
// leader epoch, replicas, ISR and offline replicas. Topics to auto-create
// are created through the controller and answered LEADER_NOT_AVAILABLE,
// which clients retry, as Kafka does.
func (b *Broker) clusterMetadata(ctx context.Context, req *netio.Request, r *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(req.APIVersion)
	resp.ControllerID = b.node.Controller()
	all := r.Topics == nil || (req.APIVersion == 0 && len(r.Topics) == 0)
	autoCreate := b.cfg.AutoCreateTopics && (req.APIVersion < 4 || r.AllowAutoTopicCreation)
	var create []int // indexes in resp.Topics of topics to create
	b.node.View(func(s *cluster.State) {
		id := s.ClusterID()
		resp.ClusterID = &id
		for _, br := range s.LiveBrokers() {
			mb := kmsg.MetadataResponseBroker{NodeID: br.ID, Host: br.Host, Port: br.Port}
			if br.Rack != "" {
				mb.Rack = &br.Rack
			}
			resp.Brokers = append(resp.Brokers, mb)
		}
		if all {
			ts := s.Topics()
			resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(ts))
			for _, t := range ts {
				resp.Topics = append(resp.Topics, b.clusterTopicMetadata(s, t))
			}
			return
		}
		seen := make(map[string]struct{}, len(r.Topics))
		resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(r.Topics))
		for _, rt := range r.Topics {
			if rt.Topic == nil {
				continue // only v10+ may ask by topic id, which we do not serve
			}
			name := *rt.Topic
			if _, dup := seen[name]; dup {
				continue
			}
			seen[name] = struct{}{}
			if t := s.Topic(name); t != nil {
				resp.Topics = append(resp.Topics, b.clusterTopicMetadata(s, t))
				continue
			}
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			err := engine.ValidateTopicName(name)
			switch {
			case err != nil:
			case autoCreate:
				create = append(create, len(resp.Topics))
				err = errLeaderNotAvailable
			default:
				err = fmt.Errorf("%w: %q", engine.ErrUnknownTopic, name)
			}
			mt.ErrorCode = errorCode(err)
			resp.Topics = append(resp.Topics, mt)
		}
	})
	if len(create) > 0 {
		cr := kmsg.NewPtrCreateTopicsRequest()
		cr.TimeoutMillis = int32(clusterRequestTimeout / time.Millisecond)
		for _, i := range create {
			t := kmsg.NewCreateTopicsRequestTopic()
			t.Topic = *resp.Topics[i].Topic
			t.NumPartitions, t.ReplicationFactor = -1, -1
			cr.Topics = append(cr.Topics, t)
		}
		cctx, cancel := context.WithTimeout(ctx, clusterRequestTimeout)
		defer cancel()
		cresp := b.createTopicsInCluster(cctx, cr)
		for j, ct := range cresp.Topics {
			if j >= len(create) {
				break
			}
			if code := ct.ErrorCode; code != 0 && code != kerr.TopicAlreadyExists.Code {
				resp.Topics[create[j]].ErrorCode = code
				b.log.Info("broker: cannot auto-create topic", append(reqAttrs(req), "topic", ct.Topic, "code", code)...)
			} else if code == 0 {
				b.log.Info("broker: auto-created topic", "topic", ct.Topic)
			}
		}
	}
	return resp
}

// clusterTopicMetadata describes one topic of the metadata. A partition
// the metadata says this broker leads is reported without a leader
// (LEADER_NOT_AVAILABLE, which clients retry) until this broker serves it
// as leader in that epoch, as a Kafka broker answers from the metadata it
// has applied: clients are never sent here for a partition this broker
// would answer NOT_LEADER_OR_FOLLOWER.
func (b *Broker) clusterTopicMetadata(s *cluster.State, t *cluster.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = &t.Name
	mt.IsInternal = t.Name == engine.ConsumerOffsetsTopic
	ps := s.Partitions(t.ID)
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, len(ps))
	for i, p := range ps {
		mp := &mt.Partitions[i]
		*mp = kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = p.Replicas // read only by the encoder
		mp.ISR = p.ISR
		mp.OfflineReplicas = s.OfflineReplicas(p)
		if p.Leader == b.cfg.NodeID && !b.servesAsLeader(t.Name, p) {
			mp.Leader = cluster.NoLeader
		}
		if mp.Leader == cluster.NoLeader {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
	}
	return mt
}
