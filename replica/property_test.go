package replica_test

import (
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
// the leader's log start starts it over there (at the base of the batch
// holding the leader's start when DeleteRecords put that inside a batch)
// and ends byte-identical to the leader, log start included.
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
	// The leader holds batches [0,1] [2,3] [4,5] [6,7] [8,9].
	for _, tc := range []struct {
		name   string
		has    int   // leader batches the follower holds
		before int64 // the leader's DeleteRecords
	}{
		{"start over, empty follower", 0, 4},
		{"start over, empty follower, start in a batch", 0, 5},
		{"start over, short follower", 1, 6},
		{"start over, short follower, start in a batch", 1, 7},
		{"leader's start in the batch after the follower's end", 1, 3},
		{"leader's start at the follower's end", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLeader(t, engine.Options{})
			info := l.topic("t", 1)
			lp := l.part("t", 0)
			produce(t, lp, codec.None, 5, 2, 10)
			fe := openFollower(t)
			fp := host(t, fe, info, 0, 0)
			if tc.has > 0 {
				if _, err := fp.AppendReplica(splitLog(t, logBytes(t, lp))[0]); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := lp.DeleteRecords(tc.before); err != nil {
				t.Fatal(err)
			}
			f := newFetchers(t, fe, replica.Config{NodeID: 2})
			f.Set([]replica.Assignment{l.asg(info, 0, 1, 0)})
			waitFor(t, "the follower's log start", func() bool { return fp.StartOffset() == lp.StartOffset() })
			waitSame(t, lp, fp)
			if s := statusOf(t, f, "t", 0); s.Stopped {
				t.Fatalf("stopped: %v", s.Err)
			}
			produce(t, lp, codec.Zstd, 2, 3, 10)
			waitSame(t, lp, fp)
		})
	}
}

// splitLog splits a log's bytes into its batches.
func splitLog(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		batch, rest, err := record.Split(b)
		if err != nil {
			t.Fatal(err)
		}
		out, b = append(out, batch), rest
	}
	return out
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
