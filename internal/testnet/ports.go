package testnet

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address free for TCP at the time of the call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TURN ports come from below the kernel's ephemeral range (32768 and up here) and below the relay
// range turnsvc allocates from (49152 and up by default): a port the kernel picked may be free
// when checked and then taken by another test's outgoing socket or relay before the server binds
// it, which tests running in parallel made happen.
const turnPortLow, turnPortHigh = 20000, 32000

var handedOut sync.Map // TURN ports already given to a test of this process

// FreeTURNPort returns a port free on 127.0.0.1 for both UDP and TCP at the time of the call,
// since TURN serves both on one number, and never the same one twice in a test process.
func FreeTURNPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := turnPortLow + rand.IntN(turnPortHigh-turnPortLow)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return 0
}
