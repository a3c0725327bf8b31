package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPick: picked ports lie below the ephemeral range and can be listened
// on, for TCP and UDP; a port taken for TCP is never picked.
func TestPick(t *testing.T) {
	top := ephemeralLow()
	taken := map[int]bool{}
	for range 50 {
		p, err := Pick("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < low || p >= top {
			t.Fatalf("port %d outside [%d, %d)", p, low, top)
		}
		if taken[p] {
			t.Fatalf("port %d picked while held", p)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on picked %s: %v", addr, err)
		}
		defer ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("udp on picked %s: %v", addr, err)
		}
		pc.Close()
		taken[p] = true
	}
	a, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := net.SplitHostPort(a); err != nil || h != "127.0.0.1" {
		t.Fatalf("Addr() = %q", a)
	}
}
