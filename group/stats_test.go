package group

import (
	"reflect"
	"testing"

	"github.com/easel-io/easel/engine"
)

// Stats reports each group's state, members and committed offsets, sorted.
func TestStats(t *testing.T) {
	h := newHarness(t, Config{})
	if s := h.c.Stats(); len(s) != 0 {
		t.Fatalf("stats of no groups: %+v", s)
	}
	h.commit("simple", nil, map[string]map[int32]int64{"t": {2: 9, 0: 5}, "u": {0: 1}})
	m := newTM("members", 7, "range")
	h.stableGroup(m)
	h.commit("members", m, map[string]map[int32]int64{"t": {1: 3}})

	want := []GroupStats{
		{ID: "members", State: "Stable", Members: 1, Offsets: []CommittedOffset{{engine.TopicPartition{Topic: "t", Partition: 1}, 3}}},
		{ID: "simple", State: "Empty", Members: 0, Offsets: []CommittedOffset{
			{engine.TopicPartition{Topic: "t", Partition: 0}, 5},
			{engine.TopicPartition{Topic: "t", Partition: 2}, 9},
			{engine.TopicPartition{Topic: "u", Partition: 0}, 1},
		}},
	}
	if got := h.c.Stats(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
}
