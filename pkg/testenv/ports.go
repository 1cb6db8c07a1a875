package testenv

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The ports the stack's servers listen on are picked before the servers start, so another
// listener can take one in between and the server fails with "address already in use". A port
// from the kernel's ephemeral range (ip_local_port_range, what listening on port 0 picks from)
// is also where every outgoing connection on the machine takes its local port, so the tests'
// own clients could take it. The ports picked here lie below that range, at random, and are
// never handed out twice by one process: only another process picking the same port at the
// same moment can still collide.
const lowestPort = 10000

var ports struct {
	mu     sync.Mutex
	handed map[int]bool
}

// freeAddr returns a loopback address nothing listens on now, or "".
func freeAddr() string {
	high := ephemeralLow()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.handed == nil {
		ports.handed = map[int]bool{}
	}
	for range 1000 {
		port := lowestPort + mrand.IntN(high-lowestPort)
		if ports.handed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		_ = l.Close()
		ports.handed[port] = true
		return addr
	}
	return ""
}

// freePort returns a loopback port nothing listens on now, or 0.
func freePort() int {
	_, port, err := net.SplitHostPort(freeAddr())
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// ephemeralLow is the lowest port of the kernel's ephemeral range: 32768 where it cannot be read
// (Linux's default, and close to other systems').
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= lowestPort+1000 {
		return 32768
	}
	return n
}
