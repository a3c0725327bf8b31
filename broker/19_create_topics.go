package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(19, 0, 5, (*Broker).handleCreateTopics, smallBody) }

// maxPartitions is the most partitions a topic may have (the engine's limit).
const maxPartitions = 100000

// handleCreateTopics serves CreateTopics v0–5. On a single node the
// replication factor must be 1 or -1 (one broker) and a replica assignment
// may only name this node; creation is synchronous, so the timeout is not
// used. In a cluster the controller places and commits each topic
// (createTopicsInCluster), within the timeout. Configs are the topic
// settings the engine knows (see engine.TopicConfig.Set), and in a cluster
// also min.insync.replicas and unclean.leader.election.enable; others are
// INVALID_CONFIG.
func (b *Broker) handleCreateTopics(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrCreateTopicsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	if b.node != nil {
		ctx, cancel := requestTimeout(ctx, r.TimeoutMillis)
		defer cancel()
		resp := b.createTopicsInCluster(ctx, r)
		resp.SetVersion(req.APIVersion)
		for _, rt := range resp.Topics {
			if rt.ErrorCode != 0 {
				b.rejected(req, "create topic", kerr.ErrorForCode(rt.ErrorCode), "topic", rt.Topic)
			}
		}
		return netio.Response{Msg: resp}
	}
	count := make(map[string]int, len(r.Topics))
	for i := range r.Topics {
		count[r.Topics[i].Topic]++
	}
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.SetVersion(req.APIVersion)
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, 0, len(r.Topics))
	for i := range r.Topics {
		t := &r.Topics[i]
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		var (
			cfg engine.TopicConfig
			err error
		)
		if count[t.Topic] > 1 {
			err = fmt.Errorf("%w: topic %q is listed more than once", errInvalidRequest, t.Topic)
		} else {
			cfg, err = b.createTopic(t, r.ValidateOnly)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			rt.ErrorMessage = errorMessage(err)
			b.rejected(req, "create topic", err, "topic", t.Topic)
		} else {
			rt.NumPartitions = cfg.Partitions
			rt.ReplicationFactor = 1
			rt.Configs = createdConfigs(describeTopic(nil, engineTopic(engine.TopicInfo{Name: t.Topic, Config: cfg}), b.cfg.NodeID, b.staticDefaults()))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return netio.Response{Msg: resp}
}

// createTopic validates one topic of the request and, unless validateOnly,
// creates it. It returns the topic's settings.
func (b *Broker) createTopic(t *kmsg.CreateTopicsRequestTopic, validateOnly bool) (engine.TopicConfig, error) {
	var cfg engine.TopicConfig
	if err := engine.ValidateTopicName(t.Topic); err != nil {
		return cfg, err
	}
	n, err := b.partitionCount(t)
	if err != nil {
		return cfg, err
	}
	cfg.Partitions = n
	// check is cfg with the defaults filled in, as the engine will see it.
	check := engine.DefaultTopicConfig()
	check.Partitions = n
	for _, c := range t.Configs {
		if c.Value == nil {
			continue // null: the default
		}
		if err := cfg.Set(c.Name, *c.Value); err != nil {
			return cfg, err
		}
		check.Set(c.Name, *c.Value)
	}
	if err := check.Validate(); err != nil {
		return cfg, err
	}
	if validateOnly {
		if _, err := b.eng.Topic(t.Topic); err == nil {
			return cfg, fmt.Errorf("%w: %q", engine.ErrTopicExists, t.Topic)
		}
		return check, nil
	}
	if err := b.eng.CreateTopic(t.Topic, cfg); err != nil {
		return cfg, err
	}
	info, err := b.eng.Topic(t.Topic)
	if err != nil { // deleted at once by another request
		return cfg, err
	}
	b.log.Info("broker: created topic", "topic", t.Topic, "partitions", n)
	return info.Config, nil
}

// partitionCount checks the partition count, replication factor and
// replica assignment of a topic to create and returns how many partitions
// it gets.
func (b *Broker) partitionCount(t *kmsg.CreateTopicsRequestTopic) (int32, error) {
	if len(t.ReplicaAssignment) > 0 {
		if t.NumPartitions != -1 || t.ReplicationFactor != -1 {
			return 0, fmt.Errorf("%w: a replica assignment needs num_partitions and replication_factor -1", errInvalidRequest)
		}
		n := len(t.ReplicaAssignment)
		if n > maxPartitions {
			return 0, fmt.Errorf("%w: %d partitions > %d", errPartitions, n, maxPartitions)
		}
		seen := make([]bool, n)
		for _, a := range t.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= n || seen[a.Partition] {
				return 0, fmt.Errorf("%w: partitions must be 0..%d, each once", errAssignment, n-1)
			}
			seen[a.Partition] = true
			if len(a.Replicas) != 1 || a.Replicas[0] != b.cfg.NodeID {
				return 0, fmt.Errorf("%w: partition %d: replicas must be [%d], the only broker", errAssignment, a.Partition, b.cfg.NodeID)
			}
		}
		return int32(n), nil
	}
	n := t.NumPartitions
	if n == -1 {
		n = b.cfg.NumPartitions
	}
	if n < 1 || n > maxPartitions {
		return 0, fmt.Errorf("%w: %d not in 1..%d", errPartitions, t.NumPartitions, maxPartitions)
	}
	if rf := t.ReplicationFactor; rf != -1 && rf != 1 {
		return 0, fmt.Errorf("%w: %d; this cluster has one broker", errReplication, rf)
	}
	return n, nil
}

// createTopicsInCluster has the controller create the request's topics:
// through the node on the controller broker, else forwarded to it (whose
// answer is returned as is). It never fails as a whole: each topic gets its
// error code.
func (b *Broker) createTopicsInCluster(ctx context.Context, r *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	if !b.node.IsController() {
		resp, err := b.node.Forward(ctx, r)
		if err == nil {
			if cr, ok := resp.(*kmsg.CreateTopicsResponse); ok {
				return cr
			}
			err = fmt.Errorf("unexpected response %T", resp)
		}
		return createTopicsFailed(r, fmt.Errorf("%w: %v", errNoController, err))
	}
	count := make(map[string]int, len(r.Topics))
	for i := range r.Topics {
		count[r.Topics[i].Topic]++
	}
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, 0, len(r.Topics))
	for i := range r.Topics {
		t := &r.Topics[i]
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		var err error
		if count[t.Topic] > 1 {
			err = fmt.Errorf("%w: topic %q is listed more than once", errInvalidRequest, t.Topic)
		} else {
			err = b.createClusterTopic(ctx, t, r.ValidateOnly)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			rt.ErrorMessage = errorMessage(err)
		} else if !r.ValidateOnly {
			b.log.Info("broker: created topic", "topic", t.Topic)
			hctx, cancel := context.WithTimeout(ctx, hostedWait)
			b.waitHosted(hctx, t.Topic)
			cancel()
			b.node.View(func(s *cluster.State) {
				ct := s.Topic(t.Topic)
				if ct == nil {
					return // deleted at once by another request
				}
				rt.NumPartitions = ct.Partitions
				if p := s.Partition(ct.Name, 0); p != nil {
					rt.ReplicationFactor = int16(len(p.Replicas))
				}
				rt.Configs = createdConfigs(describeTopic(s, ct, b.cfg.NodeID, b.staticDefaults()))
			})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createClusterTopic turns one topic of a CreateTopics request into the
// controller's request and has it decided: committed, or with validateOnly
// only checked against the node's copy of the metadata.
func (b *Broker) createClusterTopic(ctx context.Context, t *kmsg.CreateTopicsRequestTopic, validateOnly bool) error {
	req := cluster.CreateTopicRequest{
		Name:              t.Topic,
		ID:                engine.NewTopicID(),
		Partitions:        t.NumPartitions,
		ReplicationFactor: t.ReplicationFactor,
	}
	if len(t.ReplicaAssignment) > 0 {
		n := len(t.ReplicaAssignment)
		if n > maxPartitions {
			return fmt.Errorf("%w: %d partitions > %d", errPartitions, n, maxPartitions)
		}
		req.Assignment = make([][]int32, n)
		for _, a := range t.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= n || req.Assignment[a.Partition] != nil {
				return fmt.Errorf("%w: partitions must be 0..%d, each once", errAssignment, n-1)
			}
			req.Assignment[a.Partition] = a.Replicas
		}
	}
	for _, c := range t.Configs {
		if c.Value == nil {
			continue // null: the default
		}
		req.Configs = append(req.Configs, cluster.Config{Name: c.Name, Value: *c.Value})
	}
	if validateOnly {
		var err error
		b.node.View(func(s *cluster.State) { _, err = b.node.Policy().CreateTopic(s, req) })
		return err
	}
	return b.node.CreateTopic(ctx, req)
}

// createdConfigs renders a new topic's settings for CreateTopics v5+.
func createdConfigs(ds []describedConfig) []kmsg.CreateTopicsResponseTopicConfig {
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(ds))
	for _, d := range ds {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value = d.name, &d.values[0].value
		c.Source = int8(d.values[0].source)
		c.ReadOnly = d.readOnly
		out = append(out, c)
	}
	return out
}

// createTopicsFailed answers every topic of r with err.
func createTopicsFailed(r *kmsg.CreateTopicsRequest, err error) *kmsg.CreateTopicsResponse {
	resp := kmsg.NewPtrCreateTopicsResponse()
	for _, t := range r.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.ErrorCode = errorCode(err)
		rt.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// requestTimeout bounds ctx by a request's timeout_ms (none when it is not
// positive).
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	if ms <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
}
