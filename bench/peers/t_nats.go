package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsMaxPending bounds asynchronous publishes awaiting their ack.
const natsMaxPending = 4096

// natsTarget is a JetStream server (cmd/natsd) in a child process: one file
// stream per partition, one message per record, published with PublishAsync
// and read with an ordered consumer per stream.
type natsTarget struct {
	url  string
	proc *child
	seq  atomic.Int64
}

func connectNATS(ctx context.Context, url string, proc *child) (*natsTarget, error) {
	err := proc.waitReady(ctx, 60*time.Second, func(context.Context) error {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &natsTarget{url: url, proc: proc}, nil
}

func (t *natsTarget) name() string { return "nats" }
func (t *natsTarget) gen() string  { return "nats.go" }
func (t *natsTarget) pid() int     { return t.proc.pid() }
func (t *natsTarget) close() error { return t.proc.stop(false, 30*time.Second) }

func (t *natsTarget) skip(w workload) string {
	switch {
	case w.Acks == "all":
		return "a single JetStream server acks after storing either way"
	case w.Codec != "none":
		return "JetStream has only s2 store compression, not the client-side codecs"
	case w.Sync:
		return "fsync is a server-wide setting (sync_always)"
	}
	return ""
}

func (t *natsTarget) open(ctx context.Context, w workload) (stream, error) {
	nc, err := nats.Connect(t.url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s := &natsStream{t: t, nc: nc, js: js, w: w, base: fmt.Sprintf("bench%d", t.seq.Add(1))}
	for i := range w.Partitions {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     s.streamName(i),
			Subjects: []string{s.subject(i)},
			Storage:  jetstream.FileStorage,
		})
		if err != nil {
			_ = s.close(ctx)
			return nil, fmt.Errorf("nats: create stream: %w", err)
		}
	}
	return s, nil
}

type natsStream struct {
	t    *natsTarget
	nc   *nats.Conn
	js   jetstream.JetStream
	w    workload
	base string
}

func (s *natsStream) streamName(i int) string { return s.base + "_" + strconv.Itoa(i) }
func (s *natsStream) subject(i int) string    { return s.base + "." + strconv.Itoa(i) }

func (s *natsStream) close(ctx context.Context) error {
	var errs []error
	for i := range s.w.Partitions {
		if err := s.js.DeleteStream(ctx, s.streamName(i)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, err)
		}
	}
	s.nc.Close()
	return errors.Join(errs...)
}

// natsProducer publishes asynchronously; acks of one stream come back in
// publish order, so each partition keeps a FIFO of send times.
type natsProducer struct {
	s     *natsStream
	nc    *nats.Conn
	js    jetstream.JetStream
	a     *acker
	l     *sendLog
	subs  []string
	fifos []timeFIFO
	n     atomic.Int64
}

// timeFIFO is a queue of send times.
type timeFIFO struct {
	mu   sync.Mutex
	q    []int64
	head int
}

func (f *timeFIFO) push(t int64) {
	f.mu.Lock()
	f.q = append(f.q, t)
	f.mu.Unlock()
}

func (f *timeFIFO) pop() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.head >= len(f.q) {
		return nowNano()
	}
	t := f.q[f.head]
	f.head++
	if f.head > 4096 && f.head*2 > len(f.q) {
		f.q = append(f.q[:0], f.q[f.head:]...)
		f.head = 0
	}
	return t
}

func (s *natsStream) producer(a *acker, l *sendLog) (producer, error) {
	nc, err := nats.Connect(s.t.url)
	if err != nil {
		return nil, err
	}
	p := &natsProducer{s: s, nc: nc, a: a, l: l, fifos: make([]timeFIFO, s.w.Partitions)}
	byStream := make(map[string]int, s.w.Partitions)
	bySubject := make(map[string]int, s.w.Partitions)
	for i := range s.w.Partitions {
		p.subs = append(p.subs, s.subject(i))
		byStream[s.streamName(i)] = i
		bySubject[s.subject(i)] = i
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(natsMaxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			part := byStream[ack.Stream]
			a.ack(part, p.fifos[part].pop(), 1, nil)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			part := bySubject[m.Subject]
			a.ack(part, p.fifos[part].pop(), 1, err)
		}))
	if err != nil {
		nc.Close()
		return nil, err
	}
	p.js = js
	return p, nil
}

func (p *natsProducer) workers() int        { return 1 }
func (p *natsProducer) recordsPerSend() int { return 1 }

func (p *natsProducer) send(_, part int, t0 int64) error {
	if p.l != nil {
		p.l.sent(part, t0, 1)
	}
	p.fifos[part].push(t0)
	_, err := p.js.PublishAsync(p.subs[part], sharedPayloads().get(int(p.n.Add(1)), p.s.w.Size))
	return err
}

func (p *natsProducer) flush(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	// The ack handler runs just after the future completes.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		busy := false
		for i := range p.fifos {
			f := &p.fifos[i]
			f.mu.Lock()
			if f.head < len(f.q) {
				busy = true
			}
			f.mu.Unlock()
		}
		if !busy {
			break
		}
	}
	return nil
}

func (p *natsProducer) close() error { p.nc.Close(); return nil }

func (s *natsStream) consumer() (consumer, error) { return &natsConsumer{s: s}, nil }

type natsConsumer struct{ s *natsStream }

func (c *natsConsumer) close() error { return nil }

// natsOrdered creates an ordered consumer, retrying API timeouts: a server
// busy storing a burst can take longer than the client's 5 s API timeout.
func natsOrdered(ctx context.Context, js jetstream.JetStream, stream string) (jetstream.Consumer, error) {
	var err error
	for range 4 {
		var cons jetstream.Consumer
		cons, err = js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return cons, err
		}
	}
	return nil, fmt.Errorf("nats: ordered consumer on %s: %w", stream, err)
}

func (c *natsConsumer) run(ctx context.Context, got func(part, recs int)) error {
	nc, err := nats.Connect(c.s.t.url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var ccs []jetstream.ConsumeContext
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	errc := make(chan error, 1)
	for i := range c.s.w.Partitions {
		cons, err := natsOrdered(ctx, js, c.s.streamName(i))
		if err != nil {
			return err
		}
		part := i
		cc, err := cons.Consume(func(jetstream.Msg) { got(part, 1) },
			jetstream.PullMaxMessages(2000),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if errors.Is(err, jetstream.ErrNoHeartbeat) { // the ordered consumer recovers
					return
				}
				select {
				case errc <- err:
				default:
				}
			}))
		if err != nil {
			return err
		}
		ccs = append(ccs, cc)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("nats consume: %w", err)
	}
}
