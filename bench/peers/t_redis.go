package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisWorkers bounds the connections producing to or reading from Redis.
const redisWorkers = 4

// redisTarget is Debian's redis-server in a child process (appendonly yes,
// appendfsync everysec): one stream key per partition, one entry per record,
// XADDs pipelined in groups the size of a Kafka batch, read back with XREAD.
type redisTarget struct {
	addr string
	proc *child
	rdb  *redis.Client
	seq  atomic.Int64
}

func connectRedis(ctx context.Context, addr string, proc *child) (*redisTarget, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 2*redisWorkers + 2})
	err := proc.waitReady(ctx, 30*time.Second, func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	if err != nil {
		rdb.Close()
		return nil, err
	}
	return &redisTarget{addr: addr, proc: proc, rdb: rdb}, nil
}

func (t *redisTarget) name() string { return "redis" }
func (t *redisTarget) gen() string  { return "go-redis" }
func (t *redisTarget) pid() int     { return t.proc.pid() }
func (t *redisTarget) close() error {
	t.rdb.Close()
	return t.proc.stop(false, 30*time.Second)
}

func (t *redisTarget) skip(w workload) string {
	switch {
	case w.Acks == "all":
		return "no replicas: WAIT would return at once"
	case w.Codec != "none":
		return "Redis streams have no compression"
	case w.Sync:
		return "fsync is a server-wide setting (appendfsync always)"
	}
	return ""
}

func (t *redisTarget) open(_ context.Context, w workload) (stream, error) {
	s := &redisStream{t: t, w: w}
	n := t.seq.Add(1)
	for i := range w.Partitions {
		s.keys = append(s.keys, fmt.Sprintf("bench:%d:%d", n, i))
	}
	return s, nil
}

type redisStream struct {
	t    *redisTarget
	w    workload
	keys []string
}

func (s *redisStream) close(ctx context.Context) error {
	return s.t.rdb.Del(ctx, s.keys...).Err()
}

type redisProducer struct {
	s     *redisStream
	a     *acker
	l     *sendLog
	n     int
	pipes []redis.Pipeliner
	recs  atomic.Int64
}

func (s *redisStream) producer(a *acker, l *sendLog) (producer, error) {
	n := min(recordsPerBatch(s.w.Size), 256)
	p := &redisProducer{s: s, a: a, l: l, n: n}
	for range min(s.w.Partitions, redisWorkers) {
		p.pipes = append(p.pipes, s.t.rdb.Pipeline())
	}
	return p, nil
}

func (p *redisProducer) workers() int                { return len(p.pipes) }
func (p *redisProducer) recordsPerSend() int         { return p.n }
func (p *redisProducer) flush(context.Context) error { return nil }
func (p *redisProducer) close() error                { return nil }

func (p *redisProducer) send(wi, part int, t0 int64) error {
	if p.l != nil {
		p.l.sent(part, t0, p.n)
	}
	pipe := p.pipes[wi]
	pl := sharedPayloads()
	first := int(p.recs.Add(int64(p.n)))
	for i := range p.n {
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: p.s.keys[part], ID: "*",
			Values: []any{"v", pl.get(first+i, p.s.w.Size)}})
	}
	_, err := pipe.Exec(context.Background())
	p.a.ack(part, t0, p.n, err)
	return err
}

func (s *redisStream) consumer() (consumer, error) { return &redisConsumer{s: s}, nil }

type redisConsumer struct{ s *redisStream }

func (c *redisConsumer) close() error { return nil }

func (c *redisConsumer) run(ctx context.Context, got func(part, recs int)) error {
	nw := min(len(c.s.keys), redisWorkers)
	return runConsumerWorkers(ctx, nw, func(wi int) error { return c.worker(ctx, wi, nw, got) })
}

func (c *redisConsumer) worker(ctx context.Context, wi, nw int, got func(part, recs int)) error {
	var parts []int
	var args []string
	for p := wi; p < len(c.s.keys); p += nw {
		parts = append(parts, p)
		args = append(args, c.s.keys[p])
	}
	byKey := make(map[string]int, len(parts))
	for i, p := range parts {
		byKey[c.s.keys[p]] = i
		args = append(args, "0-0")
	}
	for ctx.Err() == nil {
		res, err := c.s.t.rdb.XRead(ctx, &redis.XReadArgs{Streams: args, Count: 1000, Block: 100 * time.Millisecond}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, st := range res {
			if len(st.Messages) == 0 {
				continue
			}
			i := byKey[st.Stream]
			args[len(parts)+i] = st.Messages[len(st.Messages)-1].ID
			got(parts[i], len(st.Messages))
		}
	}
	return nil
}
