package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(19, 0, 5, (*Broker).handleCreateTopics, smallBody) }

// maxPartitions is the most partitions a topic may have (the engine's limit).
const maxPartitions = 100000

// handleCreateTopics serves CreateTopics v0–5. The replication factor must
// be 1 or -1 (one broker); a replica assignment may only name this node.
// Configs are the topic settings the engine knows (see
// engine.TopicConfig.Set); others are INVALID_CONFIG. Creation is
// synchronous, so the timeout is not used.
func (b *Broker) handleCreateTopics(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrCreateTopicsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
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
			set map[string]bool
			err error
		)
		if count[t.Topic] > 1 {
			err = fmt.Errorf("%w: topic %q is listed more than once", errInvalidRequest, t.Topic)
		} else {
			cfg, set, err = b.createTopic(t, r.ValidateOnly)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			rt.ErrorMessage = errorMessage(err)
			b.rejected(req, "create topic", err, "topic", t.Topic)
		} else {
			rt.NumPartitions = cfg.Partitions
			rt.ReplicationFactor = 1
			for _, e := range cfg.Entries() {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name = e.Name
				c.Value = &e.Value
				c.Source = int8(kmsg.ConfigSourceDefaultConfig)
				if set[e.Name] {
					c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
				}
				rt.Configs = append(rt.Configs, c)
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return netio.Response{Msg: resp}
}

// createTopic validates one topic of the request and, unless validateOnly,
// creates it. It returns the topic's settings and which were given.
func (b *Broker) createTopic(t *kmsg.CreateTopicsRequestTopic, validateOnly bool) (engine.TopicConfig, map[string]bool, error) {
	var cfg engine.TopicConfig
	if err := engine.ValidateTopicName(t.Topic); err != nil {
		return cfg, nil, err
	}
	n, err := b.partitionCount(t)
	if err != nil {
		return cfg, nil, err
	}
	cfg.Partitions = n
	// check is cfg with the defaults filled in, as the engine will see it.
	check := engine.DefaultTopicConfig()
	check.Partitions = n
	set := make(map[string]bool, len(t.Configs))
	for _, c := range t.Configs {
		if c.Value == nil {
			continue // null: the default
		}
		if err := cfg.Set(c.Name, *c.Value); err != nil {
			return cfg, nil, err
		}
		if v, perr := strconv.ParseInt(strings.TrimSpace(*c.Value), 10, 64); perr == nil && v == 0 {
			// The engine reads a zero setting as "use the default", which
			// is not what Kafka means by 0; refuse rather than surprise.
			return cfg, nil, fmt.Errorf("%w: %s=0 is not supported", engine.ErrInvalidConfig, c.Name)
		}
		check.Set(c.Name, *c.Value)
		set[c.Name] = true
	}
	if err := check.Validate(); err != nil {
		return cfg, nil, err
	}
	if validateOnly {
		if _, err := b.eng.Topic(t.Topic); err == nil {
			return cfg, nil, fmt.Errorf("%w: %q", engine.ErrTopicExists, t.Topic)
		}
		return check, set, nil
	}
	if err := b.eng.CreateTopic(t.Topic, cfg); err != nil {
		return cfg, nil, err
	}
	info, err := b.eng.Topic(t.Topic)
	if err != nil { // deleted at once by another request
		return cfg, nil, err
	}
	b.log.Info("broker: created topic", "topic", t.Topic, "partitions", n)
	return info.Config, set, nil
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
