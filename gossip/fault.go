package gossip

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// FaultTransport wraps a memberlist transport and drops traffic to and from
// blocked addresses, in both directions, for packets and streams: a network
// partition between this node and those addresses. It lives in a non-test
// file so that every package's tests (cluster, replica) can cut gossip
// links. Safe for concurrent use.
type FaultTransport struct {
	inner   memberlist.NodeAwareTransport
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	blocked map[string]bool // "host:port" of peers cut off
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*FaultTransport)(nil)

// errBlocked is what writes and dials to a blocked peer return.
var errBlocked = errors.New("gossip: link blocked by FaultTransport")

// NewFaultTransport wraps inner (a *memberlist.NetTransport, say).
func NewFaultTransport(inner memberlist.NodeAwareTransport) *FaultTransport {
	t := &FaultTransport{
		inner:   inner,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
		blocked: make(map[string]bool),
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

// Block cuts the links to and from the given gossip addresses.
func (t *FaultTransport) Block(addrs ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range addrs {
		t.blocked[a] = true
	}
}

// Heal restores every link.
func (t *FaultTransport) Heal() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.blocked)
}

func (t *FaultTransport) isBlocked(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blocked[addr]
}

func (t *FaultTransport) forwardPackets() {
	defer t.wg.Done()
	for {
		select {
		case p := <-t.inner.PacketCh():
			if p == nil || t.isBlocked(p.From.String()) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *FaultTransport) forwardStreams() {
	defer t.wg.Done()
	for {
		select {
		case c := <-t.inner.StreamCh():
			if c == nil {
				continue
			}
			// A stream from a blocked peer arrives from an ephemeral port:
			// match its host against the blocked addresses' hosts.
			if t.blockedHost(c.RemoteAddr()) {
				c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *FaultTransport) blockedHost(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for b := range t.blocked {
		if h, _, err := net.SplitHostPort(b); err == nil && h == host {
			return true
		}
	}
	return false
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *FaultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (t *FaultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.isBlocked(addr) {
		return time.Now(), nil // a lost datagram, as on a real network
	}
	return t.inner.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *FaultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.isBlocked(a.Addr) {
		return time.Now(), nil
	}
	return t.inner.WriteToAddress(b, a)
}

// PacketCh implements memberlist.Transport.
func (t *FaultTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.isBlocked(addr) {
		return nil, errBlocked
	}
	return t.inner.DialTimeout(addr, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *FaultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.isBlocked(a.Addr) {
		return nil, errBlocked
	}
	return t.inner.DialAddressTimeout(a, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *FaultTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport. The inner transport's listeners
// block on sending what they receive, so its channels are drained until it
// is down; only then do the forwarders stop.
func (t *FaultTransport) Shutdown() error {
	errc := make(chan error, 1)
	go func() { errc <- t.inner.Shutdown() }()
	for {
		select {
		case err := <-errc:
			t.once.Do(func() { close(t.done) })
			t.wg.Wait()
			return err
		case <-t.inner.PacketCh():
		case c := <-t.inner.StreamCh():
			if c != nil {
				c.Close()
			}
		}
	}
}
