package engine

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// CleanupPolicy removes old data from a partition log; cleanup.policy names
// one, or several separated by commas, which run in the order given.
// "delete" and "compact" are built in.
type CleanupPolicy interface {
	// Name is the cleanup.policy value ("delete", "compact").
	Name() string
	// Clean removes what cfg says is expired from l and returns how many
	// segments went. It never removes the active segment, nor a segment
	// holding an offset at or above hw (the high watermark: records not yet
	// committed by every replica). It runs concurrently with appends to l
	// (never with another Clean of l).
	Clean(l Log, cfg TopicConfig, now time.Time, hw int64) (int, error)
}

var policies struct {
	sync.RWMutex
	m map[string]CleanupPolicy
}

func init() {
	RegisterCleanupPolicy(deletePolicy{})
	RegisterCleanupPolicy(compactPolicy{})
}

// RegisterCleanupPolicy makes a policy available under its Name. A second
// registration under the same name replaces the first.
func RegisterCleanupPolicy(p CleanupPolicy) {
	policies.Lock()
	defer policies.Unlock()
	if policies.m == nil {
		policies.m = make(map[string]CleanupPolicy)
	}
	policies.m[p.Name()] = p
}

// cleanupPolicy returns the policy a cleanup.policy value names: one
// registered name, or a comma-separated list of them ("compact,delete"),
// which runs each in turn.
func cleanupPolicy(name string) (CleanupPolicy, error) {
	policies.RLock()
	defer policies.RUnlock()
	if p, ok := policies.m[name]; ok {
		return p, nil
	}
	var list policyList
	for _, part := range strings.Split(name, ",") {
		p, ok := policies.m[strings.TrimSpace(part)]
		if !ok || !strings.Contains(name, ",") {
			return nil, fmt.Errorf("%w: unknown cleanup.policy %q", ErrInvalidConfig, name)
		}
		list = append(list, p)
	}
	return list, nil
}

// policyList runs several policies in turn ("compact,delete").
type policyList []CleanupPolicy

func (l policyList) Name() string {
	names := make([]string, len(l))
	for i, p := range l {
		names[i] = p.Name()
	}
	return strings.Join(names, ",")
}

func (l policyList) Clean(lg Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	return l.clean(nil, lg, cfg, now, hw)
}

// clean runs each policy with the engine's cleaner settings (see
// engineCleaner); a failing one does not stop the next.
func (l policyList) clean(c *cleanerEnv, lg Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	total := 0
	var errs []error
	for _, p := range l {
		n, err := runPolicy(p, c, lg, cfg, now, hw)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// engineCleaner is implemented by built-in policies that use the engine's
// cleaner settings and can be stopped (compaction); others run through
// Clean.
type engineCleaner interface {
	clean(c *cleanerEnv, l Log, cfg TopicConfig, now time.Time, hw int64) (int, error)
}

// runPolicy runs p, with the engine's cleaner settings if p takes them.
func runPolicy(p CleanupPolicy, c *cleanerEnv, l Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	if ec, ok := p.(engineCleaner); ok && c != nil {
		return ec.clean(c, l, cfg, now, hw)
	}
	return p.Clean(l, cfg, now, hw)
}

// deletePolicy deletes whole segments, oldest first, while the oldest is
// past retention.ms or the partition is over retention.bytes.
type deletePolicy struct{}

func (deletePolicy) Name() string { return CleanupDelete }

func (deletePolicy) Clean(l Log, cfg TopicConfig, now time.Time, hw int64) (int, error) {
	segs := l.Segments()
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	n := 0
	// Never the active segment, nor one that ends above the high watermark.
	for n < len(segs)-1 && segs[n+1].BaseOffset <= hw {
		s := segs[n]
		byTime := cfg.RetentionMs >= 0 && s.LargestTimestamp >= 0 && now.UnixMilli()-s.LargestTimestamp > cfg.RetentionMs
		bySize := cfg.RetentionBytes >= 0 && total-s.Size >= cfg.RetentionBytes
		if !byTime && !bySize {
			break
		}
		total -= s.Size
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, l.DeleteOldest(n)
}

func (e *Engine) retentionLoop() {
	t := time.NewTicker(e.opts.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if _, err := e.EnforceRetention(); err != nil {
				e.log.Error("retention failed", "err", err)
			}
		}
	}
}

// EnforceRetention runs every partition's cleanup policy now and returns the
// number of segments removed. A partition that fails does not stop the
// others; the errors of all are returned, joined. The engine also runs it
// every RetentionCheckInterval.
func (e *Engine) EnforceRetention() (int, error) {
	e.mu.RLock()
	if e.mu.closed {
		e.mu.RUnlock()
		return 0, ErrClosed
	}
	var parts []*Partition
	var pols []CleanupPolicy
	for _, t := range e.mu.topics {
		for _, p := range t.parts {
			if p == nil {
				continue
			}
			parts = append(parts, p)
			pols = append(pols, t.policy)
		}
	}
	e.mu.RUnlock()
	now := e.opts.Now()
	total := 0
	var errs []error
	for i, p := range parts {
		n, err := p.clean(pols[i], now)
		total += n
		if err != nil {
			// Go on with the other partitions: one failing disk or
			// directory must not stop retention everywhere.
			errs = append(errs, fmt.Errorf("engine: retention of %s/%d: %w", p.topic, p.id, err))
		}
		if n > 0 {
			e.log.Info("retention deleted segments", "topic", p.topic, "partition", p.id, "segments", n, "start_offset", p.StartOffset())
		}
	}
	return total, errors.Join(errs...)
}

// clean runs a policy. It does not take the partition's writer lock:
// deleting files and fsyncing the log start can take long, and appends go
// on meanwhile (the log swaps its segment list under its own lock). Cleans
// of one partition are serialised with each other and with close.
func (p *Partition) clean(pol CleanupPolicy, now time.Time) (int, error) {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	if p.closed.Load() {
		return 0, nil
	}
	n, err := p.dropBelowStartLocked()
	if err != nil {
		return n, err
	}
	m, err := runPolicy(pol, p.cleanerEnv(), p.log, *p.config(), now, p.HighWatermark())
	if err != nil {
		return n + m, err
	}
	if m > 0 {
		// Retention moved the log start: trim the epoch cache too.
		_, err = p.dropBelowStartLocked()
	}
	return n + m, err
}
