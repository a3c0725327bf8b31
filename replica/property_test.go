package replica_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/replica"
)

// TestConvergesProperty: with random batch sizes and codecs, produced while
// the follower fetches, and random fetch byte limits that cut batches (down
// to less than one batch, which KIP-74 still sends whole when first), the
// follower always ends byte-identical to the leader, over several
// partitions of one fetcher.
func TestConvergesProperty(t *testing.T) {
	codecs := []int8{codec.None, codec.Gzip, codec.Snappy, codec.LZ4, codec.Zstd}
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		l := startLeader(t, engine.Options{Defaults: engine.TopicConfig{SegmentBytes: int64(4096 + rng.IntN(64<<10))}})
		info := l.topic("p", 3)
		fe := openFollower(t)
		var as []replica.Assignment
		for i := range int32(3) {
			host(t, fe, info, i, 0)
			as = append(as, l.asg(info, i, 1, 0))
		}
		cfg := replica.Config{NodeID: 2, PartitionMaxBytes: int32(1 + rng.IntN(8<<10)), MaxBytes: int32(1 + rng.IntN(16<<10)), MinBytes: int32(1 + rng.IntN(4<<10))}
		f := newFetchers(t, fe, cfg)
		f.Set(as)
		for range 40 + rng.IntN(40) {
			p := l.part("p", int32(rng.IntN(3)))
			recs := make([]record.Record, 1+rng.IntN(20))
			for j := range recs {
				v := make([]byte, rng.IntN(2000))
				if rng.IntN(2) == 0 {
					for k := range v {
						v[k] = byte(rng.Uint32())
					}
				}
				recs[j] = record.Record{Key: []byte{byte(j)}, Value: v}
			}
			if _, err := p.AppendRecords(codecs[rng.IntN(len(codecs))], recs...); err != nil {
				t.Fatal(err)
			}
		}
		for i := range int32(3) {
			fp, err := fe.Partition("p", i)
			if err != nil {
				t.Fatal(err)
			}
			waitSame(t, l.part("p", i), fp)
		}
		f.Close()
		fe.Close()
	}
}

// TestOutOfRange: a follower log longer than the leader's, in an epoch the
// leader's log has never begun, is cut to the leader's end (Fetch
// OFFSET_OUT_OF_RANGE, then ListOffsets); a follower whose log ends below
// the leader's log start stops with replica.ErrStartOver (the engine cannot restart
// a log at another offset).
func TestOutOfRange(t *testing.T) {
	t.Run("longer", func(t *testing.T) {
		l := startLeader(t, engine.Options{})
		info := l.topic("t", 1)
		lp := l.part("t", 0) // empty, no epoch begun
		fe := openFollower(t)
		fp := host(t, fe, info, 0, 0)
		load(t, fp, buildLog(t, nil, "stale", step{0, 3}), 0, true)
		f := newFetchers(t, fe, replica.Config{NodeID: 2})
		f.Set([]replica.Assignment{l.asg(info, 0, 1, 0)})
		waitFor(t, "the truncation", func() bool { return fp.EndOffset() == 0 })
		produce(t, lp, codec.None, 2, 2, 10)
		waitSame(t, lp, fp)
	})
	t.Run("start over", func(t *testing.T) {
		l := startLeader(t, engine.Options{})
		info := l.topic("t", 1)
		lp := l.part("t", 0)
		produce(t, lp, codec.None, 3, 2, 10)
		if _, err := lp.DeleteRecords(4); err != nil {
			t.Fatal(err)
		}
		fe := openFollower(t)
		fp := host(t, fe, info, 0, 0)
		f := newFetchers(t, fe, replica.Config{NodeID: 2})
		f.Set([]replica.Assignment{l.asg(info, 0, 1, 0)})
		waitFor(t, "the partition to stop", func() bool { return statusOf(t, f, "t", 0).Stopped })
		if s := statusOf(t, f, "t", 0); !errors.Is(s.Err, replica.ErrStartOver) || fp.EndOffset() != 0 {
			t.Fatalf("status %+v", s)
		}
	})
}

// TestLogStartFollows: the leader's log start, moved by DeleteRecords, is
// taken up by the follower as far as its high watermark.
func TestLogStartFollows(t *testing.T) {
	l := startLeader(t, engine.Options{})
	info := l.topic("t", 1)
	lp := l.part("t", 0)
	produce(t, lp, codec.None, 4, 2, 10)
	fe := openFollower(t)
	fp := host(t, fe, info, 0, 0)
	f := newFetchers(t, fe, replica.Config{NodeID: 2})
	f.Set([]replica.Assignment{l.asg(info, 0, 1, 0)})
	waitSame(t, lp, fp)
	if _, err := lp.DeleteRecords(4); err != nil {
		t.Fatal(err)
	}
	produce(t, lp, codec.None, 1, 1, 10) // a response to carry the news
	waitFor(t, "the follower's log start", func() bool { return fp.StartOffset() == 4 })
	waitSame(t, lp, fp)
}
