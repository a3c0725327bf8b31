package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// brokerLoop is the broker side of every node: once the local state shows
// this broker registered with its incarnation and fenced, and the local
// applied index has reached the index at which that epoch was set, it sends
// BrokerHeartbeat to the controller until the state shows it unfenced; Ready
// closes the first time it is.
func (n *Node) brokerLoop() {
	interval := max(n.timing.HeartbeatTimeout/2, 50*time.Millisecond)
	for {
		changed := n.Changed()
		epoch, fenced, ok := n.BrokerEpoch()
		if ok && !fenced {
			n.readyOnce.Do(func() { close(n.ready) })
		}
		wait := (<-chan time.Time)(nil)
		if ok && fenced && !n.stopping.Load() {
			if at, cur := n.caughtUpIndex(n.id, epoch); cur && n.Applied() >= at {
				if n.heartbeat(epoch) {
					continue // unfenced at the controller; the state follows
				}
				wait = time.After(interval)
			}
		}
		select {
		case <-n.stop:
			return
		case <-changed:
		case <-wait:
		}
	}
}

// heartbeat sends one BrokerHeartbeat and reports whether the controller
// answered unfenced.
func (n *Node) heartbeat(epoch int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.BrokerID, req.BrokerEpoch, req.CurrentMetadataOffset = n.id, epoch, int64(n.Applied())
	resp, err := n.Forward(ctx, req)
	if err != nil {
		n.log.Debug("controller: heartbeat", "err", err)
		return false
	}
	r := resp.(*kmsg.BrokerHeartbeatResponse)
	if r.ErrorCode != 0 {
		n.log.Debug("controller: heartbeat", "err", kerr.ErrorForCode(r.ErrorCode))
		return false
	}
	return !r.IsFenced
}

// isInterBroker reports whether ServeInterBroker serves the request's key.
func isInterBroker(req kmsg.Request) bool {
	for _, a := range InterBrokerAPIs() {
		if a.Key == req.Key() {
			return true
		}
	}
	return false
}

// controllerAddr returns the Kafka address of broker id: from the
// registered brokers, else from gossip.
func (n *Node) controllerAddr(id int32) string {
	var addr string
	n.fsm.View(func(s *cluster.State) {
		if b := s.Broker(id); b != nil {
			addr = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
	})
	if addr != "" {
		return addr
	}
	for _, m := range n.Members() {
		if m.NodeID == id {
			return m.KafkaAddr
		}
	}
	return ""
}

// Forward sends a request to the controller wherever it is: served here
// when this node is the controller and the request is an inter-broker one,
// else sent with Config.Forward to the controller's Kafka address (which may
// be this broker's own, for CreateTopics and the like). While there is no
// controller, it cannot be reached, or it answers NOT_CONTROLLER, Forward
// tries again with backoff (10 ms doubling to 100 ms, or at once when the
// metadata changes) until ctx ends. The controller's response is
// returned as is.
func (n *Node) Forward(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	backoff := 10 * time.Millisecond
	var last error
	for {
		// A metadata change (a new controller fencing the old one, say)
		// ends the wait early.
		changed := n.Changed()
		if err := n.Err(); err != nil {
			return nil, err
		}
		select {
		case <-n.stop:
			return nil, ErrClosed
		default:
		}
		ctrl := n.Controller()
		switch {
		case ctrl < 0:
			last = errors.New("no controller elected")
		case ctrl == n.id && isInterBroker(req):
			resp, ok := n.ServeInterBroker(ctx, req)
			if !ok {
				return nil, fmt.Errorf("controller: version %d of API %d is not served", req.GetVersion(), req.Key())
			}
			if !respNotController(resp) {
				return resp, nil
			}
			last = fmt.Errorf("node %d: not the controller yet", n.id)
		default:
			addr := n.controllerAddr(ctrl)
			if addr == "" {
				last = fmt.Errorf("no address known for controller %d", ctrl)
				break
			}
			resp, err := n.cfg.Forward(ctx, addr, req)
			if err == nil && !respNotController(resp) {
				return resp, nil
			}
			if err == nil {
				err = fmt.Errorf("controller %d at %s: not the controller", ctrl, addr)
			}
			last = err
		}
		jitter := time.Duration(rand.Int64N(int64(backoff)/2 + 1))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("controller: reaching the controller: %w (last: %v)", ctx.Err(), last)
		case <-n.stop:
			return nil, ErrClosed
		case <-changed:
		case <-time.After(backoff + jitter):
		}
		// A low cap: requests wait here only while the controller moves,
		// and each retry is one small request.
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// NextProducerID returns a producer id no broker of the cluster has handed
// out: the next of this broker's current KIP-730 block, or the first of a
// new block from the controller. It waits (until ctx ends) while this
// broker is not registered or the controller cannot be reached.
func (n *Node) NextProducerID(ctx context.Context) (int64, error) {
	select {
	case n.pid.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-n.pid.sem }()
	for n.pid.next >= n.pid.end {
		changed := n.Changed()
		epoch, _, ok := n.BrokerEpoch()
		if !ok {
			select {
			case <-changed:
				continue
			case <-n.stop:
				return 0, ErrClosed
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		req := kmsg.NewPtrAllocateProducerIDsRequest()
		req.BrokerID, req.BrokerEpoch = n.id, epoch
		resp, err := n.Forward(ctx, req)
		if err != nil {
			return 0, err
		}
		r := resp.(*kmsg.AllocateProducerIDsResponse)
		switch {
		case r.ErrorCode == kerr.StaleBrokerEpoch.Code || r.ErrorCode == kerr.BrokerIDNotRegistered.Code:
			// The controller knows a newer epoch than the local state:
			// wait for it here, a little.
			select {
			case <-changed:
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		case r.ErrorCode != 0:
			return 0, fmt.Errorf("controller: allocating producer ids: %w", kerr.ErrorForCode(r.ErrorCode))
		case r.ProducerIDLen <= 0:
			return 0, errors.New("controller: allocating producer ids: empty block")
		default:
			n.pid.next, n.pid.end = r.ProducerIDStart, r.ProducerIDStart+int64(r.ProducerIDLen)
		}
	}
	id := n.pid.next
	n.pid.next++
	return id, nil
}

// Shutdown stops the node gracefully: a controlled shutdown at the
// controller (leadership of this broker's partitions moves to other ISR
// members and the broker is fenced), a raft leadership transfer if this
// voter leads, a gossip leave, then Close. Steps that cannot finish before
// ctx ends are skipped; the error says which.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopping.Store(true)
	var errs []error
	if err := n.controlledShutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("controlled shutdown: %w", err))
	}
	if n.raft.State() == raft.Leader && len(n.voters) > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			errs = append(errs, fmt.Errorf("leadership transfer: %w", err))
		}
	}
	if n.ml != nil {
		timeout := time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = max(min(time.Until(d), timeout), 10*time.Millisecond)
		}
		if err := n.ml.Leave(timeout); err != nil {
			errs = append(errs, fmt.Errorf("gossip leave: %w", err))
		}
	}
	errs = append(errs, n.Close())
	return errors.Join(errs...)
}

func (n *Node) controlledShutdown(ctx context.Context) error {
	for {
		epoch, fenced, ok := n.BrokerEpoch()
		if !ok || fenced {
			return nil
		}
		req := kmsg.NewPtrControlledShutdownRequest()
		req.Version, req.BrokerID, req.BrokerEpoch = 3, n.id, epoch
		resp, err := n.Forward(ctx, req)
		if err != nil {
			return err
		}
		code := resp.(*kmsg.ControlledShutdownResponse).ErrorCode
		switch code {
		case 0:
			// Wait until the local state shows it, so that this broker's
			// own view agrees before it stops.
			return n.waitFenced(ctx)
		case kerr.StaleBrokerEpoch.Code:
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			return kerr.ErrorForCode(code)
		}
	}
}

func (n *Node) waitFenced(ctx context.Context) error {
	for {
		changed := n.Changed()
		if _, fenced, ok := n.BrokerEpoch(); !ok || fenced {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
