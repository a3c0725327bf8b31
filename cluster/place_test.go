package cluster

import (
	"fmt"
	"slices"
	"testing"

	"github.com/easel-io/easel/engine"
)

// liveState has brokers 1..n unfenced, in racks racks[i] (if given).
func liveState(t *testing.T, n int, racks ...string) *State {
	t.Helper()
	s := NewState()
	for i := 1; i <= n; i++ {
		r := broker(int32(i), 1, false)
		if len(racks) > 0 {
			r.Rack = racks[(i-1)%len(racks)]
		}
		if err := s.Apply([]Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func spread(n int, counts map[int32]int) int {
	lo, hi := int(^uint(0)>>1), 0
	for i := 1; i <= n; i++ {
		lo, hi = min(lo, counts[int32(i)]), max(hi, counts[int32(i)])
	}
	return hi - lo
}

// TestPlacementBalance: without racks, a topic's replicas and leaders are
// spread over the brokers within one, for every broker count, replication
// factor and partition count tried, placed at once or in steps
// (CreatePartitions).
func TestPlacementBalance(t *testing.T) {
	for n := 1; n <= 9; n++ {
		s := liveState(t, n)
		for rf := 1; rf <= min(n, 4); rf++ {
			for parts := int32(1); parts <= 24; parts++ {
				id := engine.TopicID{0: byte(n), 1: byte(rf), 2: byte(parts)}
				check := func(out [][]int32, how string) {
					replicas, leaders := map[int32]int{}, map[int32]int{}
					for _, rs := range out {
						if len(rs) != rf {
							t.Fatalf("n=%d rf=%d: %v", n, rf, rs)
						}
						for i, r := range rs {
							if slices.Contains(rs[:i], r) {
								t.Fatalf("n=%d rf=%d: broker twice in %v", n, rf, rs)
							}
							replicas[r]++
						}
						leaders[rs[0]]++
					}
					if d := spread(n, replicas); d > 1 {
						t.Errorf("%s n=%d rf=%d partitions=%d: replica counts differ by %d: %v", how, n, rf, parts, d, replicas)
					}
					if d := spread(n, leaders); d > 1 {
						t.Errorf("%s n=%d rf=%d partitions=%d: leader counts differ by %d: %v", how, n, rf, parts, d, leaders)
					}
				}
				once, err := placeNew(s, id, 0, parts, rf)
				if err != nil {
					t.Fatal(err)
				}
				check(once, "at once")
				// In steps: the first third, then the rest, counted with it.
				first := max(1, parts/3)
				s2 := liveState(t, n)
				recs := []Record{TopicRecord{Name: "t", ID: id}}
				recs = append(recs, newPartitions(s2, id, 0, once[:first])...)
				if err := s2.Apply(recs); err != nil {
					t.Fatal(err)
				}
				rest, err := placeNew(s2, id, first, parts-first, rf)
				if err != nil {
					t.Fatal(err)
				}
				check(append(slices.Clone(once[:first]), rest...), "in steps")
			}
		}
	}
}

// TestPlacementRacks: replicas spread over racks first.
func TestPlacementRacks(t *testing.T) {
	for _, tc := range []struct {
		brokers int
		racks   []string
		rf      int
	}{
		{6, []string{"a", "b", "c"}, 3},
		{6, []string{"a", "b", "c"}, 2},
		{9, []string{"a", "b", "c"}, 3},
		{4, []string{"a", "b"}, 3},
		{5, []string{"a", "a", "a", "b"}, 2}, // uneven racks
		{6, []string{"a", "b", "c"}, 5},
	} {
		s := liveState(t, tc.brokers, tc.racks...)
		nracks := len(slices.Compact(slices.Sorted(slices.Values(tc.racks))))
		out, err := placeNew(s, testID, 0, 30, tc.rf)
		if err != nil {
			t.Fatal(err)
		}
		for p, rs := range out {
			use := map[string]int{}
			for _, r := range rs {
				use[s.Broker(r).Rack]++
			}
			// Each rack holds at most ceil(rf/racks) replicas.
			for rack, n := range use {
				if n > (tc.rf+nracks-1)/nracks {
					t.Errorf("%d brokers in racks %v, rf %d: partition %d has %d replicas in rack %s: %v",
						tc.brokers, tc.racks, tc.rf, p, n, rack, rs)
				}
			}
		}
	}
}

// TestPlacementDeterministic: the same state and topic give the same
// placement; another topic id another one.
func TestPlacementDeterministic(t *testing.T) {
	s := liveState(t, 7)
	a, _ := placeNew(s, testID, 0, 20, 3)
	b, _ := placeNew(s, testID, 0, 20, 3)
	c, _ := placeNew(s, engine.TopicID{42}, 0, 20, 3)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("placement is not deterministic")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("two topics placed identically")
	}
}

// TestPlacementSkipsFenced: fenced brokers get no new replicas.
func TestPlacementSkipsFenced(t *testing.T) {
	s := liveState(t, 4)
	if err := s.Apply([]Record{FenceBrokerRecord{Broker: 2, Epoch: 2}}); err != nil {
		t.Fatal(err)
	}
	out, err := placeNew(s, testID, 0, 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range out {
		if slices.Contains(rs, 2) {
			t.Fatalf("fenced broker placed: %v", rs)
		}
	}
	if _, err := placeNew(s, testID, 0, 1, 4); KafkaError(err).Message != "INVALID_REPLICATION_FACTOR" {
		t.Fatalf("rf 4 over 3 live brokers: %v", err)
	}
}
