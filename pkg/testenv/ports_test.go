package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortsLieBelowTheEphemeralRange: the ports handed out are outside the range outgoing
// connections take their local ports from, free when handed out, and never handed out twice.
func TestFreePortsLieBelowTheEphemeralRange(t *testing.T) {
	high := ephemeralLow()
	seen := map[int]bool{}
	for range 200 {
		addr := freeAddr()
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("freeAddr() = %q: %v", addr, err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" || port < lowestPort || port >= high {
			t.Fatalf("freeAddr() = %q; want 127.0.0.1 and a port in [%d, %d)", addr, lowestPort, high)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening on the free address %s: %v", addr, err)
		}
		_ = l.Close()
	}
}
