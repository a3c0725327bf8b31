package replica_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/replica"
)

// step is a run of batches written by a leader in one epoch.
type step struct {
	epoch   int32
	batches int
}

// buildLog returns prefix followed by the steps' batches, as a log written
// by leaders in those epochs would hold them (a scratch engine writes
// them); salt makes its records differ from another log's.
func buildLog(t *testing.T, prefix []byte, salt string, steps ...step) []byte {
	t.Helper()
	e, err := engine.Open(t.TempDir(), engine.Options{Logger: quietLogger(), Store: engine.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateTopic("scratch", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := e.Partition("scratch", 0)
	if len(prefix) > 0 {
		if _, err := p.AppendReplica(prefix); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range steps {
		if err := p.BecomeLeader(s.epoch); err != nil {
			t.Fatal(err)
		}
		for j := range s.batches {
			v := fmt.Appendf(nil, "%s-%d-%d", salt, i, j)
			if _, err := p.AppendRecords(codec.None, record.Record{Value: v}, record.Record{Value: v}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return logBytes(t, p)
}

// load appends a built log to p and moves p to epoch as leader or follower.
func load(t *testing.T, p *engine.Partition, log []byte, epoch int32, follower bool) {
	t.Helper()
	if len(log) > 0 {
		if _, err := p.AppendReplica(log); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if follower {
		err = p.BecomeFollower(epoch)
	} else {
		err = p.BecomeLeader(epoch)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestDivergence: a follower whose log has a tail the new leader never had
// truncates to the divergence point and then matches the leader byte for
// byte, through the Fetch diverging epoch (v12) and through
// OffsetForLeaderEpoch (Fetch capped at v11).
func TestDivergence(t *testing.T) {
	cases := []struct {
		name             string
		prefix           []step
		follower, leader []step
		leaderEpoch      int32
	}{
		{name: "extra tail", prefix: []step{{1, 3}}, follower: []step{{1, 2}}, leader: []step{{2, 3}}, leaderEpoch: 2},
		// KIP-279: the leader's answer names an epoch the follower does
		// not have at that point, so it takes two rounds.
		{name: "two rounds", prefix: []step{{1, 2}}, follower: []step{{1, 2}, {3, 2}}, leader: []step{{2, 3}, {4, 2}}, leaderEpoch: 4},
		{name: "follower behind", prefix: []step{{1, 2}, {2, 1}}, leader: []step{{3, 2}}, leaderEpoch: 3},
		{name: "empty new leader", follower: []step{{1, 3}}, leaderEpoch: 2},
		{name: "older epochs only", prefix: []step{{1, 1}, {2, 2}}, follower: []step{{2, 1}}, leader: []step{{3, 1}, {5, 1}}, leaderEpoch: 6},
	}
	for _, v := range []int16{12, 11} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("v%d/%s", v, c.name), func(t *testing.T) {
				prefix := buildLog(t, nil, "prefix", c.prefix...)
				flog := buildLog(t, prefix, "follower", c.follower...)
				llog := buildLog(t, prefix, "leader", c.leader...)
				l := startLeader(t, engine.Options{})
				info := l.topic("t", 1)
				lp := l.part("t", 0)
				load(t, lp, llog, c.leaderEpoch, false)
				produce(t, lp, codec.Snappy, 2, 3, 20) // and more in the leader's epoch
				fe := openFollower(t)
				fp := host(t, fe, info, 0, 0)
				load(t, fp, flog, c.leaderEpoch, true)
				req := newRequester(t)
				if v < 12 {
					req.fetchCap = v
				}
				f := newFetchers(t, fe, replica.Config{NodeID: 2, Request: req.request})
				f.Set([]replica.Assignment{l.asg(info, 0, 1, c.leaderEpoch)})
				waitSame(t, lp, fp)
				if n := req.count(23); (v < 12) != (n > 0) {
					t.Fatalf("%d OffsetForLeaderEpoch requests with Fetch v%d", n, v)
				}
				if s := statusOf(t, f, "t", 0); s.Err != nil || s.Truncating || s.Stopped {
					t.Fatalf("status %+v", s)
				}
			})
		}
	}
}

// TestTruncationBelowHighWatermarkRefused: a divergence below the
// follower's high watermark (which a clean election cannot produce) stops
// the partition with the engine's error; nothing is cut.
func TestTruncationBelowHighWatermarkRefused(t *testing.T) {
	for _, v := range []int16{12, 11} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			prefix := buildLog(t, nil, "prefix", step{1, 2})
			flog := buildLog(t, prefix, "follower", step{1, 2})
			llog := buildLog(t, prefix, "leader", step{2, 2})
			l := startLeader(t, engine.Options{})
			info := l.topic("t", 1)
			lp := l.part("t", 0)
			load(t, lp, llog, 2, false)
			fe := openFollower(t)
			fp := host(t, fe, info, 0, 0)
			load(t, fp, flog, 2, true)
			fp.SetHighWatermark(fp.EndOffset()) // "committed" the diverged tail
			before := logBytes(t, fp)
			req := newRequester(t)
			if v < 12 {
				req.fetchCap = v
			}
			f := newFetchers(t, fe, replica.Config{NodeID: 2, Request: req.request})
			f.Set([]replica.Assignment{l.asg(info, 0, 1, 2)})
			waitFor(t, "the partition to stop", func() bool { return statusOf(t, f, "t", 0).Stopped })
			if s := statusOf(t, f, "t", 0); !errors.Is(s.Err, engine.ErrBelowHighWatermark) {
				t.Fatalf("status %+v, want ErrBelowHighWatermark", s)
			}
			if !bytes.Equal(logBytes(t, fp), before) {
				t.Fatal("the follower log changed")
			}
		})
	}
}

// TestTruncationBelowHighWatermarkAfterUncleanElection: the same divergence
// below the follower's high watermark, under a leader whose epoch began
// with an unclean election the follower's log predates, is cut (the
// committed records that leader never had are lost, as Kafka loses them)
// and the follower catches up; an unclean election the follower's log has
// already followed (an epoch at or below its last batch's) allows nothing.
func TestTruncationBelowHighWatermarkAfterUncleanElection(t *testing.T) {
	for _, v := range []int16{12, 11} {
		for _, c := range []struct {
			uncleanEpoch int32
			cut          bool
		}{{2, true}, {1, false}} {
			t.Run(fmt.Sprintf("v%d/unclean-epoch-%d", v, c.uncleanEpoch), func(t *testing.T) {
				prefix := buildLog(t, nil, "prefix", step{1, 2})
				flog := buildLog(t, prefix, "follower", step{1, 2})
				llog := buildLog(t, prefix, "leader", step{2, 2})
				l := startLeader(t, engine.Options{})
				info := l.topic("t", 1)
				lp := l.part("t", 0)
				load(t, lp, llog, 2, false)
				fe := openFollower(t)
				fp := host(t, fe, info, 0, 0)
				load(t, fp, flog, 2, true)
				fp.SetHighWatermark(fp.EndOffset())
				before := logBytes(t, fp)
				req := newRequester(t)
				if v < 12 {
					req.fetchCap = v
				}
				f := newFetchers(t, fe, replica.Config{NodeID: 2, Request: req.request})
				asg := l.asg(info, 0, 1, 2)
				asg.UncleanEpoch = c.uncleanEpoch
				f.Set([]replica.Assignment{asg})
				if !c.cut {
					waitFor(t, "the partition to stop", func() bool { return statusOf(t, f, "t", 0).Stopped })
					if s := statusOf(t, f, "t", 0); !errors.Is(s.Err, engine.ErrBelowHighWatermark) {
						t.Fatalf("status %+v, want ErrBelowHighWatermark", s)
					}
					if !bytes.Equal(logBytes(t, fp), before) {
						t.Fatal("the follower log changed")
					}
					return
				}
				// Both logs end at the same offset: wait for the bytes.
				waitFor(t, "the follower log cut and refetched", func() bool { return bytes.Equal(logBytes(t, fp), logBytes(t, lp)) })
				waitSame(t, lp, fp)
				if s := statusOf(t, f, "t", 0); s.Err != nil || s.Truncating || s.Stopped {
					t.Fatalf("status %+v", s)
				}
			})
		}
	}
}
