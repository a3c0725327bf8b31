package jepsen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is the workload's configuration.
type Config struct {
	// Seeds are the brokers' Kafka addresses. Required.
	Seeds []string
	// Topic must exist with Partitions partitions. Required.
	Topic      string
	Partitions int32
	// Producers is the number of producer clients (default 2), each with
	// acks=all, idempotence and no linger, sending to random partitions.
	Producers int
	// InFlight is each producer's number of sends awaiting their outcome
	// (default 4).
	InFlight int
	// Interval is each producer's pause between two sends (default 0:
	// as fast as InFlight allows).
	Interval time.Duration
	// Consumers is the number of consumers in the group (default 2).
	Consumers int
	// Group is the consumer group id (default "jepsen-" + Topic).
	Group string
	// SendTimeout bounds one send (delivery.timeout.ms; default 10 s); a
	// send that times out is Indeterminate.
	SendTimeout time.Duration
	// DrainTimeout bounds how long Finish waits for the group consumers to
	// poll everything the final read found (default 30 s); what they have
	// not polled by then is Unseen.
	DrainTimeout time.Duration
	// ClientOpts are added to every client's options (after the workload's
	// own, so they win).
	ClientOpts []kgo.Opt
	// Seed seeds the producers' choice of partitions (0: 1).
	Seed uint64
	// Logf, if set, logs progress and client errors.
	Logf func(format string, args ...any)
}

func (c *Config) withDefaults() Config {
	o := *c
	if o.Producers <= 0 {
		o.Producers = 2
	}
	if o.InFlight <= 0 {
		o.InFlight = 4
	}
	if o.Consumers <= 0 {
		o.Consumers = 2
	}
	if o.Group == "" {
		o.Group = "jepsen-" + o.Topic
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// ErrConfig is returned by Start for a configuration without seeds, topic
// or partitions.
var ErrConfig = errors.New("jepsen: Seeds, Topic and Partitions are required")

// ErrFinalRead is returned by Finish when the final read did not reach
// every partition's end offset before the context ended.
var ErrFinalRead = errors.New("jepsen: final read incomplete")

// Workload runs producers and group consumers against a cluster, recording
// into a History, until Finish.
type Workload struct {
	cfg  Config
	hist *History

	stopProduce chan struct{} // closed by Finish: no new sends
	producers   sync.WaitGroup
	stopConsume context.CancelFunc
	consumers   sync.WaitGroup

	seen struct {
		sync.Mutex
		values map[string]bool // values polled by a group consumer
	}
	pollErrors atomic.Int64
}

// Start starts the producers and consumers. They run until Finish; ctx
// only bounds the creation of clients.
func Start(ctx context.Context, cfg Config) (*Workload, error) {
	if len(cfg.Seeds) == 0 || cfg.Topic == "" || cfg.Partitions <= 0 {
		return nil, ErrConfig
	}
	w := &Workload{cfg: cfg.withDefaults(), hist: NewHistory(), stopProduce: make(chan struct{})}
	w.seen.values = map[string]bool{}
	var prods []*kgo.Client
	for i := range w.cfg.Producers {
		cl, err := w.client(
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RecordDeliveryTimeout(w.cfg.SendTimeout),
			kgo.ClientID(fmt.Sprintf("jepsen-producer-%d", i)),
		)
		if err != nil {
			for _, p := range prods {
				p.Close()
			}
			return nil, err
		}
		prods = append(prods, cl)
	}
	cctx, cancel := context.WithCancel(context.Background())
	w.stopConsume = cancel
	for i := range w.cfg.Consumers {
		w.consumers.Add(1)
		go func() {
			defer w.consumers.Done()
			w.consume(cctx, i)
		}()
	}
	for i, cl := range prods {
		w.producers.Add(1)
		go func() {
			defer w.producers.Done()
			w.produce(i, cl)
		}()
	}
	return w, nil
}

// History is the workload's history; complete once Finish has returned.
func (w *Workload) History() *History { return w.hist }

// Acked is the number of sends acknowledged so far.
func (w *Workload) Acked() int { return w.hist.Acked() }

func (w *Workload) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(w.cfg.Seeds...),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.MetadataMaxAge(time.Second),
		kgo.RetryTimeout(30 * time.Second),
	}
	return kgo.NewClient(append(append(base, opts...), w.cfg.ClientOpts...)...)
}

// produce sends values "<id>-<seq>" until stopProduce, then waits for the
// outcome of every send.
func (w *Workload) produce(id int, cl *kgo.Client) {
	defer cl.Close()
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(id)))
	slots := make(chan struct{}, w.cfg.InFlight)
	var pending sync.WaitGroup
	for seq := 0; ; seq++ {
		select {
		case <-w.stopProduce:
			pending.Wait()
			return
		case slots <- struct{}{}:
		}
		s := Send{Producer: id, Value: fmt.Sprintf("%d-%d", id, seq), Partition: rng.Int32N(w.cfg.Partitions), Start: time.Now()}
		pending.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Topic: w.cfg.Topic, Partition: s.Partition, Value: []byte(s.Value)},
			func(r *kgo.Record, err error) {
				s.End = time.Now()
				switch {
				case err == nil:
					s.Outcome, s.Partition, s.Offset = Acked, r.Partition, r.Offset
				case definite(err):
					s.Outcome, s.Err = Failed, err.Error()
				default:
					s.Outcome, s.Err = Indeterminate, err.Error()
				}
				w.hist.AddSend(s)
				<-slots
				pending.Done()
			})
		if w.cfg.Interval > 0 {
			select {
			case <-w.stopProduce:
			case <-time.After(w.cfg.Interval):
			}
		}
	}
}

// definite reports whether a produce error proves the record was not
// written: the broker rejects these before appending, on every attempt
// alike. Everything else (timeouts, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a
// lost connection, even NOT_ENOUGH_REPLICAS after an earlier attempt that
// may have been appended) is indeterminate.
func definite(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage,
		kerr.InvalidTopicException, kerr.TopicAuthorizationFailed, kerr.InvalidRequiredAcks} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// consume polls as group member id until ctx ends, recording every record
// with the member's assignment epoch.
func (w *Workload) consume(ctx context.Context, id int) {
	var epoch atomic.Int64
	bump := func(context.Context, *kgo.Client, map[string][]int32) { epoch.Add(1) }
	cl, err := w.client(
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(bump),
		kgo.OnPartitionsRevoked(bump),
		kgo.OnPartitionsLost(bump),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.AutoCommitInterval(time.Second),
		kgo.ClientID(fmt.Sprintf("jepsen-consumer-%d", id)),
	)
	if err != nil {
		w.cfg.Logf("jepsen: consumer %d: %v", id, err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		e := int(epoch.Load())
		var ps []Poll
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			ps = append(ps, Poll{Consumer: id, Epoch: e, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value), Time: now})
		})
		fs.EachError(func(_ string, p int32, err error) {
			if ctx.Err() == nil {
				w.pollErrors.Add(1)
				w.cfg.Logf("jepsen: consumer %d partition %d: %v", id, p, err)
			}
		})
		w.hist.AddPolls(ps...)
		w.seen.Lock()
		for _, p := range ps {
			w.seen.values[p.Value] = true
		}
		w.seen.Unlock()
		cl.AllowRebalance()
	}
}

// Finish stops the producers and waits for the outcome of every send,
// reads every partition from its start to its end offset (the final read),
// lets the group consumers drain up to DrainTimeout, and stops them. Call
// it once the faults are healed. The history is complete when it returns,
// also on error (ErrFinalRead: the final read did not complete; its polls
// so far are recorded).
func (w *Workload) Finish(ctx context.Context) error {
	close(w.stopProduce)
	w.producers.Wait()
	defer func() {
		w.stopConsume()
		w.consumers.Wait()
	}()
	final, err := w.finalRead(ctx)
	if err != nil {
		return err
	}
	drain, cancel := context.WithTimeout(ctx, w.cfg.DrainTimeout)
	defer cancel()
	for {
		w.seen.Lock()
		missing := 0
		for _, v := range final {
			if !w.seen.values[v] {
				missing++
			}
		}
		w.seen.Unlock()
		if missing == 0 {
			return nil
		}
		select {
		case <-drain.Done():
			w.cfg.Logf("jepsen: %d records of the final read not polled by the group within %v", missing, w.cfg.DrainTimeout)
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// finalRead lists every partition's end offset and reads each from its
// start to there, recording polls by FinalReader; it returns the values
// read.
func (w *Workload) finalRead(ctx context.Context) ([]string, error) {
	cl, err := w.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends map[int32]int64
	for {
		ends = map[int32]int64{}
		listed, err := adm.ListEndOffsets(ctx, w.cfg.Topic)
		if err == nil {
			listed.Each(func(o kadm.ListedOffset) {
				if o.Err == nil {
					ends[o.Partition] = o.Offset
				}
			})
		}
		if int32(len(ends)) == w.cfg.Partitions {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: listing end offsets: %v (%d of %d partitions)", ErrFinalRead, err, len(ends), w.cfg.Partitions)
		case <-time.After(100 * time.Millisecond):
		}
	}
	next := map[int32]int64{}
	offsets := map[string]map[int32]kgo.Offset{w.cfg.Topic: {}}
	for p, end := range ends {
		w.hist.FinalEnd(p, end)
		offsets[w.cfg.Topic][p] = kgo.NewOffset().AtStart()
	}
	reader, err := w.client(kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	var values []string
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			return values, fmt.Errorf("%w: read up to %v of end offsets %v", ErrFinalRead, next, ends)
		}
		var ps []Poll
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			ps = append(ps, Poll{Consumer: FinalReader, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value), Time: now})
			values = append(values, string(r.Value))
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
		fs.EachError(func(_ string, p int32, err error) { w.cfg.Logf("jepsen: final read partition %d: %v", p, err) })
		w.hist.AddPolls(ps...)
	}
	return values, nil
}
