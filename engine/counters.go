package engine

import (
	"sync/atomic"
	"time"
)

// Observer is told of appends and fsyncs, for metrics (Options.Observer).
// Its methods run on the append path, concurrently: they must be quick,
// must not block and should not allocate (count with atomics).
type Observer interface {
	// Appended reports one leader batch appended (not an idempotent
	// duplicate): its size in bytes and its record count.
	Appended(bytes, records int)
	// Synced reports how long one fsync of a partition log took
	// (flush.messages, flush.ms, Flush, or the background fsync of a
	// rolled segment), whether or not it failed.
	Synced(d time.Duration)
}

// TopicCounters counts one topic's traffic through this engine since it
// was opened. Each partition resolves its topic's counters once, when it
// is opened, so counting is an atomic add. The counters of a topic live as
// long as the engine, across deletes and re-creations of the topic, so they
// only grow (as Prometheus counters must).
type TopicCounters struct {
	// BytesIn and RecordsIn count the batches appended as leader (Append,
	// AppendRecords), duplicates excluded: Kafka's BytesInPerSec and
	// MessagesInPerSec.
	BytesIn, RecordsIn atomic.Int64
	// BytesOut and RecordsOut count the record bytes and records (of whole
	// batches) sent to consumers. The engine does not know what is sent;
	// the broker adds to them (Kafka's BytesOutPerSec; Kafka counts no
	// records out).
	BytesOut, RecordsOut atomic.Int64
	// ReplicationBytesIn counts the record bytes appended as follower
	// (AppendReplica); ReplicationBytesOut those sent to followers, added
	// by the broker (Kafka's ReplicationBytesInPerSec and OutPerSec).
	ReplicationBytesIn, ReplicationBytesOut atomic.Int64
}

// countersFor returns the counters of topic, creating them on first use.
func (e *Engine) countersFor(topic string) *TopicCounters {
	e.ctrs.Lock()
	defer e.ctrs.Unlock()
	c := e.ctrs.m[topic]
	if c == nil {
		if e.ctrs.m == nil {
			e.ctrs.m = map[string]*TopicCounters{}
		}
		c = new(TopicCounters)
		e.ctrs.m[topic] = c
	}
	return c
}

// EachTopicCounters calls fn with the counters of every topic that had a
// partition open in this engine, in no particular order. fn must not call
// back into the engine's counters.
func (e *Engine) EachTopicCounters(fn func(topic string, c *TopicCounters)) {
	e.ctrs.Lock()
	defer e.ctrs.Unlock()
	for t, c := range e.ctrs.m {
		fn(t, c)
	}
}

// Counters returns the partition's topic's counters (see TopicCounters).
func (p *Partition) Counters() *TopicCounters { return p.ctrs }

// TopicStats is what a topic's hosted partitions hold.
type TopicStats struct {
	Name       string
	Partitions int // hosted here
	LogStats       // summed over them
}

// TopicStats returns the stats of every topic with a partition hosted here,
// in no particular order. It takes no lock on the append path and does no
// I/O.
func (e *Engine) TopicStats() []TopicStats {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]TopicStats, 0, len(e.mu.topics))
	for _, t := range e.mu.topics {
		ts := TopicStats{Name: t.name}
		for _, p := range t.parts {
			if p == nil {
				continue
			}
			ts.Partitions++
			ts.add(p.log.Stats())
		}
		if ts.Partitions > 0 {
			out = append(out, ts)
		}
	}
	return out
}

// add sums o into s.
func (s *LogStats) add(o LogStats) {
	s.Segments += o.Segments
	s.OpenFiles += o.OpenFiles
	s.MappedFiles += o.MappedFiles
	s.MappedBytes += o.MappedBytes
	s.Recovered += o.Recovered
	s.Bytes += o.Bytes
}
