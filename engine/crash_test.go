package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/easel-io/easel/record"
)

// The crash test runs an engine in a child process (this test binary,
// re-executed with crashChildEnv set) that appends continuously with
// flush.messages=1 and reports every acknowledged batch on stdout; the
// parent SIGKILLs it at random moments and checks the directory.

const (
	crashChildEnv = "EASEL_ENGINE_CRASH_CHILD" // the data directory
	crashEpochEnv = "EASEL_ENGINE_CRASH_EPOCH" // producer epoch for this child
	crashSeedEnv  = "EASEL_ENGINE_CRASH_SEED"
	crashTopic    = "crash"
	crashParts    = 3
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	if dir := os.Getenv(replicaCrashChildEnv); dir != "" {
		os.Exit(replicaCrashChild(dir))
	}
	if dir := os.Getenv(startOverChildEnv); dir != "" {
		os.Exit(startOverChild(dir))
	}
	if dir := os.Getenv(compactCrashChildEnv); dir != "" {
		os.Exit(compactCrashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild appends until killed. Each acknowledged append prints
//
//	A <partition> <baseOffset> <lastOffset> <sha256 of the stored bytes> <producerID> <epoch> <baseSequence> <records>
//
// One goroutine per partition appends idempotently (producer 5000+partition,
// epoch from the environment); two more append plain batches to partition
// 0 at the same time, so fsyncs are shared (group commit).
func crashChild(dir string) int {
	epoch, _ := strconv.Atoi(os.Getenv(crashEpochEnv))
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	e, err := Open(dir, quietOpts())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	if _, err := e.Topic(crashTopic); errors.Is(err, ErrUnknownTopic) {
		err = e.CreateTopic(crashTopic, TopicConfig{Partitions: crashParts, SegmentBytes: 32 << 10, FlushMessages: 1})
		if err != nil {
			fmt.Fprintln(os.Stderr, "create:", err)
			return 2
		}
	}
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(line string) {
		outMu.Lock()
		out.WriteString(line)
		out.Flush() // one write per line
		outMu.Unlock()
	}
	emit("R\n")
	stop := time.Now().Add(20 * time.Second) // in case the parent is gone
	var wg sync.WaitGroup
	worker := func(part int32, idem bool, wseed uint64) {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, wseed))
		p, err := e.Partition(crashTopic, part)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		pid := int64(-1)
		seq := int32(0)
		if idem {
			pid = 5000 + int64(part)
		}
		for time.Now().Before(stop) {
			recs := randRecords(r, time.Now().UnixMilli(), 1500)
			codes := codecs()
			raw, err := buildCrashBatch(recs, codes[r.IntN(len(codes))], pid, int16(epoch), seq)
			if err != nil {
				fmt.Fprintln(os.Stderr, "build:", err)
				os.Exit(2)
			}
			res, err := p.Append(raw)
			if err != nil {
				fmt.Fprintln(os.Stderr, "append:", err)
				os.Exit(3)
			}
			sum := sha256.Sum256(raw) // raw now holds the stored bytes
			emit(fmt.Sprintf("A %d %d %d %s %d %d %d %d\n", part, res.BaseOffset, res.LastOffset, hex.EncodeToString(sum[:]), pid, epoch, seq, len(recs)))
			if idem {
				seq += int32(len(recs))
			}
		}
	}
	for part := range int32(crashParts) {
		wg.Add(1)
		go worker(part, true, uint64(part))
	}
	for i := range 2 {
		wg.Add(1)
		go worker(0, false, uint64(100+i))
	}
	wg.Wait()
	e.Close()
	return 0
}

// crashTestSeed returns the seed of a kill test (time-based; EASEL_SEED
// replays one), a generator of it on stream, and a Fatalf that names the
// seed.
func crashTestSeed(t *testing.T, stream uint64) (uint64, *rand.Rand, func(format string, args ...any)) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EASEL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (rerun with EASEL_SEED=%d): %s", seed, seed, fmt.Sprintf(format, args...))
	}
	return seed, rand.New(rand.NewPCG(seed, stream)), fail
}

func buildCrashBatch(recs []record.Record, c int8, pid int64, epoch int16, seq int32) ([]byte, error) {
	opts := record.BuilderOptions{Codec: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if pid >= 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, epoch, seq
	}
	b := record.NewBuilder(opts)
	for _, r := range recs {
		b.Add(r)
	}
	return b.AppendTo(nil)
}

type crashAck struct {
	part       int32
	base, last int64
	sum        string
	pid        int64
	epoch      int16
	seq, nrecs int32
	round      int
}

func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	seed, r, fail := crashTestSeed(t, 1)
	dir := t.TempDir()
	fds := openFDs(t)
	// acked[part][base] is every acknowledged batch; seen[part] is the
	// sha256 of every batch the parent saw in the log after the last
	// recovery, which must never change afterwards.
	acked := make([]map[int64]crashAck, crashParts)
	for i := range acked {
		acked[i] = map[int64]crashAck{}
	}
	seen := make([][]string, crashParts)
	rounds, totalAcks := 24, 0
	start := time.Now()
	for round := 1; round <= rounds; round++ {
		cmd, lines, stderr, err := startChild(t, crashChildEnv+"="+dir,
			crashEpochEnv+"="+strconv.Itoa(round), crashSeedEnv+"="+strconv.FormatUint(seed+uint64(round), 10))
		if err != nil {
			fail("round %d: %v", round, err)
		}
		var got []string
		time.Sleep(time.Duration(20+r.IntN(280)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			fail("round %d: kill: %v", round, err)
		}
		for l := range lines {
			got = append(got, l)
		}
		werr := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			fail("round %d: child ended by itself (%v): %s", round, werr, stderr.String())
		}
		for _, l := range got {
			a, err := parseAck(l)
			if err != nil {
				fail("round %d: %v", round, err)
			}
			a.round = round
			if prev, ok := acked[a.part][a.base]; ok {
				fail("round %d: offset %d of partition %d acknowledged twice (round %d and %d)", round, a.base, a.part, prev.round, round)
			}
			acked[a.part][a.base] = a
			totalAcks++
		}

		// Recover in the parent and check.
		e := mustOpen(t, dir, quietOpts())
		if e.clean {
			fail("round %d: a killed engine left a clean-shutdown marker", round)
		}
		for part := range int32(crashParts) {
			p, err := e.Partition(crashTopic, part)
			if err != nil {
				fail("round %d: %v", round, err)
			}
			batches := readAllBatches(t, p) // every stored batch validates
			sums := make([]string, len(batches))
			next := int64(0)
			for i, b := range batches {
				h, _ := record.ParseHeader(b)
				if h.BaseOffset != next {
					fail("round %d: partition %d: batch %d starts at %d, want %d", round, part, i, h.BaseOffset, next)
				}
				next = h.LastOffset() + 1
				s := sha256.Sum256(b)
				sums[i] = hex.EncodeToString(s[:])
			}
			if next != p.EndOffset() {
				fail("round %d: partition %d: batches end at %d, EndOffset %d", round, part, next, p.EndOffset())
			}
			// Nothing seen before changed or went missing.
			if len(sums) < len(seen[part]) {
				fail("round %d: partition %d: %d batches, %d before", round, part, len(sums), len(seen[part]))
			}
			for i := range seen[part] {
				if sums[i] != seen[part][i] {
					fail("round %d: partition %d: batch %d changed since the last recovery", round, part, i)
				}
			}
			seen[part] = sums
			// Every acknowledged batch is there, byte for byte.
			byBase := make(map[int64]string, len(batches))
			for i, b := range batches {
				h, _ := record.ParseHeader(b)
				byBase[h.BaseOffset] = sums[i]
			}
			var lastIdem *crashAck
			for _, a := range acked[part] {
				if byBase[a.base] != a.sum {
					fail("round %d: partition %d: acknowledged batch at %d (round %d) lost or changed", round, part, a.base, a.round)
				}
				if a.round == round && a.pid >= 0 && (lastIdem == nil || a.base > lastIdem.base) {
					lastIdem = &a
				}
			}
			// The producer state survived: a retry of the newest
			// acknowledged idempotent batch is a duplicate.
			if lastIdem != nil {
				recs := make([]record.Record, lastIdem.nrecs)
				retry, err := buildCrashBatch(recs, 0, lastIdem.pid, lastIdem.epoch, lastIdem.seq)
				if err != nil {
					t.Fatal(err)
				}
				res, err := p.Append(retry)
				if err != nil || !res.Duplicate || res.BaseOffset != lastIdem.base {
					fail("round %d: partition %d: retry of acknowledged batch at %d: %+v, %v", round, part, lastIdem.base, res, err)
				}
			}
			// Appends continue from the end.
			end := p.EndOffset()
			res, err := p.Append(simpleBatch(t, 2, 10, time.Now().UnixMilli()))
			if err != nil || res.BaseOffset != end {
				fail("round %d: partition %d: append after recovery: %+v, %v (end %d)", round, part, res, err, end)
			}
		}
		// Leave the directory as a clean shutdown or as another crash.
		if r.IntN(3) == 0 {
			if err := e.Close(); err != nil {
				fail("round %d: close: %v", round, err)
			}
		} else {
			e.crash()
		}
	}
	if totalAcks < rounds {
		t.Fatalf("only %d acknowledged appends in %d rounds", totalAcks, rounds)
	}
	if n := openFDs(t); n > fds {
		t.Fatalf("descriptors leaked: %d before, %d after", fds, n)
	}
	t.Logf("seed %d: %d rounds, %d acknowledged batches, %v", seed, rounds, totalAcks, time.Since(start).Round(time.Millisecond))
}

func parseAck(l string) (crashAck, error) {
	f := strings.Fields(l)
	if len(f) != 9 || f[0] != "A" {
		return crashAck{}, fmt.Errorf("bad line from child: %q", l)
	}
	n := make([]int64, 9)
	for _, i := range []int{1, 2, 3, 5, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return crashAck{}, fmt.Errorf("bad line from child: %q", l)
		}
		n[i] = v
	}
	return crashAck{part: int32(n[1]), base: n[2], last: n[3], sum: f[4], pid: n[5], epoch: int16(n[6]), seq: int32(n[7]), nrecs: int32(n[8])}, nil
}

// startChild re-executes the test binary with env added and returns once the
// child printed its ready line "R": the running command, its stdout lines
// (with their newline; a last line cut short by a kill is dropped), and its
// stderr.
func startChild(t *testing.T, env ...string) (*exec.Cmd, <-chan string, *bytes.Buffer, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	go func() {
		defer close(lines)
		br := bufio.NewReader(stdout)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return // a last line without its newline was cut by the kill
			}
			lines <- l
		}
	}()
	select {
	case l, ok := <-lines:
		if ok && l == "R\n" {
			return cmd, lines, stderr, nil
		}
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, nil, fmt.Errorf("child did not start: %q %s", l, stderr.String())
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, nil, fmt.Errorf("child did not start: %s", stderr.String())
	}
}
