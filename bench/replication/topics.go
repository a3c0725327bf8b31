package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// createTopic creates topic with parts partitions and replication factor
// rf (min.insync.replicas 2 when rf ≥ 2) and waits until every partition
// has a leader and, if full, all rf replicas in its ISR.
func (bs *brokers) createTopic(ctx context.Context, topic string, parts, rf int) error {
	var cfg map[string]*string
	if rf >= 2 {
		two := "2"
		cfg = map[string]*string{"min.insync.replicas": &two}
	}
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := bs.adm.CreateTopic(cctx, int32(parts), int16(rf), cfg, topic)
		cancel()
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return bs.waitTopic(ctx, topic, parts, rf, time.Minute)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("creating %s: %w", topic, last)
}

// waitTopic waits until Metadata shows every partition of topic with a live
// leader and isr replicas in sync.
func (bs *brokers) waitTopic(ctx context.Context, topic string, parts, isr int, timeout time.Duration) error {
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
func (bs *brokers) topicState(ctx context.Context, topic string, parts, isr int) string {
	for _, b := range bs.live() {
		m, err := metadataFrom(ctx, b.kafka, topic)
		if err != nil {
			return fmt.Sprintf("broker %d: %v", b.id, err)
		}
		td, ok := m.Topics[topic]
		switch {
		case !ok:
			return fmt.Sprintf("broker %d does not list %s", b.id, topic)
		case td.Err != nil:
			return fmt.Sprintf("broker %d: %s: %v", b.id, topic, td.Err)
		case len(td.Partitions) != parts:
			return fmt.Sprintf("broker %d: %d partitions", b.id, len(td.Partitions))
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 || bs.byID(p.Leader) == nil || bs.byID(p.Leader).cmd == nil {
				return fmt.Sprintf("broker %d: partition %d leader %d err %v", b.id, p.Partition, p.Leader, p.Err)
			}
			if len(p.ISR) < isr {
				return fmt.Sprintf("broker %d: partition %d ISR %v", b.id, p.Partition, p.ISR)
			}
		}
	}
	return ""
}

// leaders returns partition → leader and the controller, as one broker sees them.
func (bs *brokers) leaders(ctx context.Context, topic string) (map[int32]int32, int32, error) {
	m, err := bs.adm.Metadata(ctx, topic)
	if err != nil {
		return nil, -1, err
	}
	out := map[int32]int32{}
	for _, p := range m.Topics[topic].Partitions {
		out[p.Partition] = p.Leader
	}
	return out, m.Controller, nil
}
