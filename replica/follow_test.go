package replica_test

import (
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/replica"
)

// TestFollow: a follower of a real broker gets a byte-identical log over
// several partitions and topics, and its high watermark follows the
// leader's (which the test moves by hand: the leader's is managed too).
func TestFollow(t *testing.T) {
	l := startLeader(t, engine.Options{ManagedHighWatermarks: true})
	a, b := l.topic("a", 2), l.topic("b", 1)
	fe := openFollower(t)
	type pair struct{ l, f *engine.Partition }
	var pairs []pair
	var as []replica.Assignment
	for _, x := range []struct {
		info engine.TopicInfo
		p    int32
	}{{a, 0}, {a, 1}, {b, 0}} {
		lp := l.part(x.info.Name, x.p)
		produce(t, lp, codec.None, 5, 3, 100)
		pairs = append(pairs, pair{lp, host(t, fe, x.info, x.p, 0)})
		as = append(as, l.asg(x.info, x.p, 1, 0))
	}
	f := newFetchers(t, fe, replica.Config{NodeID: 2})
	f.Set(as)
	for _, pr := range pairs {
		waitFor(t, "the follower log end", func() bool { return pr.f.EndOffset() == pr.l.EndOffset() })
		if hw := pr.f.HighWatermark(); hw != 0 {
			t.Fatalf("follower high watermark %d before the leader's moved", hw)
		}
		pr.l.SetHighWatermark(pr.l.EndOffset())
		waitSame(t, pr.l, pr.f)
	}
	// More records, with compression; the high watermark trails.
	produce(t, pairs[0].l, codec.Zstd, 10, 20, 50)
	hw := pairs[0].l.EndOffset()
	produce(t, pairs[0].l, codec.LZ4, 3, 5, 10)
	pairs[0].l.SetHighWatermark(hw)
	waitFor(t, "the follower high watermark", func() bool { return pairs[0].f.HighWatermark() == hw })
	pairs[0].l.SetHighWatermark(pairs[0].l.EndOffset())
	waitSame(t, pairs[0].l, pairs[0].f)
	waitFor(t, "caught up", func() bool { return statusOf(t, f, "a", 0).CaughtUp })
	if s := statusOf(t, f, "a", 0); s.Err != nil || s.Lag != 0 || s.Truncating || s.Stopped {
		t.Fatalf("status %+v", s)
	}
}
