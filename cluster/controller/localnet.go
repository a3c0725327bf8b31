package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LocalNet is an in-process stand-in for the Kafka network between brokers:
// a map from Kafka address to a handler (a Node's ServeInterBroker, or a
// broker's full request handler), with links that can be cut. Its
// Forwarder is a Config.Forward for in-process clusters (tests of this and
// other packages). Safe for concurrent use.
type LocalNet struct {
	mu       sync.Mutex
	handlers map[string]func(context.Context, kmsg.Request) (kmsg.Response, bool)
	blocked  map[[2]string]bool // (from, to) Kafka addresses
}

// ErrUnreachable: LocalNet has no handler at the address, or the link is cut.
var ErrUnreachable = errors.New("controller: address unreachable")

// NewLocalNet returns an empty network.
func NewLocalNet() *LocalNet {
	return &LocalNet{
		handlers: make(map[string]func(context.Context, kmsg.Request) (kmsg.Response, bool)),
		blocked:  make(map[[2]string]bool),
	}
}

// Handle serves requests to addr with h (ok false: the key is not served);
// a nil h removes addr, as a stopped broker.
func (l *LocalNet) Handle(addr string, h func(context.Context, kmsg.Request) (kmsg.Response, bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h == nil {
		delete(l.handlers, addr)
		return
	}
	l.handlers[addr] = h
}

// Block cuts the links between a and each of others, both ways.
func (l *LocalNet) Block(a string, others ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range others {
		l.blocked[[2]string{a, b}] = true
		l.blocked[[2]string{b, a}] = true
	}
}

// Heal restores every link.
func (l *LocalNet) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.blocked)
}

// Forwarder returns a Config.Forward for the broker at Kafka address from.
func (l *LocalNet) Forwarder(from string) func(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	return func(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
		l.mu.Lock()
		h := l.handlers[addr]
		cut := l.blocked[[2]string{from, addr}]
		l.mu.Unlock()
		if h == nil || cut {
			return nil, fmt.Errorf("%w: %s from %s", ErrUnreachable, addr, from)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, ok := h(ctx, req)
		if !ok {
			return nil, fmt.Errorf("controller: %s does not serve API %d v%d", addr, req.Key(), req.GetVersion())
		}
		return resp, nil
	}
}
