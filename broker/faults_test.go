package broker

import (
	"context"
	"errors"
	"net"
	"sync"
)

// faultDialer dials TCP and can cut the links to given addresses: new dials
// fail and open connections to them are closed, until Heal.
type faultDialer struct {
	mu      sync.Mutex
	blocked map[string]bool
	conns   map[net.Conn]string
}

func newFaultDialer() *faultDialer {
	return &faultDialer{blocked: map[string]bool{}, conns: map[net.Conn]string{}}
}

var errLinkCut = errors.New("test: link cut")

func (d *faultDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	blocked := d.blocked[addr]
	d.mu.Unlock()
	if blocked {
		return nil, errLinkCut
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.blocked[addr] {
		c.Close()
		return nil, errLinkCut
	}
	fc := &trackedConn{Conn: c, d: d}
	d.conns[fc] = addr
	return fc, nil
}

// Block cuts the links to addrs.
func (d *faultDialer) Block(addrs ...string) {
	d.mu.Lock()
	for _, a := range addrs {
		d.blocked[a] = true
	}
	var cut []net.Conn
	for c, a := range d.conns {
		if d.blocked[a] {
			cut = append(cut, c)
		}
	}
	d.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

// Heal restores every link.
func (d *faultDialer) Heal() {
	d.mu.Lock()
	clear(d.blocked)
	d.mu.Unlock()
}

type trackedConn struct {
	net.Conn
	d    *faultDialer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.d.mu.Lock()
		delete(c.d.conns, c)
		c.d.mu.Unlock()
	})
	return c.Conn.Close()
}
