package turnsvc

import (
	"net"
	"net/netip"
	"testing"
)

// openRelay opens a real loopback UDP socket as a relay and reserves it.
func openRelay(t *testing.T, r *registry) *allocation {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr)
	a := &allocation{relay: addr, port: addr.Port}
	a.conn = &relayConn{PacketConn: c, a: a, reg: r}
	if !r.reserve(a) {
		_ = c.Close()
		return nil
	}
	t.Cleanup(func() { _ = a.conn.Close() })
	return a
}

func TestRegistryQuotaKeysPeersAndClose(t *testing.T) {
	t.Parallel()
	st := newStats()
	r := newRegistry(st, 2, 3, 2)
	client := func(port int) net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }

	a1 := openRelay(t, r)
	if _, ok := r.attach(a1.port, client(1), "udp", "u", "p", []byte("key")); !ok {
		t.Fatal("first attach refused")
	}
	a2 := openRelay(t, r)
	r.attach(a2.port, client(2), "udp", "u", "p", []byte("key"))
	a3 := openRelay(t, r)
	if _, ok := r.attach(a3.port, client(3), "udp", "u", "p", []byte("key")); ok {
		t.Error("third allocation of one username attached within quota 2")
	}
	if openRelay(t, r) != nil {
		t.Error("fourth relay reserved over the total of 3")
	}

	if key, ok := r.liveKey(client(1), "u"); !ok || string(key) != "key" {
		t.Errorf("liveKey = %q, %v", key, ok)
	}
	if _, ok := r.liveKey(client(1), "other"); ok {
		t.Error("liveKey for another username")
	}
	if _, ok := r.liveKey(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, "u"); ok {
		t.Error("a TCP client matched a UDP client's allocation")
	}

	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	if !r.addPeer(client(1), ip("192.0.3.1")) || !r.addPeer(client(1), ip("192.0.3.2")) {
		t.Fatal("peers within the cap refused")
	}
	if r.addPeer(client(1), ip("192.0.3.3")) {
		t.Error("third peer accepted over the cap of 2")
	}
	r.removePeer(client(1), ip("192.0.3.2"))
	if !r.addPeer(client(1), ip("192.0.3.3")) {
		t.Error("peer refused after a permission expired")
	}

	if n := r.closeMatching("", "p", reasonRevoked); n != 3 {
		t.Errorf("closed %d, want 3", n)
	}
	if r.count() != 0 || len(r.byPort) != 0 {
		t.Errorf("registry not empty after close: %d live, %d sockets", r.count(), len(r.byPort))
	}
	if _, ok := r.liveKey(client(1), "u"); ok {
		t.Error("liveKey after the allocation closed")
	}
	closed, _ := st.snapshot()
	if closed[reasonRevoked] != 3 {
		t.Errorf("closed reasons = %v", closed)
	}
	// closing twice is harmless and counted once
	_ = a1.conn.Close()
	if closed, _ := st.snapshot(); closed[reasonRevoked] != 3 {
		t.Errorf("double close counted twice: %v", closed)
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := newLimiter(100_000) // burst is 50 kB
	sent := 0
	for l.allow(1000) {
		sent += 1000
		if sent > 1_000_000 {
			t.Fatal("limiter never refused")
		}
	}
	if sent < 49_000 || sent > 51_000 {
		t.Errorf("burst allowed %d bytes, want about 50000", sent)
	}
}
