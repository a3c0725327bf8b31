package cluster

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/easel-io/easel/engine"
)

// Topic configs the controller itself reads or checks; every other name is
// a storage setting the engine checks (engine.TopicConfig.Set).
const (
	// ConfigUncleanLeaderElection is unclean.leader.election.enable: "true"
	// lets a partition whose ISR is all gone elect a replica outside the ISR,
	// losing committed records, rather than stay offline.
	ConfigUncleanLeaderElection = "unclean.leader.election.enable"
	// ConfigMinInsyncReplicas is min.insync.replicas, which the replica
	// layer enforces on acks=all produce.
	ConfigMinInsyncReplicas = "min.insync.replicas"
)

// Policy holds the controller's settings. Its methods are the controller's
// decisions: pure functions of a State (never changed) and an event,
// returning the records to commit as one entry, or an error and no records.
// The zero Policy is Kafka's defaults.
//
// A decision is made on the state its records will apply to: the driver
// commits one decision's records before making the next decision (as
// Consul's leader loop does), or the records may no longer apply (State.Apply
// then rejects them, changing nothing, and the decision is made again).
// Decisions only read the state: with an FSM, make them inside FSM.View.
type Policy struct {
	// DefaultPartitions is num.partitions, for a topic created with -1
	// partitions. Default 1.
	DefaultPartitions int32
	// DefaultReplicationFactor is default.replication.factor, for a topic
	// created with replication factor -1. Default 1 (Kafka's); 3 is what a
	// cluster of three or more usually wants.
	DefaultReplicationFactor int16
	// UncleanLeaderElection is the cluster's unclean.leader.election.enable,
	// for topics that do not set it. Default false: a partition whose ISR is
	// all gone stays offline until an ISR member returns, rather than lose
	// committed records.
	UncleanLeaderElection bool
	// ProducerIDBlockSize is the number of producer ids a broker gets at a
	// time (KIP-730). Default 1000 (Kafka's).
	ProducerIDBlockSize int64
	// ValidateConfigs checks a new topic's configs (sorted by name, no name
	// twice). Default: the two names above, then the engine's settings
	// (engine.TopicConfig.Set and Validate); anything else is
	// ErrInvalidConfig.
	ValidateConfigs func([]Config) error
}

func (p Policy) defaultPartitions() int32 {
	if p.DefaultPartitions > 0 {
		return p.DefaultPartitions
	}
	return 1
}

func (p Policy) defaultReplicationFactor() int {
	if p.DefaultReplicationFactor > 0 {
		return int(p.DefaultReplicationFactor)
	}
	return 1
}

func (p Policy) producerIDBlockSize() int64 {
	if p.ProducerIDBlockSize > 0 {
		return p.ProducerIDBlockSize
	}
	return 1000
}

// unclean reports whether t may elect a leader from outside its ISR: the
// topic's unclean.leader.election.enable, else the cluster-wide dynamic
// default (a BrokerConfigRecord for DefaultBrokerConfigs), else the
// Policy's.
func (p Policy) unclean(s *State, t *Topic) bool {
	if v, ok := t.Config(ConfigUncleanLeaderElection); ok {
		return strings.EqualFold(v, "true")
	}
	if v, ok := s.BrokerConfig(DefaultBrokerConfigs, ConfigUncleanLeaderElection); ok {
		return strings.EqualFold(v, "true")
	}
	return p.UncleanLeaderElection
}

func (p Policy) validateConfigs(cs []Config) error {
	if p.ValidateConfigs != nil {
		return p.ValidateConfigs(cs)
	}
	return ValidateConfigs(cs)
}

// ValidateConfigs is Policy's default check of a topic's configs:
// unclean.leader.election.enable is "true" or "false", min.insync.replicas
// an integer >= 1, and every other name a valid engine setting.
func ValidateConfigs(cs []Config) error {
	ec := engine.DefaultTopicConfig()
	for _, c := range cs {
		switch c.Name {
		case ConfigUncleanLeaderElection:
			if v := strings.TrimSpace(c.Value); !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
				return fmt.Errorf("%w: %s=%q: not true or false", ErrInvalidConfig, c.Name, c.Value)
			}
		case ConfigMinInsyncReplicas:
			if n, err := strconv.ParseInt(strings.TrimSpace(c.Value), 10, 32); err != nil || n < 1 {
				return fmt.Errorf("%w: %s=%q: not a number of type INT >= 1", ErrInvalidConfig, c.Name, c.Value)
			}
		default:
			if err := ec.Set(c.Name, c.Value); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
		}
	}
	if err := ec.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
