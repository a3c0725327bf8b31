package replica

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/internal/kclient"
)

// Sentinel errors, for errors.Is. A partition's Status.Err wraps one of
// these, an engine error or a Kafka error (kerr).
var (
	// ErrNotFollower: the engine's partition is not a follower in the
	// assignment's leader epoch (the broker must call BecomeFollower
	// before Set), or stopped being one before a write (the error then
	// wraps engine.ErrNotFollowerInEpoch). The partition is skipped and
	// looked at again after Config.Backoff.
	ErrNotFollower = errors.New("replica: engine partition is not a follower in the assignment's leader epoch")
	// ErrFenced: the leader answered FENCED_LEADER_EPOCH, so the
	// assignment is older than the leader's. The partition is stopped
	// until Set gives a newer one.
	ErrFenced = errors.New("replica: leader epoch fenced by the leader")
)

// Defaults, by their Kafka names.
const (
	DefaultMaxWait           = 500 * time.Millisecond // replica.fetch.wait.max.ms
	DefaultMinBytes          = 1                      // replica.fetch.min.bytes
	DefaultMaxBytes          = 10 << 20               // replica.fetch.response.max.bytes
	DefaultPartitionMaxBytes = 1 << 20                // replica.fetch.max.bytes
	DefaultBackoff           = time.Second            // replica.fetch.backoff.ms
	DefaultRequestTimeout    = 30 * time.Second       // replica.socket.timeout.ms
)

// maxFetchVersion caps Fetch: v13+ names topics by id and v15 moves the
// replica id into ReplicaState; Easel's broker serves v4–12.
const maxFetchVersion = 12

// Config configures Fetchers. Engine is required; zero fields take the
// defaults named on each.
type Config struct {
	// NodeID is this broker's id, sent as replica_id: the leader reads up
	// to its log end for it and tracks its progress.
	NodeID int32
	// Engine holds the follower partitions. It should be opened with
	// Options.ManagedHighWatermarks, or SetHighWatermark does nothing and
	// the high watermark follows the local log end instead of the
	// leader's.
	Engine *engine.Engine
	// Request sends one request to a broker's Kafka address and returns
	// its response (kclient.Client.Request's contract: the version sent is
	// left set on req, and a version set before is a cap). Default: a
	// kclient.Client owned and closed by the Fetchers. Tests wrap it to
	// inject faults.
	Request func(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error)
	// MaxWait is replica.fetch.wait.max.ms: how long the leader may hold a
	// fetch waiting for MinBytes. Default 500 ms. Longer delays noticing a
	// leader change (a Set that adds or restarts a partition cuts the wait
	// short).
	MaxWait time.Duration
	// MinBytes is replica.fetch.min.bytes. Default 1.
	MinBytes int32
	// MaxBytes is replica.fetch.response.max.bytes: the bytes of records
	// one response may hold (the first batch goes whole even if bigger,
	// KIP-74). It bounds each fetcher's memory. Default 10 MiB.
	MaxBytes int32
	// PartitionMaxBytes is replica.fetch.max.bytes, per partition.
	// Default 1 MiB.
	PartitionMaxBytes int32
	// Backoff is replica.fetch.backoff.ms: the pause after an error of a
	// whole fetcher, and the longest pause after a partition's errors
	// (which start at 10 ms and double while they repeat). Default 1 s.
	Backoff time.Duration
	// RequestTimeout is replica.socket.timeout.ms: how long a request may
	// take beyond MaxWait before it is given up. Default 30 s.
	RequestTimeout time.Duration
	// Logger receives a line when a partition truncates, stops, fails or
	// recovers, and when a fetcher's requests fail. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxWait <= 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.MinBytes <= 0 {
		c.MinBytes = DefaultMinBytes
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = DefaultPartitionMaxBytes
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Assignment is one partition this broker follows: its topic (name and id),
// its leader's node id and Kafka address, and the leader epoch of the
// metadata that says so. Two Assignments of a partition that differ in any
// field are different assignments: Set restarts the partition.
type Assignment struct {
	Topic       string
	TopicID     engine.TopicID // zero: look the partition up by name only
	Partition   int32
	Leader      int32
	LeaderAddr  string
	LeaderEpoch int32
	// UncleanEpoch is the leader epoch of the partition's latest unclean
	// election (a leader from outside the ISR), 0 if none. A local log
	// whose last batch is from an older epoch may hold committed records
	// that leader never had: its truncation may cut below the local high
	// watermark. Otherwise such a cut is refused (and stops the partition).
	UncleanEpoch int32
}

// Status is what a follower partition is doing, for the broker and tests.
type Status struct {
	Assignment
	// FetchOffset is the local log end offset: where the next fetch reads.
	FetchOffset int64
	// HighWatermark is the local high watermark.
	HighWatermark int64
	// LeaderHighWatermark is the leader's high watermark in the last
	// successful fetch response, -1 before one.
	LeaderHighWatermark int64
	// Lag is LeaderHighWatermark - FetchOffset, at least 0 (0 before the
	// first response).
	Lag int64
	// Truncating: the partition has not yet checked its log against this
	// leader (see the package doc).
	Truncating bool
	// CaughtUp: the last fetch response for this assignment had no records
	// (the leader had nothing past FetchOffset) and no error.
	CaughtUp bool
	// Stopped: the partition does not fetch until Set changes its
	// assignment (Err says why).
	Stopped bool
	// Err is the last error, nil once a fetch succeeds again.
	Err error
}

// Fetchers runs the follower fetchers of one broker. Its methods are safe
// for concurrent use.
type Fetchers struct {
	cfg     Config
	request func(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error)
	client  *kclient.Client // owned, when Config.Request is nil
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every fetcher goroutine

	// dropped counts responses (per partition) ignored because their
	// assignment changed while they were in flight.
	dropped atomic.Int64

	mu struct {
		sync.Mutex
		closed bool
		// Invariant: parts[k].src is a key of fetchers, and that
		// fetcher's parts holds parts[k].
		parts    map[tp]*part
		fetchers map[source]*fetcher
	}
}

// tp names a partition.
type tp struct {
	topic     string
	partition int32
}

// source is a leader broker: one fetcher each.
type source struct {
	id   int32
	addr string
}

// maxKeptFrame bounds the response buffer a fetcher keeps between fetches.
const maxKeptFrame = 64 << 20

// requestInto is request for a fetcher's Fetch: with the owned client, the
// response is read into *frame when it fits, and *frame becomes the buffer
// it was read into (nil after an error, when the request may still be read
// into the old one). The response aliases *frame until the next call.
func (f *Fetchers) requestInto(ctx context.Context, addr string, req kmsg.Request, frame *[]byte) (kmsg.Response, error) {
	if f.client == nil {
		return f.request(ctx, addr, req)
	}
	resp, buf, err := f.client.RequestInto(ctx, addr, req, *frame)
	if cap(buf) > maxKeptFrame {
		buf = nil
	}
	*frame = buf
	return resp, err
}

// New returns Fetchers following nothing yet; Set gives them work.
func New(cfg Config) *Fetchers {
	cfg = cfg.withDefaults()
	f := &Fetchers{cfg: cfg, request: cfg.Request}
	if f.request == nil {
		f.client = kclient.New(kclient.Config{ClientID: "easel-replica-fetcher", Logger: cfg.Logger})
		f.request = f.client.Request
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.mu.parts = make(map[tp]*part)
	f.mu.fetchers = make(map[source]*fetcher)
	return f
}

// Set makes as the complete set of partitions followed: partitions not in
// it stop, new ones start, and one whose assignment changed (a newer leader
// epoch, another leader) restarts with the truncation check, on the fetcher
// of its new leader. If as names a partition twice the last one counts.
//
// Set does no network I/O and starts or stops fetcher goroutines without
// waiting for them. When nothing changed it only compares. For each changed
// partition it may wait for that partition's append in progress to finish,
// so that afterwards nothing asked under the old assignment is written.
// After Close it does nothing.
func (f *Fetchers) Set(as []Assignment) {
	want := make(map[tp]Assignment, len(as))
	for _, a := range as {
		want[tp{a.Topic, a.Partition}] = a
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return
	}
	for k, p := range f.mu.parts {
		if _, ok := want[k]; !ok {
			f.removeLocked(k, p)
		}
	}
	for k, a := range want {
		p := f.mu.parts[k]
		switch {
		case p != nil && p.want == a:
			continue
		case p != nil && p.src == sourceOf(a):
			p.want = a
			p.reassign(a)
			f.mu.fetchers[p.src].kick()
			continue
		case p != nil:
			f.removeLocked(k, p)
		}
		p = newPart(k, a)
		f.mu.parts[k] = p
		fe := f.mu.fetchers[p.src]
		if fe == nil {
			fe = f.startFetcherLocked(p.src)
		}
		fe.add(p)
		fe.kick()
	}
}

func sourceOf(a Assignment) source { return source{a.Leader, a.LeaderAddr} }

// removeLocked stops following k (p = parts[k]); a fetcher left with nothing
// stops too.
func (f *Fetchers) removeLocked(k tp, p *part) {
	p.remove()
	delete(f.mu.parts, k)
	fe := f.mu.fetchers[p.src]
	if fe.drop(k) == 0 {
		fe.cancel()
		delete(f.mu.fetchers, p.src)
	}
}

func (f *Fetchers) startFetcherLocked(src source) *fetcher {
	fe := newFetcher(f, src)
	f.mu.fetchers[src] = fe
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fe.run()
	}()
	return fe
}

// Status reports every followed partition, sorted by topic and partition.
func (f *Fetchers) Status() []Status {
	f.mu.Lock()
	parts := make([]*part, 0, len(f.mu.parts))
	for _, p := range f.mu.parts {
		parts = append(parts, p)
	}
	f.mu.Unlock()
	out := make([]Status, 0, len(parts))
	for _, p := range parts {
		out = append(out, p.status(f.cfg.Engine))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Close stops every fetcher and waits for them (a request in flight is
// abandoned), then closes the Fetchers' own client. Later Sets do nothing.
// It always returns nil.
func (f *Fetchers) Close() error {
	f.mu.Lock()
	if f.mu.closed {
		f.mu.Unlock()
		return nil
	}
	f.mu.closed = true
	for k, p := range f.mu.parts {
		p.remove()
		delete(f.mu.parts, k)
	}
	clear(f.mu.fetchers)
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	if f.client != nil {
		f.client.Close()
	}
	return nil
}

// lookup returns the engine partition an assignment names.
func (f *Fetchers) lookup(a *Assignment) (*engine.Partition, error) {
	if !a.TopicID.IsZero() {
		return f.cfg.Engine.PartitionByID(a.TopicID, a.Partition)
	}
	return f.cfg.Engine.Partition(a.Topic, a.Partition)
}
