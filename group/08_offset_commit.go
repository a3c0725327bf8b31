package group

import (
	"context"
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// OffsetCommit answers OffsetCommit (v2–8). Commits come from a member of
// the group's current generation, or, with generation -1 and no member id,
// for a group without members ("simple" consumers that assign partitions
// themselves). Each partition is checked on its own: unknown ones get
// UNKNOWN_TOPIC_OR_PARTITION and metadata over MaxOffsetMetadataBytes
// OFFSET_METADATA_TOO_LARGE; the rest are stored durably in one engine
// write before the response. The v2–4 retention time is ignored.
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

	now := c.cfg.Now()
	offsets := make(map[engine.TopicPartition]engine.CommittedOffset, n)
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		topic := "" // the engine keeps it: copy it out of the request buffer
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
			if _, err := c.eng.Partition(t.Topic, p.Partition); err != nil {
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
			offsets[engine.TopicPartition{Topic: topic, Partition: p.Partition}] = engine.CommittedOffset{
				Offset:      p.Offset,
				LeaderEpoch: epoch,
				Metadata:    strings.Clone(md),
				CommitTime:  now,
			}
		}
	}
	if len(offsets) == 0 {
		return 0
	}
	if err := c.eng.CommitOffsets(g.id, offsets); err != nil {
		c.log.Warn("group: cannot store offsets", "group", g.id, "err", err)
		code := storeErrorCode(err)
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
	g.hasOffsets = true
	g.lastCommit = now
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

// storeErrorCode maps an engine error writing offsets to the code Kafka
// gives for a failed write to __consumer_offsets.
func storeErrorCode(err error) int16 {
	switch {
	case errors.Is(err, engine.ErrMessageTooLarge):
		return kerr.InvalidCommitOffsetSize.Code
	case errors.Is(err, engine.ErrClosed), errors.Is(err, engine.ErrUnknownTopic), errors.Is(err, engine.ErrUnknownPartition):
		return kerr.CoordinatorNotAvailable.Code
	case errors.Is(err, engine.ErrLogFailed):
		return kerr.NotCoordinator.Code
	}
	return kerr.UnknownServerError.Code
}
