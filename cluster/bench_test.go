package cluster

import (
	"fmt"
	"testing"

	"github.com/easel-io/easel/engine"
)

// bigState has 5 live brokers and 100 topics of 100 partitions, RF 3:
// 10,000 partitions.
func bigState(b *testing.B) *State {
	b.Helper()
	s := NewState()
	var p Policy
	apply := func(recs []Record, err error) {
		if err == nil {
			err = s.Apply(recs)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for id := int32(1); id <= 5; id++ {
		apply(p.BrokerJoined(s, BrokerInfo{ID: id, Host: fmt.Sprintf("broker-%d.example.com", id), Port: 9092,
			RaftAddr: fmt.Sprintf("broker-%d.example.com:9093", id)}))
		apply(p.BrokerCaughtUp(s, id, 1))
	}
	for i := 0; i < 100; i++ {
		apply(p.CreateTopic(s, CreateTopicRequest{Name: fmt.Sprintf("topic-%03d", i), ID: engine.TopicID{0: 1, 14: byte(i >> 8), 15: byte(i)},
			Partitions: 100, ReplicationFactor: 3, Configs: []Config{{"retention.ms", "86400000"}}}))
	}
	return s
}

// BenchmarkSnapshot10k encodes the state of 10,000 partitions.
func BenchmarkSnapshot10k(b *testing.B) {
	s := bigState(b)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(s.Snapshot())
	}
	b.SetBytes(int64(n))
	b.ReportMetric(float64(n), "snapshot-bytes")
}

// BenchmarkRestore10k decodes and applies it (what a restart replays).
func BenchmarkRestore10k(b *testing.B) {
	snap := bigState(b).Snapshot()
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	for b.Loop() {
		if err := NewState().Restore(snap); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBrokerFailed10k decides and applies a broker's failure over
// 10,000 partitions, of which it leads 2,000 and follows 4,000.
func BenchmarkBrokerFailed10k(b *testing.B) {
	snap := bigState(b).Snapshot()
	var p Policy
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := NewState()
		if err := s.Restore(snap); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		recs, err := p.BrokerFailed(s, 3)
		if err == nil {
			err = s.Apply(recs)
		}
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.ReportMetric(float64(len(recs)), "records")
		}
	}
}
