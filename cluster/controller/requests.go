package controller

import (
	"context"
	"fmt"
	"slices"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

// submit hands a decision to the controller loop and waits for its answer:
// ErrNotController (wrapped) when this node does not lead, the decision's
// error, or nil once its entry has applied here.
func (n *Node) submit(ctx context.Context, r *request) error {
	if err := n.Err(); err != nil {
		return err
	}
	t := n.term.Load()
	if t == nil {
		return n.notController()
	}
	r.resp = make(chan error, 1)
	select {
	case t.reqs <- r:
	case <-t.done:
		return n.notController()
	case <-n.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.resp:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) notController() error {
	return fmt.Errorf("%w (node %d; controller %d)", ErrNotController, n.id, n.Controller())
}

// CreateTopic creates a topic (Policy.CreateTopic) at the controller; a zero
// req.ID is replaced by a new random id.
func (n *Node) CreateTopic(ctx context.Context, req cluster.CreateTopicRequest) error {
	if req.ID == (engine.TopicID{}) {
		req.ID = engine.NewTopicID()
	}
	return n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		return n.cfg.Policy.CreateTopic(s, req)
	}})
}

// CreatePartitions grows a topic to count partitions (Policy.CreatePartitions).
func (n *Node) CreatePartitions(ctx context.Context, name string, count int32, assignment [][]int32) error {
	return n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		return n.cfg.Policy.CreatePartitions(s, name, count, assignment)
	}})
}

// ConfigEdit computes a resource's settings from now on from its current
// explicit ones (sorted by name), on the state the change will apply to.
// It must only read s, and not keep current.
type ConfigEdit func(s *cluster.State, current []cluster.Config) ([]cluster.Config, error)

// AlterTopicConfigs replaces the explicit settings of the topic named name
// with what edit makes of them (Policy.AlterTopicConfigs). edit runs inside
// the decision, so concurrent changes of one topic never lose each other.
// Errors: edit's, cluster.ErrUnknownTopic, the decision's.
func (n *Node) AlterTopicConfigs(ctx context.Context, name string, edit ConfigEdit) error {
	return n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		t := s.Topic(name)
		if t == nil {
			return nil, fmt.Errorf("%w: topic %s", cluster.ErrUnknownTopic, name)
		}
		cs, err := edit(s, t.Configs)
		if err != nil {
			return nil, err
		}
		return n.cfg.Policy.AlterTopicConfigs(s, name, cs)
	}})
}

// AlterBrokerConfigs replaces the dynamic settings of a broker, or with
// cluster.DefaultBrokerConfigs the cluster-wide ones, with what edit makes
// of them (Policy.AlterBrokerConfigs), as AlterTopicConfigs does.
func (n *Node) AlterBrokerConfigs(ctx context.Context, broker int32, edit ConfigEdit) error {
	return n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		cs, err := edit(s, s.BrokerConfigs(broker))
		if err != nil {
			return nil, err
		}
		return n.cfg.Policy.AlterBrokerConfigs(s, broker, cs)
	}})
}

// DeleteTopic deletes the topic named name (Policy.DeleteTopic).
func (n *Node) DeleteTopic(ctx context.Context, name string) error {
	return n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		return n.cfg.Policy.DeleteTopic(s, name)
	}})
}

// DeleteTopicByID deletes the topic with the id and returns its name
// (Policy.DeleteTopicByID).
func (n *Node) DeleteTopicByID(ctx context.Context, id engine.TopicID) (string, error) {
	var name string // written by the decision; read only after a nil error
	err := n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		if t := s.TopicByID(id); t != nil {
			name = t.Name
		}
		return n.cfg.Policy.DeleteTopicByID(s, id)
	}})
	if err != nil {
		// The decision may still run after submit gave up (ctx): only a
		// nil error orders its writes before this read.
		return "", err
	}
	return name, nil
}

// AlterPartition decides a partition leader's ISR change
// (Policy.AlterPartition) and returns the partition as it stands after it.
func (n *Node) AlterPartition(ctx context.Context, req cluster.AlterPartitionRequest) (cluster.Partition, error) {
	var out cluster.Partition
	err := n.submit(ctx, &request{
		growsISR: true,
		decide: func(s *cluster.State) ([]cluster.Record, error) {
			return n.cfg.Policy.AlterPartition(s, req)
		},
		after: func(s *cluster.State) {
			if p := s.PartitionByID(req.Topic, req.Partition); p != nil {
				out = *p
			}
		},
	})
	if err != nil {
		return cluster.Partition{}, err // out is not ours yet (DeleteTopicByID)
	}
	return out, nil
}

// AllocateProducerIDs hands a block of producer ids to a broker
// (Policy.AllocateProducerIDs, KIP-730).
func (n *Node) AllocateProducerIDs(ctx context.Context, broker int32, epoch int64) (int64, int64, error) {
	var start, size int64 // as in DeleteTopicByID
	err := n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		recs, err := n.cfg.Policy.AllocateProducerIDs(s, broker, epoch)
		for _, r := range recs {
			if b, ok := r.(cluster.ProducerIDsRecord); ok {
				start, size = b.Start, b.Size
			}
		}
		return recs, err
	}})
	if err != nil {
		return 0, 0, err
	}
	return start, size, nil
}

// ControlledShutdown moves leadership off a broker that is about to stop
// and fences it (Policy.ControlledShutdown).
func (n *Node) ControlledShutdown(ctx context.Context, broker int32, epoch int64) error {
	return n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
		return n.cfg.Policy.ControlledShutdown(s, broker, epoch)
	}})
}

// BrokerHeartbeat is a broker's report of the metadata it has applied: a
// fenced broker whose applied index has reached the index at which its
// current epoch was set (its registration or fencing), and that gossip
// lists alive with the registered incarnation, is unfenced
// (Policy.BrokerCaughtUp). It returns whether the broker is fenced
// afterwards. Errors: cluster.ErrUnknownBroker, cluster.ErrStaleBrokerEpoch.
func (n *Node) BrokerHeartbeat(ctx context.Context, broker int32, epoch int64, applied uint64) (bool, error) {
	var fenced bool // as in DeleteTopicByID
	err := n.submit(ctx, &request{
		unfences: true,
		decide: func(s *cluster.State) ([]cluster.Record, error) {
			b := s.Broker(broker)
			switch {
			case b == nil:
				return nil, fmt.Errorf("%w: broker %d", cluster.ErrUnknownBroker, broker)
			case b.Epoch != epoch:
				return nil, fmt.Errorf("%w: broker %d heartbeat at epoch %d, registered at %d", cluster.ErrStaleBrokerEpoch, broker, epoch, b.Epoch)
			case !b.Fenced:
				fenced = false
				return nil, nil
			}
			fenced = true
			if at, ok := n.caughtUpIndex(broker, epoch); !ok || applied < at || !n.gossipAlive(b) {
				return nil, nil
			}
			recs, err := n.cfg.Policy.BrokerCaughtUp(s, broker, epoch)
			if err == nil {
				fenced = false
			}
			return recs, err
		},
	})
	if err != nil {
		return true, err
	}
	return fenced, nil
}

// gossipAlive reports whether gossip lists b's incarnation as a live,
// accepted member (without gossip: whether b is this broker).
func (n *Node) gossipAlive(b *cluster.Broker) bool {
	if n.ml == nil {
		return b.ID == n.id && b.Incarnation == n.info.Incarnation
	}
	for _, m := range n.ml.Members() {
		if m.NodeID == b.ID {
			return uint64(m.Incarnation) == b.Incarnation && n.accept(m) == nil
		}
	}
	return false
}

// Reassignment is one partition's entry of AlterPartitionReassignments:
// the replicas it should have, preferred leader first; nil cancels the
// reassignment in progress.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// OngoingReassignment is a partition being reassigned, as
// ListPartitionReassignments reports it: Replicas is the full replica set
// while moving (the target, then Removing), Adding the target's new
// brokers, Removing the brokers that leave once the target is in sync.
type OngoingReassignment struct {
	Topic            string
	Partition        int32
	Replicas, Adding []int32
	Removing         []int32
}

// AlterReassignments starts, replaces or cancels partition reassignments
// (Policy.AlterReassignment, KIP-455), one decision per entry in order, and
// returns one error per entry (nil: committed and applied here): errors
// map to Kafka's codes with cluster.KafkaError (INVALID_REPLICA_ASSIGNMENT,
// UNKNOWN_TOPIC_OR_PARTITION, NO_REASSIGNMENT_IN_PROGRESS), and every entry
// not decided because this node is not the controller gets
// ErrNotController. The controller completes each reassignment once its
// target replicas are all in the ISR (the leaders' AlterPartition).
func (n *Node) AlterReassignments(ctx context.Context, reqs []Reassignment) []error {
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		errs[i] = n.submit(ctx, &request{decide: func(s *cluster.State) ([]cluster.Record, error) {
			return n.cfg.Policy.AlterReassignment(s, r.Topic, r.Partition, r.Replicas)
		}})
	}
	return errs
}

// Reassignments returns the reassignments in progress as the local state
// has them, by topic name and partition. The slices are the caller's.
func (n *Node) Reassignments() []OngoingReassignment {
	var out []OngoingReassignment
	n.View(func(s *cluster.State) {
		for _, p := range s.Reassignments() {
			out = append(out, OngoingReassignment{
				Topic: s.TopicByID(p.Topic).Name, Partition: p.Index,
				Replicas: slices.Clone(p.Replicas), Adding: slices.Clone(p.Adding), Removing: slices.Clone(p.Removing),
			})
		}
	})
	return out
}
