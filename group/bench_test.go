package group

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

func benchCoordinator(b *testing.B, store engine.Store, delay time.Duration) (*Coordinator, *engine.Engine) {
	return benchCoordinatorWith(b, engine.Options{Store: store}, Config{InitialRebalanceDelay: delay})
}

// benchCoordinatorWith opens an engine with opts (in a temporary directory)
// holding topic "t" (10 partitions), and a coordinator with cfg.
func benchCoordinatorWith(b *testing.B, opts engine.Options, cfg Config) (*Coordinator, *engine.Engine) {
	b.Helper()
	opts.Logger, opts.RetentionCheckInterval = quiet, -1
	eng, err := engine.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.CreateTopic("t", engine.TopicConfig{Partitions: 10}); err != nil {
		b.Fatal(err)
	}
	cfg.Logger = quiet
	c := New(eng, cfg)
	if err := c.Err(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		eng.Close()
	})
	return c, eng
}

// BenchmarkOffsetCommit measures OffsetCommit of 10 partitions per call
// from a member of a stable group, one call at a time, through
// __consumer_offsets (default flush policy: no fsync per commit).
func BenchmarkOffsetCommit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func() engine.Store
	}{{"disk", func() engine.Store { return nil }}, {"memory", func() engine.Store { return engine.NewMemoryStore() }}} {
		b.Run(tc.name, func(b *testing.B) {
			c, _ := benchCoordinator(b, tc.store(), -1)
			ctx := context.Background()
			m := newTM("g", 7, "range")
			m.session = time.Minute
			join := m.joinReq()
			r := c.JoinGroup(ctx, join)
			join.MemberID = r.MemberID
			r = c.JoinGroup(ctx, join)
			if r.ErrorCode != 0 {
				b.Fatal(code(r.ErrorCode))
			}
			if s := c.SyncGroup(ctx, &kmsg.SyncGroupRequest{Version: 5, Group: "g", Generation: r.Generation, MemberID: r.MemberID}); s.ErrorCode != 0 {
				b.Fatal(code(s.ErrorCode))
			}
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Version = 8
			req.Group, req.Generation, req.MemberID = "g", r.Generation, r.MemberID
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic = "t"
			md := ""
			for p := range int32(10) {
				t.Partitions = append(t.Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: p, LeaderEpoch: 0, Metadata: &md})
			}
			req.Topics = []kmsg.OffsetCommitRequestTopic{t}
			b.SetBytes(int64(len(req.AppendTo(nil))))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for j := range req.Topics[0].Partitions {
					req.Topics[0].Partitions[j].Offset = int64(i)
				}
				resp := c.OffsetCommit(ctx, req)
				if resp.Topics[0].Partitions[0].ErrorCode != 0 {
					b.Fatal(code(resp.Topics[0].Partitions[0].ErrorCode))
				}
			}
			b.ReportMetric(float64(b.N)*10/b.Elapsed().Seconds(), "offsets/s")
		})
	}
}

// BenchmarkRebalance measures one rebalance of a stable 10-member group:
// the leader rejoins, the followers see REBALANCE_IN_PROGRESS on their next
// heartbeat (sent back to back here, where a client waits up to its
// heartbeat interval) and rejoin, the leader sends the assignment, and
// every member has it.
func BenchmarkRebalance(b *testing.B) {
	const n = 10
	// The initial delay lets all ten form the first generation together;
	// the rebalances measured are of a non-empty group, which it does not
	// delay.
	c, _ := benchCoordinator(b, engine.NewMemoryStore(), 100*time.Millisecond)
	ctx := context.Background()
	ms := make([]*tm, n)
	for i := range ms {
		ms[i] = newTM("g", 7, "range")
		ms[i].session = time.Minute
	}
	rebalance := func(first *tm) {
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if m != first && first != nil {
					for {
						hb := &kmsg.HeartbeatRequest{Version: 4, Group: "g", Generation: m.gen, MemberID: m.id}
						if c.Heartbeat(ctx, hb).ErrorCode == kerr.RebalanceInProgress.Code {
							break
						}
					}
				}
				for {
					req := m.joinReq()
					r := c.JoinGroup(ctx, req)
					if r.ErrorCode == kerr.MemberIDRequired.Code {
						m.id = r.MemberID
						continue
					}
					if r.ErrorCode != 0 {
						panic(code(r.ErrorCode))
					}
					m.id, m.gen, m.leader, m.members = r.MemberID, r.Generation, r.LeaderID == r.MemberID, r.Members
					var assign []kmsg.SyncGroupRequestGroupAssignment
					for _, x := range r.Members {
						assign = append(assign, kmsg.SyncGroupRequestGroupAssignment{MemberID: x.MemberID, MemberAssignment: []byte("assignment")})
					}
					s := c.SyncGroup(ctx, &kmsg.SyncGroupRequest{Version: 5, Group: "g", Generation: m.gen, MemberID: m.id, GroupAssignment: assign})
					if s.ErrorCode == kerr.RebalanceInProgress.Code {
						continue
					}
					if s.ErrorCode != 0 {
						panic(code(s.ErrorCode))
					}
					return
				}
			}()
		}
		wg.Wait()
	}
	rebalance(nil)
	for _, m := range ms {
		if m.gen != 1 {
			b.Fatalf("member at generation %d after forming", m.gen)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var leader *tm
		for _, m := range ms {
			if m.leader {
				leader = m
			}
		}
		if leader == nil {
			b.Fatal("no leader")
		}
		gen := leader.gen
		rebalance(leader)
		for _, m := range ms {
			if m.gen != gen+1 {
				b.Fatalf("member at generation %d after a rebalance from %d", m.gen, gen)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/rebalance")
}

// BenchmarkOffsetCommitParallel measures OffsetCommit of 10 partitions per
// call from many groups at once (b.RunParallel, 16 goroutines per CPU, each
// committing for its own simple-consumer group), on disk, with the default
// flush policy and with flush.messages=1 (an fsync per append), with all
// groups on one __consumer_offsets partition (the most group commit can
// share) and on Kafka's 50.
func BenchmarkOffsetCommitParallel(b *testing.B) {
	for _, flush := range []struct {
		name string
		msgs int64
	}{{"flush-default", 0}, {"flush-every", 1}} {
		for _, parts := range []int32{1, 50} {
			b.Run(fmt.Sprintf("%s/partitions-%d", flush.name, parts), func(b *testing.B) {
				c, _ := benchCoordinatorWith(b, engine.Options{Defaults: engine.TopicConfig{FlushMessages: flush.msgs}},
					Config{OffsetsTopicNumPartitions: parts})
				var next atomic.Int64
				b.SetParallelism(16)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					req := kmsg.NewPtrOffsetCommitRequest()
					req.Version = 8
					req.Group, req.Generation = fmt.Sprintf("group-%d", next.Add(1)), -1
					t := kmsg.NewOffsetCommitRequestTopic()
					t.Topic = "t"
					md := ""
					for p := range int32(10) {
						t.Partitions = append(t.Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: p, LeaderEpoch: 0, Metadata: &md})
					}
					req.Topics = []kmsg.OffsetCommitRequestTopic{t}
					for i := int64(0); pb.Next(); i++ {
						for j := range req.Topics[0].Partitions {
							req.Topics[0].Partitions[j].Offset = i
						}
						resp := c.OffsetCommit(ctx, req)
						if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
							panic(kerr.ErrorForCode(code))
						}
					}
				})
				b.ReportMetric(float64(b.N)*10/b.Elapsed().Seconds(), "offsets/s")
			})
		}
	}
}
