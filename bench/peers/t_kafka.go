package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/bench/internal/easelproc"
)

// kafkaServer is a Kafka-protocol broker in a child process (the Easel broker
// or kfake), or a cluster of Easel brokers, shared by the targets that drive
// it with different generators.
type kafkaServer struct {
	sys   string   // "easel-broker", "easel-cluster", "kfake"
	addr  string   // a broker to bootstrap from
	seeds []string // every broker (addr alone for a single one)
	proc  *child   // the single broker's process; nil for a cluster
	// cluster is the easel-cluster's brokers (nil for a single broker);
	// its topics have replication factor rf.
	cluster  *easelproc.Cluster
	rf       int
	cl       *kgo.Client // admin requests
	adm      *kadm.Client
	seq      atomic.Int64
	produceV int16 // newest Produce version both sides speak (<= 9)
	fetchV   int16 // newest Fetch version both sides speak (<= 12, no topic ids)
	syncOK   bool  // honours topic config flush.messages
	// pprofAddr is the broker's net/http/pprof address ("" if none).
	pprofAddr string
}

// connectKafka waits for the broker at addr to answer and learns its versions.
func connectKafka(ctx context.Context, sys, addr string, proc *child, timeout time.Duration) (*kafkaServer, error) {
	if err := proc.waitReady(ctx, timeout, func(ctx context.Context) error { return pingKafka(ctx, addr) }); err != nil {
		return nil, err
	}
	s := &kafkaServer{sys: sys, addr: addr, seeds: []string{addr}, proc: proc, rf: 1}
	return s, s.connect(ctx)
}

// connectCluster learns the versions of a started cluster (see
// easelproc.Cluster.StartAll), whose topics get replication factor rf.
func connectCluster(ctx context.Context, sys string, c *easelproc.Cluster, rf int) (*kafkaServer, error) {
	s := &kafkaServer{sys: sys, addr: c.List[0].Kafka, seeds: c.Seeds(), cluster: c, rf: rf}
	return s, s.connect(ctx)
}

// connect makes the admin client and learns the Produce and Fetch versions.
func (s *kafkaServer) connect(ctx context.Context) error {
	sys := s.sys
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.seeds...), kgo.RequestRetries(2))
	if err != nil {
		return err
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		cl.Close()
		return fmt.Errorf("%s: ApiVersions: %w", sys, err)
	}
	s.produceV, s.fetchV = -1, -1
	for _, k := range resp.ApiKeys {
		switch k.ApiKey {
		case 0:
			if k.MinVersion <= 3 {
				s.produceV = min(k.MaxVersion, 9)
			}
		case 1:
			if k.MinVersion <= 4 {
				s.fetchV = min(k.MaxVersion, 12)
			}
		}
	}
	if s.produceV < 3 || s.fetchV < 4 {
		cl.Close()
		return fmt.Errorf("%s: no usable Produce (%d) or Fetch (%d) version", sys, s.produceV, s.fetchV)
	}
	return nil
}

// pingKafka sends one ApiVersions request on a fresh connection.
func pingKafka(ctx context.Context, addr string) error {
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		return err
	}
	defer rc.c.Close()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(0)
	if _, err := rc.roundTrip(req); err != nil {
		return err
	}
	return nil
}

func (s *kafkaServer) close() error {
	if s.cl != nil {
		s.cl.Close()
	}
	if s.cluster != nil {
		s.cluster.Stop() // SIGKILL: the data directories are deleted next
		return nil
	}
	return s.proc.stop(false, 30*time.Second)
}

// pid is the single broker's process id, or 0 for a cluster.
func (s *kafkaServer) pid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.pid()
}

// createTopic makes a fresh topic and waits until every partition has a
// leader.
func (s *kafkaServer) createTopic(ctx context.Context, w workload) (string, error) {
	name := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano()%1e6, s.seq.Add(1))
	cfg := map[string]*string{}
	if w.Sync {
		one := "1"
		cfg["flush.messages"] = &one
	}
	if s.cluster != nil {
		// Waits for every replica in the ISR, as every broker sees it.
		if err := s.cluster.CreateTopic(ctx, name, w.Partitions, s.rf, cfg); err != nil {
			return "", fmt.Errorf("%s: %w", s.sys, err)
		}
		return name, nil
	}
	resp, err := s.adm.CreateTopic(ctx, int32(w.Partitions), 1, cfg, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return "", fmt.Errorf("%s: create topic with %d partitions: %w", s.sys, w.Partitions, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		md, err := s.adm.Metadata(ctx, name)
		if err == nil {
			if t, ok := md.Topics[name]; ok && t.Err == nil && len(t.Partitions) == w.Partitions {
				ready := true
				for _, p := range t.Partitions {
					if p.Leader < 0 || p.Err != nil {
						ready = false
					}
				}
				if ready {
					return name, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: topic %s has no leaders after 30s (%v)", s.sys, name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *kafkaServer) deleteTopic(ctx context.Context, name string) error {
	resps, err := s.adm.DeleteTopics(ctx, name)
	if err != nil {
		return err
	}
	err = resps.Error()
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		// The client retried a deletion that took longer than its request
		// timeout, and the first attempt had deleted the topic.
		return nil
	}
	return err
}

// kafkaTarget drives a kafkaServer with one generator: "raw", "kgo" or
// "kgo-if5".
type kafkaTarget struct {
	srv       *kafkaServer
	generator string
}

func (t *kafkaTarget) name() string { return t.srv.sys }
func (t *kafkaTarget) gen() string  { return t.generator }
func (t *kafkaTarget) close() error { return nil } // the server is closed by its owner
func (t *kafkaTarget) pid() int     { return t.srv.pid() }

func (t *kafkaTarget) skip(w workload) string {
	if w.Sync && !t.srv.syncOK {
		return "no per-topic fsync setting"
	}
	if t.generator == "kgo-if5" && w.Acks != "1" {
		return "with acks=all kgo is idempotent and already keeps 5 requests in flight"
	}
	return ""
}

func (t *kafkaTarget) open(ctx context.Context, w workload) (stream, error) {
	name, err := t.srv.createTopic(ctx, w)
	if err != nil {
		return nil, err
	}
	leaders, err := t.srv.leaders(ctx, name, w.Partitions)
	if err != nil {
		_ = t.srv.deleteTopic(ctx, name)
		return nil, err
	}
	return &kafkaStream{t: t, topic: name, w: w, leaders: leaders}, nil
}

// leaders returns the Kafka address of each partition's leader: addr for a
// single broker, else from Metadata (the raw generator sends each
// partition's requests to its leader; franz-go finds the leaders itself).
func (s *kafkaServer) leaders(ctx context.Context, topic string, parts int) ([]string, error) {
	out := make([]string, parts)
	if s.cluster == nil {
		for i := range out {
			out[i] = s.addr
		}
		return out, nil
	}
	md, err := s.adm.Metadata(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("%s: metadata of %s: %w", s.sys, topic, err)
	}
	addrs := map[int32]string{}
	for _, b := range md.Brokers {
		addrs[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	for _, p := range md.Topics[topic].Partitions {
		if p.Partition < 0 || int(p.Partition) >= parts || addrs[p.Leader] == "" {
			return nil, fmt.Errorf("%s: %s partition %d: leader %d unknown", s.sys, topic, p.Partition, p.Leader)
		}
		out[p.Partition] = addrs[p.Leader]
	}
	for i, a := range out {
		if a == "" {
			return nil, fmt.Errorf("%s: %s partition %d: no leader in Metadata", s.sys, topic, i)
		}
	}
	return out, nil
}

type kafkaStream struct {
	t       *kafkaTarget
	topic   string
	w       workload
	leaders []string // per partition, its leader's address
}

func (s *kafkaStream) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(s.w.Partitions)*10*time.Millisecond)
	defer cancel()
	return s.t.srv.deleteTopic(ctx, s.topic)
}

func (s *kafkaStream) producer(a *acker, l *sendLog) (producer, error) {
	if s.t.generator == "raw" {
		return newRawProducer(s.t.srv, s.topic, s.leaders, s.w, a, l)
	}
	return newKgoProducer(s.t.srv, s.topic, s.w, s.t.generator, a, l)
}

func (s *kafkaStream) consumer() (consumer, error) {
	if s.t.generator == "raw" {
		return &rawConsumer{srv: s.t.srv, topic: s.topic, leaders: s.leaders, partitions: s.w.Partitions}, nil
	}
	return &kgoConsumer{srv: s.t.srv, topic: s.topic, partitions: s.w.Partitions}, nil
}

// kgoMaxBuffered caps the bytes a franz-go producer buffers.
const kgoMaxBuffered = 32 << 20

// kgoLingerDefault is franz-go's default ProducerLinger (kgo v1.22): a
// partition's batch waits up to this long for more records before it is
// sent. The kgo and kgo-if5 generators keep it; at a modest rate it alone
// adds up to 10 ms to every record's end-to-end latency.
const kgoLingerDefault = 10 * time.Millisecond

// kgoProducer produces one record per send with franz-go, the client users
// run, in its default configuration apart from acks (acks=1 needs idempotence
// off, which leaves one produce request in flight per broker) and a 32 MiB
// buffer cap. The generator "kgo-if5" keeps five produce requests in flight
// instead; "kgo-linger0" sets ProducerLinger(0), so that a batch goes out as
// soon as a request may be sent, and end-to-end latency is the broker's and
// the network's rather than the client's batching delay.
type kgoProducer struct {
	cl   *kgo.Client
	w    workload
	a    *acker
	l    *sendLog
	recs atomic.Int64 // payload counter
}

func newKgoProducer(srv *kafkaServer, topic string, w workload, gen string, a *acker, l *sendLog) (*kgoProducer, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(srv.seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// The default buffer of 50,000 records holds 800 MB of 16 KiB
		// records; cap it so that a phase does not end with seconds of
		// backlog to flush.
		kgo.MaxBufferedBytes(kgoMaxBuffered),
	}
	if w.Acks == "all" {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
		if gen == "kgo-if5" {
			opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(5))
		}
	}
	if gen == "kgo-linger0" {
		opts = append(opts, kgo.ProducerLinger(0))
	} else {
		opts = append(opts, kgo.ProducerLinger(kgoLingerDefault)) // the default, stated
	}
	switch w.Codec {
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &kgoProducer{cl: cl, w: w, a: a, l: l}, nil
}

func (p *kgoProducer) workers() int        { return 1 }
func (p *kgoProducer) recordsPerSend() int { return 1 }
func (p *kgoProducer) close() error        { p.cl.Close(); return nil }
func (p *kgoProducer) flush(ctx context.Context) error {
	return p.cl.Flush(ctx)
}

func (p *kgoProducer) send(_, part int, t0 int64) error {
	if p.l != nil {
		p.l.sent(part, t0, 1)
	}
	r := &kgo.Record{Partition: int32(part), Value: sharedPayloads().get(int(p.recs.Add(1)), p.w.Size)}
	p.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
		p.a.ack(part, t0, 1, err)
	})
	return nil
}

// kgoConsumer reads the partitions from the start with a franz-go client
// (direct partition assignment, no group).
type kgoConsumer struct {
	srv        *kafkaServer
	topic      string
	partitions int
}

func (c *kgoConsumer) close() error { return nil }

func (c *kgoConsumer) run(ctx context.Context, got func(part, recs int)) error {
	offs := make(map[int32]kgo.Offset, c.partitions)
	for i := range c.partitions {
		offs[int32(i)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.srv.seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: offs}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				got(int(p.Partition), len(p.Records))
			}
		})
	}
	return nil
}

// errCode turns a Kafka error code into an error (nil for 0).
func errCode(code int16) error {
	if code == 0 {
		return nil
	}
	if err := kerr.ErrorForCode(code); err != nil {
		return err
	}
	return errors.New("kafka error " + strconv.Itoa(int(code)))
}
