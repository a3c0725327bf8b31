package group

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

func init() { regKey(8, 2, 8) } // OffsetCommit

// OffsetCommit answers OffsetCommit (v2–8). Commits come from a member of
// the group's current generation, or, with generation -1 and no member id,
// for a group without members ("simple" consumers that assign partitions
// themselves). Each partition is checked on its own: unknown ones get
// UNKNOWN_TOPIC_OR_PARTITION and metadata over MaxOffsetMetadataBytes
// OFFSET_METADATA_TOO_LARGE; the rest are appended to the group's
// __consumer_offsets partition as one batch (shared with concurrent commits
// of other groups of that partition) before the response, and fail together:
// KAFKA_STORAGE_ERROR if the log failed, INVALID_COMMIT_OFFSET_SIZE if they
// exceed max.message.bytes. The v2–4 retention time is ignored.
func (c *Coordinator) OffsetCommit(_ context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.Version = req.Version
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	n := 0
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(t.Partitions))
		for j := range t.Partitions {
			rt.Partitions[j].Partition = t.Partitions[j].Partition
		}
		n += len(t.Partitions)
	}
	if code := c.commit(req, resp, n); code != 0 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	return resp
}

// commit stores req's offsets, setting per-partition codes in resp, or
// returns a code for every partition.
func (c *Coordinator) commit(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, n int) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g, code := c.lockGroup(req.Group, req.Generation < 0, true)
	switch {
	case code != 0:
		return code
	case g == nil:
		// No such group: a commit from an older generation (Kafka's answer).
		return kerr.IllegalGeneration.Code
	}
	defer g.commitMu.Unlock()
	var instance *string
	if req.Version >= 7 {
		instance = req.InstanceID
	}
	code = g.validateCommitLocked(req.Generation, req.MemberID, instance)
	if code == 0 {
		switch g.state {
		case stateStable, statePreparingRebalance:
			// A commit counts as a sign of life; a rebalance is signalled
			// through heartbeats.
			m := g.byID[req.MemberID]
			g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		case stateCompletingRebalance:
			code = kerr.RebalanceInProgress.Code
		}
	}
	g.mu.Unlock()
	if code != 0 {
		return code
	}

	// commitMu is held from here to the end: the group's offsets are
	// written and applied in order, and no deletion comes in between.
	nowMs := c.cfg.Now().UnixMilli()
	tps := make([]engine.TopicPartition, 0, n)
	vals := make([]committed, 0, n)
	size := 0
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		topic := "" // kept in the group's map: copied out of the request buffer
		for j := range t.Partitions {
			p := &t.Partitions[j]
			rp := &rt.Partitions[j]
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if len(md) > c.cfg.MaxOffsetMetadataBytes {
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			if !c.hasPartition(t.Topic, p.Partition) {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			epoch := int32(-1)
			if req.Version >= 6 {
				epoch = p.LeaderEpoch
			}
			if topic == "" {
				topic = strings.Clone(t.Topic)
			}
			tps = append(tps, engine.TopicPartition{Topic: topic, Partition: p.Partition})
			vals = append(vals, committed{offset: p.Offset, epoch: epoch, metadata: strings.Clone(md), commitMs: nowMs})
			size += offsetKeySize(g.id, topic) + offsetValueSize(md)
		}
	}
	if len(tps) == 0 {
		return 0
	}
	// One buffer for every key and value, sized exactly so that slices cut
	// from it stay valid as it fills.
	buf := make([]byte, 0, size)
	recs := make([]record.Record, len(tps))
	for i, tp := range tps {
		start := len(buf)
		buf = appendOffsetKey(buf, g.id, tp.Topic, tp.Partition)
		mid := len(buf)
		buf = appendOffsetValue(buf, vals[i])
		recs[i] = record.Record{Key: buf[start:mid:mid], Value: buf[mid:len(buf):len(buf)]}
	}
	ch := make(chan error, 1)
	err := g.w.submit(newWrite(recs, func(err error) { ch <- err }))
	if err == nil {
		err = <-ch // the append cannot be cancelled: wait for it even if ctx ends
	}
	if err != nil {
		c.log.Warn("group: cannot store offsets", "group", g.id, "err", err)
		code := storeErrorCode(err, kerr.InvalidCommitOffsetSize.Code)
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if rp := &resp.Topics[i].Partitions[j]; rp.ErrorCode == 0 {
					rp.ErrorCode = code
				}
			}
		}
		return 0
	}
	g.mu.Lock()
	for i, tp := range tps {
		g.offsets[tp] = vals[i]
	}
	g.lastCommit = time.UnixMilli(nowMs)
	g.mu.Unlock()
	return 0
}

// validateCommitLocked is Kafka's validateOffsetCommit.
func (g *group) validateCommitLocked(gen int32, memberID string, instance *string) int16 {
	if gen >= 0 || memberID != "" || instance != nil {
		if code := g.validateMemberLocked(memberID, instance); code != 0 {
			return code
		}
		if gen != g.generation {
			return kerr.IllegalGeneration.Code
		}
		return 0
	}
	if g.state != stateEmpty {
		return kerr.UnknownMemberID.Code // only members commit for a group with members
	}
	return 0
}

// hasPartition reports whether a commit's topic partition exists
// (Config.HasPartition).
func (c *Coordinator) hasPartition(topic string, partition int32) bool {
	if c.cfg.HasPartition != nil {
		return c.cfg.HasPartition(topic, partition)
	}
	_, err := c.eng.Partition(topic, partition)
	return err == nil
}
