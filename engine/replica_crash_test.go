package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

// The replica crash test runs, in a child process, a leader partition and a
// follower partition that copies it with AppendReplica and now and then
// truncates itself (unclean, to any offset) and copies again; the parent
// SIGKILLs it at random moments, during truncations and follower appends,
// and checks that the follower's log is valid, a byte prefix of the
// leader's, with an epoch cache that covers it, and no shorter than what
// was acknowledged.

const replicaCrashChildEnv = "EASEL_ENGINE_REPLICA_CRASH_CHILD" // the data directory

// replicaCrashChild prints "R" when ready, then for every acknowledged
// follower operation "D <follower log end>", and "T <offset>" before each
// truncation starts.
func replicaCrashChild(dir string) int {
	_, l, f, r, _, code := openCrashPair(dir, 8<<10, 7)
	if code != 0 {
		return code
	}
	out := bufio.NewWriter(os.Stdout)
	emit := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	emit("R")
	stop := time.Now().Add(20 * time.Second)
	var held Chunk // a reader holding follower bytes makes truncation copy
	defer held.Release()
	for time.Now().Before(stop) {
		for range 1 + r.IntN(3) {
			recs := randRecords(r, 0, 300)
			b, err := buildCrashBatch(recs, 0, -1, -1, -1)
			if err == nil {
				_, err = l.Append(b)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "leader append:", err)
				return 2
			}
		}
		for f.EndOffset() < l.EndOffset() {
			c, err := l.ReadBatches(f.EndOffset(), 1+r.IntN(20<<10))
			if err != nil {
				fmt.Fprintln(os.Stderr, "leader read:", err)
				return 2
			}
			_, err = f.AppendReplica(c.Bytes)
			c.Release()
			if err != nil {
				fmt.Fprintln(os.Stderr, "follower append:", err)
				return 2
			}
			emit("D %d", f.EndOffset())
		}
		held.Release()
		if r.IntN(2) == 0 {
			held, _ = f.ReadBatches(f.StartOffset()+r.Int64N(f.EndOffset()-f.StartOffset()+1), 4<<10)
		}
		if r.IntN(2) == 0 && f.EndOffset() > f.StartOffset() {
			to := f.StartOffset() + r.Int64N(f.EndOffset()-f.StartOffset())
			emit("T %d", to)
			end, err := f.TruncateTo(to, true)
			if err != nil {
				fmt.Fprintln(os.Stderr, "truncate:", err)
				return 2
			}
			emit("D %d", end)
		}
	}
	return 0
}

func TestReplicaCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	seed, r, fail := crashTestSeed(t, 2)
	dir := t.TempDir()
	// 40 rounds: the even ones kill the child as soon as it announces a
	// truncation, so that the kill lands during it; the odd ones at a random
	// moment, mostly during follower appends.
	const rounds = 40
	truncKills, appendKills := 0, 0
	for round := 1; round <= rounds; round++ {
		cmd, lines, stderr, err := startChild(t, replicaCrashChildEnv+"="+dir,
			crashEpochEnv+"="+strconv.Itoa(round), crashSeedEnv+"="+strconv.FormatUint(seed+uint64(round), 10))
		if err != nil {
			fail("round %d: %v", round, err)
		}
		time.Sleep(time.Duration(10+r.IntN(150)) * time.Millisecond)
		var early []string
		if round%2 == 0 {
			early = untilTruncation(lines, 10*time.Second)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		lastD, pendingT := int64(-1), int64(-1)
		for l := range lines {
			early = append(early, l)
		}
		for _, l := range early {
			l = strings.TrimSpace(l)
			var v int64
			switch {
			case strings.HasPrefix(l, "D "):
				v, _ = strconv.ParseInt(l[2:], 10, 64)
				lastD, pendingT = v, -1
			case strings.HasPrefix(l, "T "):
				v, _ = strconv.ParseInt(l[2:], 10, 64)
				pendingT = v
			}
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			fail("round %d: child ended on its own: %v %s", round, err, stderr.String())
		}
		if pendingT >= 0 {
			truncKills++
		} else {
			appendKills++
		}
		e := mustOpen(t, dir, quietOpts())
		l, _ := e.Partition("lead", 0)
		f, _ := e.Partition("foll", 0)
		lead := readAllBatches(t, l)
		foll := readAllBatches(t, f)
		if len(foll) > len(lead) || !bytes.Equal(bytes.Join(foll, nil), bytes.Join(lead[:len(foll)], nil)) {
			fail("round %d: follower (%d batches) is not a prefix of the leader (%d)", round, len(foll), len(lead))
		}
		// The follower keeps what was acknowledged, except what a truncation
		// in progress may have cut: down to the batch holding its offset.
		low := lastD
		if pendingT >= 0 {
			for _, b := range lead {
				h, _ := record.ParseHeader(b)
				if h.BaseOffset <= pendingT && pendingT <= h.LastOffset() {
					low = min(low, h.BaseOffset)
				}
			}
			low = min(low, pendingT)
		}
		if f.EndOffset() < low {
			fail("round %d: follower ends at %d, acknowledged %d (truncating to %d)", round, f.EndOffset(), lastD, pendingT)
		}
		for _, b := range foll {
			h, _ := record.ParseHeader(b)
			if ep, end := f.EndOffsetForEpoch(h.PartitionLeaderEpoch); ep != h.PartitionLeaderEpoch || end <= h.LastOffset() {
				fail("round %d: epoch cache answers (%d, %d) for the batch at %d of epoch %d", round, ep, end, h.BaseOffset, h.PartitionLeaderEpoch)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if truncKills < rounds/4 {
		fail("only %d of %d kills landed during a truncation", truncKills, rounds)
	}
	t.Logf("seed %d: %d rounds, %d killed during a truncation, %d during appends", seed, rounds, truncKills, appendKills)
}

// untilTruncation reads lines until one announces a truncation ("T ..."),
// the channel closes or the timeout passes, and returns what it read.
func untilTruncation(lines <-chan string, timeout time.Duration) []string {
	var got []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return got
			}
			got = append(got, l)
			if strings.HasPrefix(strings.TrimSpace(l), "T ") {
				return got
			}
		case <-deadline:
			return got
		}
	}
}

// openCrashPair is the shared start of the replica crash children: it opens
// dir and returns a leader partition "lead" and a follower "foll" (created
// with segBytes segments and flush.messages=1 if missing) in the round's
// epoch, and the random source of the round's seed (stream salt), or an
// exit code after printing why to stderr.
func openCrashPair(dir string, segBytes int64, salt uint64) (e *Engine, l, f *Partition, r *rand.Rand, round int, code int) {
	round, _ = strconv.Atoi(os.Getenv(crashEpochEnv))
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	r = rand.New(rand.NewPCG(seed, salt))
	e, err := Open(dir, quietOpts())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return nil, nil, nil, nil, 0, 2
	}
	for _, name := range []string{"lead", "foll"} {
		if _, err := e.Topic(name); err != nil {
			if err := e.CreateTopic(name, TopicConfig{SegmentBytes: segBytes, FlushMessages: 1}); err != nil {
				fmt.Fprintln(os.Stderr, "create:", err)
				return nil, nil, nil, nil, 0, 2
			}
		}
	}
	l, _ = e.Partition("lead", 0)
	f, _ = e.Partition("foll", 0)
	if err := l.BecomeLeader(int32(round)); err != nil {
		fmt.Fprintln(os.Stderr, "leader:", err)
		return nil, nil, nil, nil, 0, 2
	}
	if err := f.BecomeFollower(int32(round)); err != nil {
		fmt.Fprintln(os.Stderr, "follower:", err)
		return nil, nil, nil, nil, 0, 2
	}
	return e, l, f, r, round, 0
}
