package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
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

// The compaction SIGKILL test runs an engine in a child process that
// appends keyed records and tombstones to a compacted topic while it
// compacts it again and again; the parent kills it at random moments (20
// rounds, most of them in the middle of a pass) and checks after each
// recovery that the latest acknowledged record of every key is in the log,
// or a later one of that key.

const (
	compactCrashChildEnv = "EASEL_ENGINE_COMPACT_CRASH_CHILD" // the data directory
	compactCrashRoundEnv = "EASEL_ENGINE_COMPACT_CRASH_ROUND"
	compactCrashKeys     = 40
)

// compactCrashChild appends until killed, printing each acknowledged record
// as "A <offset> <key> <value or -, for a tombstone>".
func compactCrashChild(dir string) int {
	round, _ := strconv.Atoi(os.Getenv(compactCrashRoundEnv))
	e, err := Open(dir, quietOpts())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	if _, err := e.Topic("c"); errors.Is(err, ErrUnknownTopic) {
		cfg := TopicConfig{Partitions: 1, SegmentBytes: 2048}
		for k, v := range map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0"} {
			if err := cfg.Set(k, v); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		if err := e.CreateTopic("c", cfg); err != nil {
			fmt.Fprintln(os.Stderr, "create:", err)
			return 2
		}
	}
	p, err := e.Partition("c", 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	out.WriteString("R\n")
	out.Flush()
	stop := time.Now().Add(20 * time.Second) // in case the parent is gone
	go func() {
		for time.Now().Before(stop) {
			if _, err := e.EnforceRetention(); err != nil {
				fmt.Fprintln(os.Stderr, "compact:", err)
				os.Exit(3)
			}
		}
	}()
	r := rand.New(rand.NewPCG(uint64(round), 9))
	for n := 0; time.Now().Before(stop); n++ {
		k := r.IntN(compactCrashKeys)
		rec := record.Record{Key: []byte("k" + strconv.Itoa(k)), Timestamp: time.Now().UnixMilli()}
		shown := "-"
		if r.IntN(8) != 0 {
			shown = fmt.Sprintf("r%d/k%d/%d", round, k, n)
			rec.Value = []byte(shown)
		}
		raw, err := buildCrashBatch([]record.Record{rec}, int8(n%5), -1, 0, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			return 2
		}
		res, err := p.Append(raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			return 3
		}
		out.WriteString(fmt.Sprintf("A %d k%d %s\n", res.BaseOffset, k, shown))
		out.Flush()
	}
	e.Close()
	return 0
}

type compactAck struct {
	off   int64
	value string // "-": tombstone
}

func TestCompactionCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	seed, r, fail := crashTestSeed(t, 3)
	dir := t.TempDir()
	latest := make(map[string]compactAck)
	var logs syncBuffer
	opts := quietOpts()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	acks := 0
	for round := 1; round <= 20; round++ {
		cmd, lines, stderr, err := startChild(t, compactCrashChildEnv+"="+dir, compactCrashRoundEnv+"="+strconv.FormatUint(seed%1000*100+uint64(round), 10))
		if err != nil {
			fail("round %d: %v", round, err)
		}
		time.Sleep(time.Duration(100+r.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			fail("round %d: kill: %v", round, err)
		}
		for l := range lines {
			f := strings.Fields(l)
			if len(f) != 4 || f[0] != "A" {
				fail("round %d: bad line %q", round, l)
			}
			off, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				fail("round %d: bad line %q", round, l)
			}
			latest[f[2]] = compactAck{off: off, value: f[3]}
			acks++
		}
		werr := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			fail("round %d: child ended by itself (%v): %s", round, werr, stderr.String())
		}

		e := mustOpen(t, dir, opts)
		p, err := e.Partition("c", 0)
		if err != nil {
			fail("round %d: %v", round, err)
		}
		inLog := make(map[string]compactAck)
		it := p.Records(p.StartOffset())
		prev := int64(-1)
		for it.Next() {
			rec := it.Record()
			if rec.Offset <= prev {
				fail("round %d: offset %d after %d", round, rec.Offset, prev)
			}
			prev = rec.Offset
			v := "-"
			if rec.Value != nil {
				v = string(rec.Value)
				if parts := strings.Split(v, "/"); len(parts) != 3 || parts[1] != string(rec.Key) {
					fail("round %d: offset %d: key %q holds %q", round, rec.Offset, rec.Key, v)
				}
			}
			inLog[string(rec.Key)] = compactAck{off: rec.Offset, value: v}
		}
		if err := it.Close(); err != nil {
			fail("round %d: read: %v", round, err)
		}
		for k, a := range latest {
			got, ok := inLog[k]
			switch {
			case !ok:
				fail("round %d: key %s lost (acknowledged %q at %d)", round, k, a.value, a.off)
			case got.off < a.off:
				fail("round %d: key %s: latest in the log at %d, acknowledged at %d", round, k, got.off, a.off)
			case got.off == a.off && got.value != a.value:
				fail("round %d: key %s at %d holds %q, acknowledged %q", round, k, a.off, got.value, a.value)
			}
		}
		e.crash() // the next child recovers too
	}
	out := logs.String()
	t.Logf("%d acknowledged records; interrupted swaps found at open: %d finished, %d undone",
		acks, strings.Count(out, "finishing an interrupted compaction swap"), strings.Count(out, "undoing"))
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a logger).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
