package turnsvc

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/tuturu/tuturu/internal/testnet"
)

// TestGuardedOwnIPs: every own address is guarded whatever the peer policy says — a public
// EXTERNAL_IP (which the deny-list allows) included — and so are the interface addresses, their
// directed broadcasts and the unspecified addresses.
func TestGuardedOwnIPs(t *testing.T) {
	t.Parallel()
	ifaces := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.9.9.9/24"), netip.MustParsePrefix("10.9.9.9/24")}
	ifaceWant := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.255.255.255"),
		netip.MustParseAddr("::1"), netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("10.9.9.255")}
	cases := []struct {
		name, listen, external, allow string
		want                          []string
	}{
		{"public external", "0.0.0.0", "8.8.8.8", "", []string{"8.8.8.8"}},
		{"public external and listen", "8.8.4.4", "8.8.8.8", "", []string{"8.8.8.8", "8.8.4.4"}},
		{"private listen, public external", "10.1.2.3", "8.8.8.8", "", []string{"8.8.8.8", "10.1.2.3"}},
		{"operator allows the range", "10.1.2.3", "8.8.8.8", "10.0.0.0/8,8.0.0.0/8", []string{"8.8.8.8", "10.1.2.3"}},
		{"loopback allowed", "127.0.0.1", "127.0.0.1", "127.0.0.0/8", []string{"127.0.0.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, "http://127.0.0.1:1")
			cfg.ListenHost, cfg.ExternalIP, cfg.AllowPeers = c.listen, c.external, c.allow
			set, err := cfg.validate()
			if err != nil {
				t.Fatal(err)
			}
			want := []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
			for _, w := range c.want {
				want = append(want, netip.MustParseAddr(w))
			}
			for _, ip := range ifaceWant {
				if !slices.Contains(want, ip) {
					want = append(want, ip)
				}
			}
			if got := set.guardedOwnIPs(ifaces); !slices.Equal(got, want) {
				t.Errorf("guardedOwnIPs = %v, want %v", got, want)
			}
		})
	}
}

func TestDirectedBroadcast(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ prefix, want string }{
		{"192.0.2.2/24", "192.0.2.255"},
		{"127.0.0.1/8", "127.255.255.255"},
		{"10.1.2.3/30", "10.1.2.3"},
		{"172.16.5.9/12", "172.31.255.255"},
		{"100.64.7.7/31", ""}, // RFC 3021: no broadcast
		{"198.51.100.7/32", ""},
		{"2001:db8::1/64", ""},
	} {
		got, ok := directedBroadcast(netip.MustParsePrefix(c.prefix))
		if c.want == "" {
			if ok {
				t.Errorf("directedBroadcast(%s) = %v, want none", c.prefix, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(c.want) {
			t.Errorf("directedBroadcast(%s) = %v, %v, want %s", c.prefix, got, ok, c.want)
		}
	}
}

// TestInterfaceIPs: the machine's own addresses include loopback with its prefix, so that
// loopback's broadcast 127.255.255.255 is guarded.
func TestInterfaceIPs(t *testing.T) {
	t.Parallel()
	ips, err := interfaceIPs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ips, netip.MustParsePrefix("127.0.0.1/8")) {
		t.Errorf("interfaceIPs = %v, want 127.0.0.1/8 among them", ips)
	}
}

// TestRelaySocketRefusesBroadcast: relay sockets have SO_BROADCAST off, so the kernel itself
// refuses a broadcast the guard would not know (here with an empty guard): nothing reaches a
// listener on 0.0.0.0.
func TestRelaySocketRefusesBroadcast(t *testing.T) {
	t.Parallel()
	r := newRegistry(newStats(), 4, 4, 4)
	gen := &relayGenerator{
		inner: &turn.RelayAddressGeneratorPortRange{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1",
			MinPort: 40000, MaxPort: 60000, MaxRetries: 64},
		reg: r,
	}
	if err := gen.Validate(); err != nil {
		t.Fatal(err)
	}
	pc, _, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	service := anyAddrListener(t)
	dst := &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: service.LocalAddr().(*net.UDPAddr).Port}
	if _, err := pc.WriteTo([]byte("broadcast"), dst); !errors.Is(err, syscall.EACCES) {
		t.Errorf("relay socket write to %v: %v, want EACCES (SO_BROADCAST off)", dst, err)
	}
	expectNothing(t, service)
}

// anyAddrListener is a UDP service on 0.0.0.0, which broadcasts to any local subnet reach.
func anyAddrListener(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// expectNothing fails if a datagram arrives on c within 200 ms.
func expectNothing(t *testing.T, c *net.UDPConn) {
	t.Helper()
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, from, err := c.ReadFromUDP(buf); err == nil {
		t.Errorf("the server's own listener on 0.0.0.0 was reached from %v: %q", from, buf[:n])
	}
}

// TestRelayGuardOwnPorts: a guarded own address is reachable only as a live relay — a relay
// port on an address relays are bound to or advertised on. The same port number on another own
// address (here 127.0.0.3, a second address of the machine where some service happens to use
// that number) is refused like any other port of it. Refusals are counted.
func TestRelayGuardOwnPorts(t *testing.T) {
	t.Parallel()
	r := newRegistry(newStats(), 4, 4, 4)
	from := openRelay(t, r)
	to := openRelay(t, r)
	from.conn.udp = from.conn.PacketConn.(*net.UDPConn)
	from.conn.guard = &ownGuard{
		own:   []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.3")},
		relay: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	}
	toConn := to.conn.PacketConn.(*net.UDPConn)

	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A service on the other own address, on the relay's port number.
	sameNumber, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: to.port})
	if err != nil {
		t.Fatal(err)
	}
	defer sameNumber.Close()

	if _, err := from.conn.send([]byte("to a service"), other.LocalAddr().(*net.UDPAddr).AddrPort(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := from.conn.send([]byte("to a relay port elsewhere"), sameNumber.LocalAddr().(*net.UDPAddr).AddrPort(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := from.conn.send([]byte("to a relay"), to.relay.AddrPort(), nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = toConn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _, err := toConn.ReadFromUDP(buf); err != nil || string(buf[:n]) != "to a relay" {
		t.Errorf("relay to relay: %q, %v", buf[:n], err)
	}
	for _, c := range []*net.UDPConn{other, sameNumber} {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil {
			t.Errorf("a guarded own address was reached on %v, not a live relay: %q", c.LocalAddr(), buf[:n])
		}
	}
	if n := r.st.peersDenied.Load(); n != 2 {
		t.Errorf("peersDenied = %d, want 2", n)
	}
}

// TestOwnGuardRefuses: the guard's decision for each kind of peer.
func TestOwnGuardRefuses(t *testing.T) {
	t.Parallel()
	r := newRegistry(newStats(), 4, 4, 4)
	relay := openRelay(t, r) // a live relay port on 127.0.0.1
	g := &ownGuard{
		own: []netip.Addr{netip.IPv4Unspecified(), netip.MustParseAddr("127.0.0.1"),
			netip.MustParseAddr("127.255.255.255"), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("10.0.0.5")},
		relay: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("8.8.8.8")},
	}
	free := relay.port + 1 // not a live relay
	if r.isRelayPort(free) {
		free = relay.port - 1
	}
	for _, c := range []struct {
		peer string
		port int
		want bool
	}{
		{"127.0.0.1", relay.port, false},       // another caller's relay
		{"8.8.8.8", relay.port, false},         // the same relay, as advertised
		{"127.0.0.1", free, true},              // an own service
		{"8.8.8.8", free, true},                //
		{"10.0.0.5", relay.port, true},         // own, but relays are not bound there
		{"127.255.255.255", relay.port, true},  // a directed broadcast
		{"0.0.0.0", relay.port, true},          // delivered locally
		{"255.255.255.255", relay.port, true},  // never relayable
		{"224.0.0.1", relay.port, true},        //
		{"ff02::1", relay.port, true},          //
		{"127.0.0.2", free, false},             // not the server's: the peer policy decides
		{"::ffff:224.0.0.1", relay.port, true}, // mapped forms too
	} {
		peer := netip.AddrPortFrom(netip.MustParseAddr(c.peer).Unmap(), uint16(c.port))
		if got := g.refuses(peer, r); got != c.want {
			t.Errorf("refuses(%v) = %v, want %v", peer, got, c.want)
		}
	}
	// no guard (tests of other parts): only what is never relayable
	var none *ownGuard
	if none.refuses(netip.MustParseAddrPort("127.0.0.1:1"), r) || !none.refuses(netip.MustParseAddrPort("224.0.0.1:1"), r) {
		t.Error("a nil guard refuses other than multicast and broadcast")
	}
}

// TestRelayIPs: relays are reached on EXTERNAL_IP and on TURN_LISTEN_HOST when specific.
func TestRelayIPs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		listen, external string
		want             []string
	}{
		{"0.0.0.0", "8.8.8.8", []string{"8.8.8.8"}},
		{"10.1.2.3", "8.8.8.8", []string{"8.8.8.8", "10.1.2.3"}},
		{"127.0.0.1", "127.0.0.1", []string{"127.0.0.1"}},
	} {
		cfg := testConfig(t, "http://127.0.0.1:1")
		cfg.ListenHost, cfg.ExternalIP = c.listen, c.external
		set, err := cfg.validate()
		if err != nil {
			t.Fatal(err)
		}
		var want []netip.Addr
		for _, w := range c.want {
			want = append(want, netip.MustParseAddr(w))
		}
		if got := set.relayIPs(); !slices.Equal(got, want) {
			t.Errorf("listen %s, external %s: relayIPs = %v, want %v", c.listen, c.external, got, want)
		}
	}
}

// TestOwnAddressGuard: a real TURN client allocates against turnsvc whose own address
// (127.0.0.1, allowed by the peer policy as a public EXTERNAL_IP would be) runs another UDP
// service. Relaying to that service, or to the TURN port itself, is refused and counted, on
// pion's path (Send indications) and on the fast path (ChannelData) alike; a peer on a relay
// port of the same address — a second relayed caller — is still reached, and so is a peer on
// an address that is not the server's.
func TestOwnAddressGuard(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url) // TURN_LISTEN_HOST = EXTERNAL_IP = 127.0.0.1, loopback allowed
	s, _ := startTurn(t, cfg)

	service, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	if s.reg.isRelayPort(service.LocalAddr().(*net.UDPAddr).Port) {
		t.Fatal("the stand-in service got a relay port")
	}

	ua, pa := cred.issue("alice", time.Hour)
	ub, pb := cred.issue("bob", time.Hour)
	relayA, err := turnClient(t, "udp", s, ua, pa).Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	relayB, err := turnClient(t, "udp", s, ub, pb).Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}

	// A second relayed caller on the same address: relay to relay works both ways.
	if err := relayPing(relayB, relayA, "b to a"); err != nil {
		t.Fatal(err)
	}
	if err := relayPing(relayA, relayB, "a to b"); err != nil {
		t.Fatal(err)
	}
	// A peer elsewhere (127.0.0.2 is not one of the server's addresses here) is reached.
	if err := testnet.RelayRoundTrip(relayA, testnet.UDPEchoPeer(t).LocalAddr(), "elsewhere", 3*time.Second); err != nil {
		t.Fatal(err)
	}

	before := s.st.peersDenied.Load()
	const sent = 20
	for i := range sent {
		// The first datagrams go as Send indications through pion, the later ones as ChannelData
		// on the fast path once pion's client has bound a channel.
		if _, err := relayA.WriteTo([]byte(fmt.Sprintf("to a service %d", i)), service.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if _, err := relayA.WriteTo([]byte("to the TURN port"), s.TURNAddr()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, 3*time.Second, "refusals counted", func() bool { return s.st.peersDenied.Load()-before >= 2*sent })
	if err := testnet.RelayRoundTrip(relayA, testnet.UDPEchoPeer(t).LocalAddr(), "still relaying", 3*time.Second); err != nil {
		t.Fatal(err) // flushes the relay: anything that got through has arrived by now
	}
	buf := make([]byte, 64)
	_ = service.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, from, err := service.ReadFromUDP(buf); err == nil {
		t.Fatalf("the server's own non-relay port was reached through a relay from %v: %q", from, buf[:n])
	}
	a := s.reg.match(ua, "", false)
	if len(a) != 1 || a[0].chans.Load() == nil || len(*a[0].chans.Load()) == 0 {
		t.Error("no channel was bound: the fast path was not exercised")
	}
	if st := getStats(t, s); st.GetPeersDenied() < 2*sent {
		t.Errorf("GetStats.peers_denied = %d, want >= %d", st.GetPeersDenied(), 2*sent)
	}
}

// relayPing sends msg from one relay to the other until it arrives (the receiver's permission
// for the sender may still be on its way), at most 3 s.
func relayPing(from, to net.PacketConn, msg string) error {
	buf := make([]byte, 64)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := from.WriteTo([]byte(msg), to.LocalAddr()); err != nil {
			return err
		}
		// The receiver writes back, so that it holds a permission for the sender.
		if _, err := to.WriteTo([]byte("permission"), from.LocalAddr()); err != nil {
			return err
		}
		_ = to.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, _, err := to.ReadFrom(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == msg {
				_ = to.SetReadDeadline(time.Time{})
				return nil
			}
		}
	}
	_ = to.SetReadDeadline(time.Time{})
	return fmt.Errorf("relay to relay: %q did not arrive within 3s", msg)
}

// TestBroadcastGuard: a real TURN client, with a peer policy that allows the addresses, cannot
// reach a UDP service on 0.0.0.0 through a subnet's directed broadcast (loopback's
// 127.255.255.255, and a real interface's when the machine has one), the limited broadcast or
// multicast; each refusal is counted in peers.denied, and the relay still works afterwards.
func TestBroadcastGuard(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, peer string
		listen     netip.Prefix // the address turnsvc listens on (its relay address); zero: 127.0.0.1
	}{
		{name: "loopback broadcast", peer: "127.255.255.255"},
		{name: "limited broadcast", peer: "255.255.255.255"},
		{name: "multicast", peer: "224.0.0.1"},
	}
	if p, ok := broadcastInterface(t); ok {
		b, _ := directedBroadcast(p)
		cases = append(cases, struct {
			name, peer string
			listen     netip.Prefix
		}{"interface broadcast", b.String(), p})
	} else {
		t.Log("no non-loopback IPv4 interface with a broadcast address: only loopback's is tested")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred := newTestCredsvc()
			url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
			cfg := testConfig(t, url)
			cfg.AllowPeers = "127.0.0.0/8,::1/128,224.0.0.0/4,255.255.255.255/32"
			if c.listen.IsValid() {
				cfg.ListenHost, cfg.ExternalIP = c.listen.Addr().String(), c.listen.Addr().String()
				cfg.AllowPeers += "," + c.listen.Masked().String()
			}
			s, _ := startTurn(t, cfg)
			service := anyAddrListener(t)
			dst := &net.UDPAddr{IP: net.ParseIP(c.peer), Port: service.LocalAddr().(*net.UDPAddr).Port}

			u, p := cred.issue("alice", time.Hour)
			relay, err := turnClient(t, "udp", s, u, p).Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			before := s.st.peersDenied.Load()
			const sent = 20
			for i := range sent {
				// Send indications, then ChannelData once a channel is bound (when the
				// permission is granted at all: multicast and broadcast are refused there).
				_, _ = relay.WriteTo([]byte(fmt.Sprintf("broadcast %d", i)), dst)
				time.Sleep(10 * time.Millisecond)
			}
			if err := testnet.RelayRoundTrip(relay, testnet.UDPEchoPeer(t).LocalAddr(), "still relaying", 3*time.Second); err != nil {
				t.Fatal(err) // flushes the relay: anything that got through has arrived by now
			}
			expectNothing(t, service)
			eventually(t, 3*time.Second, "refusals counted", func() bool { return s.st.peersDenied.Load() > before })
			t.Logf("%d refusals counted for %d datagrams to %v", s.st.peersDenied.Load()-before, sent, dst)
		})
	}
}

// broadcastInterface returns an address and prefix of a non-loopback IPv4 interface that is
// up and has a directed broadcast address.
func broadcastInterface(t *testing.T) (netip.Prefix, bool) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("list interfaces: %v", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagBroadcast == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil {
				continue
			}
			bits, _ := n.Mask.Size()
			if bits > 32 {
				bits -= 96
			}
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte(n.IP.To4())), bits)
			if _, ok := directedBroadcast(p); ok {
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

// TestOwnGuardWithoutInterfaces: when the machine's addresses cannot be listed, turnsvc still
// starts, warns, and guards EXTERNAL_IP, TURN_LISTEN_HOST, the unspecified addresses and
// loopback.
func TestOwnGuardWithoutInterfaces(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.ListenHost, cfg.ExternalIP = "10.1.2.3", "8.8.8.8"
	set, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	g := newOwnGuard(set, nil, errors.New("netlink: operation not permitted"), slog.New(slog.NewTextHandler(&logs, nil)))
	want := []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("8.8.8.8"),
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.255.255.255"),
		netip.MustParseAddr("::1")}
	if !slices.Equal(g.own, want) {
		t.Errorf("guarded = %v, want %v", g.own, want)
	}
	if !slices.Equal(g.relay, set.relayIPs()) {
		t.Errorf("relay addresses = %v, want %v", g.relay, set.relayIPs())
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "operation not permitted") {
		t.Errorf("no warning with the cause logged: %q", out)
	}
}
