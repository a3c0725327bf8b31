package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

// The start-over crash test runs, in a child process, a leader partition
// and a follower that copies it through a FollowerWriter and now and then
// starts its log over at the leader's log end (TruncateFullyAndStartAt);
// the parent SIGKILLs it at random moments, half of the rounds right as a
// start over begins, and checks that the follower's log is exactly the old
// one or empty at the new start, and always a byte copy of a run of the
// leader's batches.

const startOverChildEnv = "EASEL_ENGINE_STARTOVER_CHILD" // the data directory

// startOverChild prints "R" when ready, then "D <start> <end>" after every
// acknowledged follower write and "S <start> <end> <offset>" before each
// start over.
func startOverChild(dir string) int {
	_, l, f, r, round, code := openCrashPair(dir, 4<<10, 11)
	if code != 0 {
		return code
	}
	w, err := f.Follower(int32(round))
	if err != nil {
		fmt.Fprintln(os.Stderr, "follower:", err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	emit := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	emit("R")
	stop := time.Now().Add(20 * time.Second)
	var held Chunk // a reader holding follower bytes across the start over
	defer held.Release()
	for time.Now().Before(stop) {
		for range 1 + r.IntN(4) {
			b, err := buildCrashBatch(randRecords(r, 0, 300), 0, -1, -1, -1)
			if err == nil {
				_, err = l.Append(b)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "leader append:", err)
				return 2
			}
		}
		held.Release()
		if f.EndOffset() > f.StartOffset() && r.IntN(2) == 0 {
			held, _ = f.ReadBatches(f.StartOffset(), 4<<10)
		}
		if r.IntN(3) == 0 {
			off := l.EndOffset()
			emit("S %d %d %d", f.StartOffset(), f.EndOffset(), off)
			if err := w.TruncateFullyAndStartAt(off); err != nil {
				fmt.Fprintln(os.Stderr, "start over:", err)
				return 2
			}
			emit("D %d %d", f.StartOffset(), f.EndOffset())
		}
		for f.EndOffset() < l.EndOffset() {
			c, err := l.ReadBatches(f.EndOffset(), 1+r.IntN(8<<10))
			if err != nil {
				fmt.Fprintln(os.Stderr, "leader read:", err)
				return 2
			}
			_, err = w.Append(c.Bytes)
			c.Release()
			if err != nil {
				fmt.Fprintln(os.Stderr, "follower append:", err)
				return 2
			}
			emit("D %d %d", f.StartOffset(), f.EndOffset())
		}
	}
	return 0
}

func TestStartOverCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	seed, r, fail := crashTestSeed(t, 3)
	dir := t.TempDir()
	const rounds = 24
	duringKills, committed := 0, 0
	for round := 1; round <= rounds; round++ {
		cmd, lines, stderr, err := startChild(t, startOverChildEnv+"="+dir,
			crashEpochEnv+"="+strconv.Itoa(round), crashSeedEnv+"="+strconv.FormatUint(seed+uint64(round), 10))
		if err != nil {
			fail("round %d: %v", round, err)
		}
		time.Sleep(time.Duration(10+r.IntN(120)) * time.Millisecond)
		var early []string
		if round%2 == 0 {
			early = untilPrefix(lines, "S ", 10*time.Second)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines {
			early = append(early, l)
		}
		var acked [2]int64 // start, end
		var pending [3]int64
		haveAck, havePending := false, false
		for _, l := range early {
			f := strings.Fields(l)
			n := make([]int64, len(f))
			for i := 1; i < len(f); i++ {
				n[i], _ = strconv.ParseInt(f[i], 10, 64)
			}
			switch {
			case len(f) == 3 && f[0] == "D":
				acked, haveAck, havePending = [2]int64{n[1], n[2]}, true, false
			case len(f) == 4 && f[0] == "S":
				pending, havePending = [3]int64{n[1], n[2], n[3]}, true
			}
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			fail("round %d: child ended on its own: %v %s", round, err, stderr.String())
		}
		e := mustOpen(t, dir, quietOpts())
		l, _ := e.Partition("lead", 0)
		f, _ := e.Partition("foll", 0)
		start, end := f.StartOffset(), f.EndOffset()
		switch {
		case havePending:
			duringKills++
			old := start == pending[0] && end == pending[1]
			if !old && (start != pending[2] || end != pending[2]) {
				fail("round %d: killed starting [%d, %d) over at %d: the log is [%d, %d)", round, pending[0], pending[1], pending[2], start, end)
			}
			if !old {
				committed++
			}
		case haveAck:
			if start != acked[0] || end < acked[1] {
				fail("round %d: the log is [%d, %d), acknowledged [%d, %d)", round, start, end, acked[0], acked[1])
			}
		}
		// A byte copy of the leader's batches from start to end.
		var want []byte
		for _, b := range readAllBatches(t, l) {
			h, _ := record.ParseHeader(b)
			if h.BaseOffset >= start && h.LastOffset() < end {
				want = append(want, b...)
			}
		}
		foll := bytes.Join(readAllBatches(t, f), nil)
		if !bytes.Equal(foll, want) {
			fail("round %d: follower log [%d, %d) (%d bytes) is not the leader's (%d bytes)", round, start, end, len(foll), len(want))
		}
		for _, b := range readAllBatches(t, f) {
			h, _ := record.ParseHeader(b)
			if ep, to := f.EndOffsetForEpoch(h.PartitionLeaderEpoch); ep != h.PartitionLeaderEpoch || to <= h.LastOffset() {
				fail("round %d: epoch cache answers (%d, %d) for the batch at %d of epoch %d", round, ep, to, h.BaseOffset, h.PartitionLeaderEpoch)
			}
		}
		if start == end {
			for ep := int32(0); ep <= int32(round); ep++ {
				if a, b := f.EndOffsetForEpoch(ep); a != UndefinedEpoch || b != UndefinedOffset {
					fail("round %d: empty log at %d answers (%d, %d) for epoch %d", round, start, a, b, ep)
				}
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if duringKills < rounds/4 {
		fail("only %d of %d kills landed during a start over", duringKills, rounds)
	}
	t.Logf("seed %d: %d rounds, %d killed during a start over (%d of them after its commit)", seed, rounds, duringKills, committed)
}

// untilPrefix reads lines until one starts with prefix, the channel closes
// or the timeout passes, and returns what it read.
func untilPrefix(lines <-chan string, prefix string, timeout time.Duration) []string {
	var got []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return got
			}
			got = append(got, l)
			if strings.HasPrefix(l, prefix) {
				return got
			}
		case <-deadline:
			return got
		}
	}
}
