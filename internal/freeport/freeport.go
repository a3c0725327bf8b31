// Package freeport picks loopback ports for tests and benchmarks that start
// brokers and restart them where they listened before.
//
// A port the kernel hands out for ":0" lies in its ephemeral range, the
// range it also draws the local ports of outgoing connections from. While a
// killed broker is down, another process's new connection can take its port,
// and the restarted broker then fails to listen ("address already in use").
// Ports from Pick lie below the ephemeral range, where the kernel never
// assigns one on its own.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the lowest port Pick uses: above the well-known and most
// registered service ports.
const low = 10000

// ephemeralLow is the first port of the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), or Linux's default low end
// where the file cannot be read or the range starts too low to leave room
// below it (Pick's ports may then collide as ":0" ones do).
func ephemeralLow() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return linuxDefault
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= low+1000 {
		return linuxDefault
	}
	return n
}

// Pick returns a port on host (an IP address) that was free for TCP and UDP
// a moment ago (gossip uses both) and lies below the kernel's ephemeral
// range. Another process may still take it before the caller listens; the
// range is wide enough that two picks rarely meet.
func Pick(host string) (int, error) {
	top := ephemeralLow()
	var last error
	for range 100 {
		p := low + rand.IntN(top-low)
		addr := net.JoinHostPort(host, strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			last = err
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			last = err
			continue
		}
		pc.Close()
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port on %s below %d: %w", host, top, last)
}

// Addr is Pick on 127.0.0.1, as host:port.
func Addr() (string, error) {
	p, err := Pick("127.0.0.1")
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
