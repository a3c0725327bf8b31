package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/easel-io/easel/bench/internal/pagecache"
)

// roleEnv makes the harness binary act as a helper process instead.
const roleEnv = "BENCH_PEERS_ROLE"

// maybeRunRole runs the helper role named by roleEnv, if any, and reports
// whether it did (the caller then exits).
func maybeRunRole() bool {
	switch os.Getenv(roleEnv) {
	case "sink":
		err := runSink() // returns only when accepting fails
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	return false
}

// runSink listens on a loopback port, prints it, and serves connections: a
// first byte 'T' means read and drop everything, then answer the byte count;
// 'P' means echo 64-byte messages until EOF. The process exits when stdin
// closes; runSink returns only the error that stopped it accepting.
func runSink() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var mode [1]byte
			if _, err := io.ReadFull(c, mode[:]); err != nil {
				return
			}
			switch mode[0] {
			case 'T':
				buf := make([]byte, 1<<20)
				var n int64
				for {
					k, err := c.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				_, _ = c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
			case 'P':
				var msg [64]byte
				for {
					if _, err := io.ReadFull(c, msg[:]); err != nil {
						return
					}
					if _, err := c.Write(msg[:]); err != nil {
						return
					}
				}
			}
		}()
	}
}

// measureLimits measures the machine: memory copy, sequential file writes
// into the page cache (after the warm-up, and into a preallocated file) and
// with fdatasync, loopback TCP bandwidth and round trips between two
// processes.
func measureLimits(ctx context.Context, dir string, d time.Duration, maxBytes int64) []result {
	var out []result
	add := func(r result, err error) {
		r.Target, r.Phase = "machine", phaseLimit
		if err != nil {
			r.Err = err.Error()
		}
		out = append(out, r)
	}
	add(limitMemcpy(d))
	// Each page-cache figure right after its own warm-up, so that neither
	// writes into pages freed more recently than the other's (this VM
	// hands freed pages back to its host within seconds).
	_, _, _ = warmPageCache(dir, maxBytes)
	add(limitFileWrite(dir, d, maxBytes, writeRecycled))
	_, _, _ = warmPageCache(dir, maxBytes)
	add(limitFileWrite(dir, d, maxBytes, writePrealloc))
	add(limitFileWrite(dir, d, maxBytes, writeFsync))
	tcp, rtt, err := limitLoopback(ctx, d, maxBytes)
	add(tcp, err)
	add(rtt, err)
	return out
}

// firstTouchLimit is the page-cache write rate before any warm-up: the
// harness measures it first, in round 1 only.
func firstTouchLimit(dir string, d time.Duration, maxBytes int64) result {
	r, err := limitFileWrite(dir, d, maxBytes, writeFirstTouch)
	r.Target, r.Phase = "machine", phaseLimit
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

func limitMemcpy(d time.Duration) (result, error) {
	const size = 64 << 20
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src) // fault the pages in
	var n int64
	start := time.Now()
	for time.Since(start) < d/2 {
		copy(dst, src)
		n += size
	}
	el := time.Since(start)
	return result{Metric: "memcpy", MBps: float64(n) / el.Seconds() / 1e6, Seconds: el.Seconds(),
		Note: "one goroutine copying 64 MiB buffers"}, nil
}

// Kinds of file-write limit.
const (
	writeRecycled   = iota // into the page cache, after the warm-up
	writeFirstTouch        // the same before any warm-up
	writePrealloc          // into a file fallocated first
	writeFsync             // 64 KiB writes, each followed by fdatasync
)

// limitFileWrite writes a new file sequentially in 1 MiB blocks (page
// cache), or in 64 KiB blocks each followed by fdatasync; see the kinds.
func limitFileWrite(dir string, d time.Duration, maxBytes int64, kind int) (result, error) {
	r := result{Metric: "file-write", Note: "sequential 1 MiB writes into the page cache, right after a warm-up (recycled pages)"}
	block := 1 << 20
	switch kind {
	case writeFirstTouch:
		r.Metric, r.Note = "file-write-first-touch", "the same before any warm-up (round 1 only): pages the machine may not have touched yet"
	case writePrealloc:
		r.Metric = "file-write-prealloc"
	case writeFsync:
		r.Metric, r.Note = "file-write-fsync", "sequential 64 KiB writes, each followed by fdatasync"
		block = 64 << 10
	}
	path := filepath.Join(dir, "limit-"+r.Metric)
	f, err := os.Create(path)
	if err != nil {
		return r, err
	}
	defer os.Remove(path)
	defer f.Close()
	if kind == writePrealloc {
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, maxBytes); err != nil {
			return r, fmt.Errorf("fallocate: %w", err)
		}
		r.Note = fmt.Sprintf("the same into a file fallocated first (KEEP_SIZE, %s, not timed), right after a warm-up", fmtBytes(maxBytes))
	}
	buf := make([]byte, block)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	h := newHist()
	var n int64
	start := time.Now()
	for time.Since(start) < d && n < maxBytes {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return r, err
		}
		if kind == writeFsync {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				return r, err
			}
		}
		_ = h.RecordValue(max(1, time.Since(t0).Microseconds()))
		n += int64(block)
	}
	el := time.Since(start)
	r.Seconds, r.MBps = el.Seconds(), float64(n)/el.Seconds()/1e6
	r.Value, r.Unit = float64(h.TotalCount())/el.Seconds(), "writes/s"
	r.Ack = summarise(h)
	return r, nil
}

// pageWarm is one page-cache warm-up: a file written and deleted before a
// target runs.
type pageWarm struct {
	Round   int     `json:"round"`
	Before  string  `json:"before"` // the target that runs next
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mb_per_s"`
	Err     string  `json:"error,omitempty"`
}

// warmPageCache writes n bytes to a file in dir and deletes it (see
// pagecache.Warm), returning how long that took and the rate.
func warmPageCache(dir string, n int64) (seconds, mbps float64, err error) {
	el, err := pagecache.Warm(filepath.Join(dir, "page-cache-warm-up"), n)
	if err != nil || el <= 0 {
		return 0, 0, err
	}
	return el.Seconds(), float64(n) / el.Seconds() / 1e6, nil
}

// limitLoopback starts this binary as a sink process and measures one TCP
// connection's bandwidth (1 MiB writes) and 64-byte round trips.
func limitLoopback(ctx context.Context, d time.Duration, maxBytes int64) (tcp, rtt result, err error) {
	tcp = result{Metric: "loopback-tcp", Note: "one connection to another process, 1 MiB writes"}
	rtt = result{Metric: "loopback-rtt", Note: "64-byte ping-pong with another process; latency in produce_ack_latency"}
	exe, err := os.Executable()
	if err != nil {
		return tcp, rtt, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), roleEnv+"=sink")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return tcp, rtt, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return tcp, rtt, err
	}
	if err := cmd.Start(); err != nil {
		return tcp, rtt, err
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return tcp, rtt, fmt.Errorf("sink did not start: %w", err)
	}
	addr := strings.TrimSpace(line)

	// Bandwidth.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return tcp, rtt, err
	}
	buf := make([]byte, 1<<20)
	if _, err := c.Write([]byte{'T'}); err != nil {
		c.Close()
		return tcp, rtt, err
	}
	var n int64
	start := time.Now()
	for time.Since(start) < d && n < 4*maxBytes {
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			c.Close()
			return tcp, rtt, err
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	var cnt [8]byte
	if _, err := io.ReadFull(c, cnt[:]); err != nil {
		c.Close()
		return tcp, rtt, err
	}
	el := time.Since(start)
	c.Close()
	if got := int64(binary.BigEndian.Uint64(cnt[:])); got != n {
		return tcp, rtt, fmt.Errorf("sink read %d bytes of %d", got, n)
	}
	tcp.Seconds, tcp.MBps = el.Seconds(), float64(n)/el.Seconds()/1e6

	// Round trips.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		return tcp, rtt, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{'P'}); err != nil {
		return tcp, rtt, err
	}
	h := newHist()
	var msg [64]byte
	start = time.Now()
	for time.Since(start) < d/2 {
		t0 := time.Now()
		if _, err := c.Write(msg[:]); err != nil {
			return tcp, rtt, err
		}
		if _, err := io.ReadFull(c, msg[:]); err != nil {
			return tcp, rtt, err
		}
		_ = h.RecordValue(max(1, time.Since(t0).Microseconds()))
	}
	el = time.Since(start)
	rtt.Seconds, rtt.Ack = el.Seconds(), summarise(h)
	rtt.Value, rtt.Unit = float64(h.TotalCount())/el.Seconds(), "round trips/s"
	if h.TotalCount() == 0 {
		return tcp, rtt, errors.New("no round trip completed")
	}
	return tcp, rtt, nil
}
