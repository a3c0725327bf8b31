package controller

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer is raft's network: a TCP listener and dialer (the
// raft.StreamLayer a NetworkTransport runs over) that can cut links, as
// gossip.FaultTransport does for memberlist. Block drops the links to and
// from some raft addresses in both directions: open connections to them
// are closed, dials to them fail and connections accepted from their hosts
// are closed at once. It is what Start uses by default (with nothing
// blocked), so tests of every package can partition raft through
// Node.Faults. Safe for concurrent use.
//
// Outgoing connections are made from the listener's IP when it is a
// specific one, so that the far side sees the address of this node (tests
// give each node its own 127.0.0.x) and can match it against its blocks.
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	local     *net.TCPAddr // source address of dials; nil for any

	mu struct {
		sync.Mutex
		blocked map[string]bool     // raft addresses cut off
		hosts   map[string]int      // hosts of blocked addresses, with a count
		conns   map[*faultConn]bool // open connections
	}
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// errLinkBlocked is what dials to a blocked address return.
var errLinkBlocked = errors.New("controller: raft link blocked by StreamLayer")

// NewStreamLayer listens on bind (host:port; port 0 picks one). advertise
// is the address others reach it at; "" means the bound address, which
// must then not be an unspecified IP.
func NewStreamLayer(bind, advertise string) (*StreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("controller: raft listen on %s: %w", bind, err)
	}
	l := &StreamLayer{ln: ln}
	l.mu.blocked = make(map[string]bool)
	l.mu.hosts = make(map[string]int)
	l.mu.conns = make(map[*faultConn]bool)
	bound := ln.Addr().(*net.TCPAddr)
	if !bound.IP.IsUnspecified() {
		l.local = &net.TCPAddr{IP: bound.IP}
	}
	switch {
	case advertise != "":
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("controller: raft advertise address %q: %w", advertise, err)
		}
		l.advertise = a
	case bound.IP.IsUnspecified():
		ln.Close()
		return nil, fmt.Errorf("controller: raft listens on all interfaces (%s): an advertised raft address is needed", bind)
	default:
		l.advertise = bound
	}
	return l, nil
}

// Block cuts the links to and from the given raft addresses (host:port).
func (l *StreamLayer) Block(addrs ...string) {
	var toClose []*faultConn
	l.mu.Lock()
	for _, a := range addrs {
		if l.mu.blocked[a] {
			continue
		}
		l.mu.blocked[a] = true
		if h, _, err := net.SplitHostPort(a); err == nil {
			l.mu.hosts[h]++
		}
	}
	for c := range l.mu.conns {
		if l.blockedLocked(c.peer, c.inbound) {
			toClose = append(toClose, c)
		}
	}
	l.mu.Unlock()
	for _, c := range toClose {
		c.Close()
	}
}

// Heal restores every link.
func (l *StreamLayer) Heal() {
	l.mu.Lock()
	clear(l.mu.blocked)
	clear(l.mu.hosts)
	l.mu.Unlock()
}

// blockedLocked reports whether a connection with peer is cut: an outbound
// one by the peer's raft address, an inbound one (from an ephemeral port)
// by its host.
func (l *StreamLayer) blockedLocked(peer string, inbound bool) bool {
	if !inbound {
		return l.mu.blocked[peer]
	}
	h, _, err := net.SplitHostPort(peer)
	return err == nil && l.mu.hosts[h] > 0
}

func (l *StreamLayer) track(c net.Conn, peer string, inbound bool) (net.Conn, error) {
	fc := &faultConn{Conn: c, l: l, peer: peer, inbound: inbound}
	l.mu.Lock()
	if l.blockedLocked(peer, inbound) {
		l.mu.Unlock()
		c.Close()
		return nil, errLinkBlocked
	}
	l.mu.conns[fc] = true
	l.mu.Unlock()
	return fc, nil
}

// Accept implements net.Listener; connections from blocked hosts are closed
// as they arrive.
func (l *StreamLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return nil, err
		}
		fc, err := l.track(c, c.RemoteAddr().String(), true)
		if err == nil {
			return fc, nil
		}
	}
}

// Close implements net.Listener: it stops listening and closes every open
// connection.
func (l *StreamLayer) Close() error {
	err := l.ln.Close()
	l.mu.Lock()
	conns := make([]*faultConn, 0, len(l.mu.conns))
	for c := range l.mu.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return err
}

// Addr implements net.Listener: the advertised address.
func (l *StreamLayer) Addr() net.Addr { return l.advertise }

// Dial implements raft.StreamLayer.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	blocked := l.mu.blocked[string(address)]
	l.mu.Unlock()
	if blocked {
		return nil, errLinkBlocked
	}
	d := net.Dialer{Timeout: timeout}
	if l.local != nil {
		d.LocalAddr = l.local
	}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	return l.track(c, string(address), false)
}

// faultConn is a connection the StreamLayer tracks so Block can cut it.
type faultConn struct {
	net.Conn
	l       *StreamLayer
	peer    string
	inbound bool
	once    sync.Once
}

func (c *faultConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.mu.conns, c)
		c.l.mu.Unlock()
	})
	return err
}
