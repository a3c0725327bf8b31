package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/metrics"
)

// readiness is what /readyz answers: not ready while starting (engine
// opening, partitions being hosted, listener not yet serving) or shutting
// down; once serving, in a cluster, ready only while the broker is
// registered, caught up on the metadata and not fenced, and once it has
// hosted every partition the metadata gave it at start.
type readiness struct {
	mu struct {
		sync.Mutex
		phase error // nil once serving
		node  *controller.Node
		b     *broker.Broker
	}
}

func newReadiness() *readiness {
	r := &readiness{}
	r.mu.phase = errors.New("starting")
	return r
}

// set records the start-up or shutdown phase (nil: serving).
func (r *readiness) set(phase error) {
	r.mu.Lock()
	r.mu.phase = phase
	r.mu.Unlock()
}

// serving records that the listener serves with b, a member of a cluster
// through node (nil for a single node).
func (r *readiness) serving(node *controller.Node, b *broker.Broker) {
	r.mu.Lock()
	r.mu.phase, r.mu.node, r.mu.b = nil, node, b
	r.mu.Unlock()
}

// check returns nil when ready, else why not.
func (r *readiness) check() error {
	r.mu.Lock()
	phase, node, b := r.mu.phase, r.mu.node, r.mu.b
	r.mu.Unlock()
	if phase != nil {
		return phase
	}
	if node != nil {
		select {
		case <-node.Ready():
		default:
			return errors.New("not registered with the controller or not caught up on the metadata log")
		}
		if _, fenced, ok := node.BrokerEpoch(); !ok || fenced {
			return errors.New("fenced by the controller (not in touch, or not caught up on the metadata log)")
		}
		select {
		case <-b.Hosted():
		default:
			return errors.New("not every partition assigned here is hosted yet")
		}
	}
	return nil
}

// startMetrics serves m's /metrics, /healthz and /readyz on addr.
func startMetrics(addr string, m *metrics.Metrics, ready *readiness, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: m.Handler(ready.check), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return hs, nil
}
