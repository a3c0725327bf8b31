package cluster

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/easel-io/easel/engine"
)

// Placement of new partitions' replicas, over the live (registered,
// unfenced) brokers, one partition at a time:
//
//  1. Each broker's rendezvous score for the partition is xxhash64 of
//     (topic id, partition, broker id): a pseudo-random order that differs
//     per topic and partition and depends on nothing else. It breaks every
//     tie below.
//  2. The leader (first replica) is the broker leading fewest of the
//     topic's partitions, then holding fewest of its replicas.
//  3. The followers are chosen one at a time: the broker whose rack holds
//     fewest of this partition's replicas so far (with racks given,
//     replicas spread over racks; without, every broker is in rack ""),
//     then holding fewest of the topic's replicas, then leading most of its
//     partitions (a broker that leads few will get replicas as a leader).
//  4. The followers are ordered so that each position goes to the one that
//     holds it least often: when a leader fails, its partitions' new
//     leaders (the next ISR member in replica order) spread too.
//
// Counting per topic (its existing partitions included, for
// CreatePartitions) keeps every topic spread evenly: without racks, the
// counts of replicas and of leaders each differ by at most one between
// brokers (TestPlacementBalance). Counting per topic rather than over the
// cluster means a newly added, empty broker is not flooded with every new
// partition.

// placer holds the per-topic counts placement balances.
type placer struct {
	topic   engine.TopicID
	rf      int
	brokers []placeBroker
}

type placeBroker struct {
	id       int32
	rack     string
	replicas int
	// pos[i] counts the topic's partitions with this broker at position i
	// of the replicas (pos[0]: leaders).
	pos []int
}

// newPlacer counts the topic's existing partitions over the live brokers.
func newPlacer(s *State, topic engine.TopicID, rf int) (*placer, error) {
	live := s.LiveBrokers()
	if rf < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidReplicationFactor, rf)
	}
	if rf > len(live) {
		return nil, fmt.Errorf("%w: replication factor %d larger than the %d available brokers", ErrInvalidReplicationFactor, rf, len(live))
	}
	pl := &placer{topic: topic, rf: rf, brokers: make([]placeBroker, len(live))}
	at := map[int32]int{}
	for i, b := range live {
		pl.brokers[i] = placeBroker{id: b.ID, rack: b.Rack, pos: make([]int, rf)}
		at[b.ID] = i
	}
	for _, p := range s.Partitions(topic) {
		for i, r := range p.Replicas {
			if j, ok := at[r]; ok {
				pl.brokers[j].replicas++
				if i < rf {
					pl.brokers[j].pos[i]++
				}
			}
		}
	}
	return pl, nil
}

// score is broker b's rendezvous score for partition part.
func (pl *placer) score(part int32, b int32) uint64 {
	var buf [24]byte
	copy(buf[:16], pl.topic[:])
	binary.BigEndian.PutUint32(buf[16:], uint32(part))
	binary.BigEndian.PutUint32(buf[20:], uint32(b))
	return xxhash.Sum64(buf[:])
}

// place returns the replicas of partition part and counts them.
func (pl *placer) place(part int32) []int32 {
	n := len(pl.brokers)
	scores := make([]uint64, n)
	for i, b := range pl.brokers {
		scores[i] = pl.score(part, b.id)
	}
	// The leader: fewest leaders, then fewest replicas, then score.
	lead := 0
	for i := 1; i < n; i++ {
		a, b := &pl.brokers[i], &pl.brokers[lead]
		if a.pos[0] != b.pos[0] {
			if a.pos[0] < b.pos[0] {
				lead = i
			}
		} else if a.replicas != b.replicas {
			if a.replicas < b.replicas {
				lead = i
			}
		} else if scores[i] > scores[lead] {
			lead = i
		}
	}
	rackUse := map[string]int{pl.brokers[lead].rack: 1}
	chosen := []int{lead}
	// The followers, by rack spread, then load, then leaders (most first).
	for len(chosen) < pl.rf {
		best := -1
		for i := range pl.brokers {
			if slices.Contains(chosen, i) {
				continue
			}
			if best < 0 || pl.setLess(i, best, rackUse, scores) {
				best = i
			}
		}
		chosen = append(chosen, best)
		rackUse[pl.brokers[best].rack]++
	}
	// The followers' order: each position to the one holding it least often.
	replicas := make([]int32, 0, pl.rf)
	for pos := 0; pos < pl.rf; pos++ {
		best := -1
		for _, i := range chosen {
			if slices.Contains(replicas, pl.brokers[i].id) {
				continue
			}
			if pos == 0 {
				best = lead
				break
			}
			if best < 0 || pl.brokers[i].pos[pos] < pl.brokers[best].pos[pos] ||
				pl.brokers[i].pos[pos] == pl.brokers[best].pos[pos] && scores[i] > scores[best] {
				best = i
			}
		}
		replicas = append(replicas, pl.brokers[best].id)
		pl.brokers[best].pos[pos]++
		pl.brokers[best].replicas++
	}
	return replicas
}

// setLess orders candidates for the replica set.
func (pl *placer) setLess(i, j int, rackUse map[string]int, scores []uint64) bool {
	a, b := &pl.brokers[i], &pl.brokers[j]
	if ra, rb := rackUse[a.rack], rackUse[b.rack]; ra != rb {
		return ra < rb
	}
	if a.replicas != b.replicas {
		return a.replicas < b.replicas
	}
	if a.pos[0] != b.pos[0] {
		return a.pos[0] > b.pos[0]
	}
	return scores[i] > scores[j]
}
