package group

import (
	"slices"
	"strings"

	"github.com/easel-io/easel/engine"
)

// GroupStats describes one group, for metrics.
type GroupStats struct {
	ID string
	// State is Kafka's name for the group's state (Empty, Stable, ...).
	State   string
	Members int
	// Offsets are the group's committed offsets, sorted by topic and
	// partition.
	Offsets []CommittedOffset
}

// CommittedOffset is a group's committed offset of one partition.
type CommittedOffset struct {
	engine.TopicPartition
	Offset int64
}

// Stats describes the groups this coordinator serves (those of the
// __consumer_offsets partitions loaded here), sorted by id. It holds each
// group's lock only to copy its state.
func (c *Coordinator) Stats() []GroupStats {
	groups, _ := c.snapshot()
	out := make([]GroupStats, 0, len(groups))
	for _, g := range groups {
		g.mu.Lock()
		gs := GroupStats{ID: g.id, State: g.state.String(), Members: len(g.members)}
		if g.state == stateDead {
			g.mu.Unlock()
			continue
		}
		gs.Offsets = make([]CommittedOffset, 0, len(g.offsets))
		for tp, co := range g.offsets {
			gs.Offsets = append(gs.Offsets, CommittedOffset{tp, co.offset})
		}
		g.mu.Unlock()
		slices.SortFunc(gs.Offsets, func(a, b CommittedOffset) int {
			if c := strings.Compare(a.Topic, b.Topic); c != 0 {
				return c
			}
			return int(a.Partition) - int(b.Partition)
		})
		out = append(out, gs)
	}
	slices.SortFunc(out, func(a, b GroupStats) int { return strings.Compare(a.ID, b.ID) })
	return out
}
