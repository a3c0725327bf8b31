package broker

import (
	"context"
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(3, 0, 9, (*Broker).handleMetadata, smallBody) }

// handleMetadata serves Metadata v0–9. This node is the only broker, the
// controller, and the leader and only replica of every partition, with the
// partition's leader epoch (0 unless the replica layer moved it). Unknown topics are created when Config.AutoCreateTopics is set
// and, from v4, the request allows it.
func (b *Broker) handleMetadata(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrMetadataRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
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
