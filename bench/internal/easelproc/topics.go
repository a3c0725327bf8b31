package easelproc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// CreateTopic creates topic with parts partitions and replication factor
// rf (min.insync.replicas 2 when rf ≥ 2) and the topic configs cfg, and
// waits until every running broker lists every partition with a leader
// and all rf replicas in its ISR.
func (bs *Cluster) CreateTopic(ctx context.Context, topic string, parts, rf int, cfg map[string]*string) error {
	if rf >= 2 {
		two := "2"
		c := map[string]*string{"min.insync.replicas": &two}
		for k, v := range cfg {
			c[k] = v
		}
		cfg = c
	}
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := bs.Adm.CreateTopic(cctx, int32(parts), int16(rf), cfg, topic)
		cancel()
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return bs.WaitTopic(ctx, topic, parts, rf, time.Minute)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("creating %s: %w", topic, last)
}

// WaitTopic waits until Metadata shows every partition of topic with a live
// leader and isr replicas in sync.
func (bs *Cluster) WaitTopic(ctx context.Context, topic string, parts, isr int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	why := "no answer"
	for time.Now().Before(deadline) {
		if why = bs.topicState(ctx, topic, parts, isr); why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %v: %s", topic, timeout, why)
}

// topicState returns "" if every running broker's Metadata shows topic with
// parts partitions, each led by a running broker, with at least isr in-sync
// replicas; else what is missing.
func (bs *Cluster) topicState(ctx context.Context, topic string, parts, isr int) string {
	for _, b := range bs.Live() {
		m, err := MetadataFrom(ctx, b.Kafka, topic)
		if err != nil {
			return fmt.Sprintf("broker %d: %v", b.ID, err)
		}
		td, ok := m.Topics[topic]
		switch {
		case !ok:
			return fmt.Sprintf("broker %d does not list %s", b.ID, topic)
		case td.Err != nil:
			return fmt.Sprintf("broker %d: %s: %v", b.ID, topic, td.Err)
		case len(td.Partitions) != parts:
			return fmt.Sprintf("broker %d: %d partitions", b.ID, len(td.Partitions))
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 || bs.ByID(p.Leader) == nil || !bs.ByID(p.Leader).Running() {
				return fmt.Sprintf("broker %d: partition %d leader %d err %v", b.ID, p.Partition, p.Leader, p.Err)
			}
			if len(p.ISR) < isr {
				return fmt.Sprintf("broker %d: partition %d ISR %v", b.ID, p.Partition, p.ISR)
			}
		}
	}
	return ""
}

// Leaders returns partition → leader and the controller, as one broker
// sees them.
func (bs *Cluster) Leaders(ctx context.Context, topic string) (map[int32]int32, int32, error) {
	m, err := bs.Adm.Metadata(ctx, topic)
	if err != nil {
		return nil, -1, err
	}
	out := map[int32]int32{}
	for _, p := range m.Topics[topic].Partitions {
		out[p.Partition] = p.Leader
	}
	return out, m.Controller, nil
}
