package main

// -metadata-partitions: Metadata response time, a failover and restarts
// with a large partition count.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// bigTopicPartitions is the partition count of each topic of
// -metadata-partitions.
const bigTopicPartitions = 1000

// deleteTopic deletes topic through the running brokers in turn, trying
// each up to twice (a client's connection to a restarted broker fails once).
func (c *cluster) deleteTopic(ctx context.Context, topic string) error {
	var last error
	live := c.live()
	for i := range 2 * len(live) {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis = 10000
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		req.TopicNames = []string{topic}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := c.nodes[live[i%len(live)]].client.SeedBrokers()[0].Request(rctx, req)
		cancel()
		if err == nil {
			for _, t := range resp.(*kmsg.DeleteTopicsResponse).Topics {
				if kerr.ErrorForCode(t.ErrorCode) != nil {
					err = kerr.ErrorForCode(t.ErrorCode)
				}
			}
		}
		if err == nil || errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil
		}
		last = err
	}
	return last
}

// createTopic creates topic through the running brokers in turn until one
// succeeds, within a minute.
func (c *cluster) createTopic(ctx context.Context, topic string, parts, rf int) error {
	deadline := time.Now().Add(time.Minute)
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		live := c.live()
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 30000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, int32(parts), int16(rf)
		req.Topics = append(req.Topics, rt)
		rctx, cancel := context.WithTimeout(ctx, 35*time.Second)
		resp, err := c.nodes[live[i%len(live)]].client.SeedBrokers()[0].Request(rctx, req)
		cancel()
		if err == nil {
			r := resp.(*kmsg.CreateTopicsResponse)
			if len(r.Topics) != 1 {
				err = fmt.Errorf("%d topics in the response", len(r.Topics))
			} else if code := r.Topics[0].ErrorCode; code == 0 || code == kerr.TopicAlreadyExists.Code {
				return nil
			} else {
				err = kerr.ErrorForCode(code)
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("creating %s: %w", topic, last)
}

func bigMetadata(ctx context.Context, c *cluster, o options) error {
	n := (o.mdParts + bigTopicPartitions - 1) / bigTopicPartitions
	var topics []string
	start := time.Now()
	for i := range n {
		t := fmt.Sprintf("big-%02d", i)
		topics = append(topics, t)
		if err := c.createTopic(ctx, t, bigTopicPartitions, 3); err != nil {
			return err
		}
	}
	created := time.Since(start)
	before, err := c.waitStable(ctx, topics, bigTopicPartitions, true, 2*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("\n### -metadata-partitions: %d topics × %d partitions (RF 3) = %d\n\n", n, bigTopicPartitions, n*bigTopicPartitions)
	fmt.Printf("created in %v (one CreateTopics per topic), all brokers agreeing after %v\n\n",
		created.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Metadata response time, one request at a time, each broker in turn.
	var ds []time.Duration
	for i := range 60 {
		id := c.ids[i%len(c.ids)]
		t0 := time.Now()
		if _, err := c.metadata(ctx, id, topics); err != nil {
			return err
		}
		ds = append(ds, time.Since(t0))
	}
	var all []time.Duration
	for i := range 30 {
		id := c.ids[i%len(c.ids)]
		t0 := time.Now()
		if _, err := c.metadata(ctx, id, nil); err != nil {
			return err
		}
		all = append(all, time.Since(t0))
	}
	fmt.Println("| request | n | p50 | p90 | p99 | max |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	q := quantiles(ds)
	fmt.Printf("| Metadata of the %d topics by name | %d | %s | %s | %s | %s |\n", n, len(ds), q[0], q[1], q[2], q[3])
	q = quantiles(all)
	fmt.Printf("| Metadata of all topics (null list) | %d | %s | %s | %s | %s |\n\n", len(all), q[0], q[1], q[2], q[3])

	var samples []*sample
	// Two kills: with no replication a dead broker leaves every ISR, so a
	// third would find partitions with no live ISR member.
	for k := range 2 {
		s := &sample{vals: map[string]time.Duration{}}
		if k%2 == 1 {
			s.kind, s.victim = "controller", before.controller
		} else {
			s.kind, s.victim = "leader", -1
			for _, id := range c.live() {
				if id != before.controller && len(before.leads(id)) > 0 {
					s.kind, s.victim = "leader", id
					break
				}
			}
		}
		if s.victim < 0 {
			return fmt.Errorf("no broker other than the controller leads a partition")
		}
		if err := c.measureKill(ctx, s, before, topics, bigTopicPartitions, fmt.Sprintf("probe-big-%d", k)); err != nil {
			return err
		}
		if err := c.measureRestart(ctx, s, topics, bigTopicPartitions); err != nil {
			return err
		}
		samples = append(samples, s)
		fmt.Printf("big kill %d/%d %-10s broker %d (led %d):%s\n", k+1, 2, s.kind, s.victim, s.led, s.brief())
		// The restarted broker is in no ISR now, so it leads nothing.
		if before, err = c.waitStable(ctx, topics, bigTopicPartitions, false, 2*time.Minute); err != nil {
			return err
		}
	}
	fmt.Println()
	fmt.Println("| kill | metric | values |")
	fmt.Println("|---|---|---|")
	for _, kind := range []string{"leader", "controller"} {
		for _, m := range metrics {
			var vs []string
			for _, s := range samples {
				if d, ok := s.vals[m.name]; ok && s.kind == kind {
					vs = append(vs, fmtDur(d))
				}
			}
			if len(vs) > 0 {
				fmt.Printf("| %s | %s | %s |\n", kind, m.name, strings.Join(vs, ", "))
			}
		}
	}
	return nil
}
