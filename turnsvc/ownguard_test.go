package turnsvc

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestGuardedOwnIPs: every own address is guarded whatever the peer policy says — a public
// EXTERNAL_IP (which the deny-list allows) included — and so are the interface addresses and
// the unspecified ones.
func TestGuardedOwnIPs(t *testing.T) {
	ifaces := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"),
		netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("::ffff:10.9.9.9")}
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
			for _, ip := range ifaces[:3] {
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

// TestInterfaceIPs: the machine's own addresses include loopback.
func TestInterfaceIPs(t *testing.T) {
	ips, err := interfaceIPs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ips, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("interfaceIPs = %v, want 127.0.0.1 among them", ips)
	}
}

// TestRelayGuardOwnPorts: a guarded own address is reachable on relay ports only, and the
// refusals are counted.
func TestRelayGuardOwnPorts(t *testing.T) {
	r := newRegistry(newStats(), 4, 4, 4)
	from := openRelay(t, r)
	to := openRelay(t, r)
	from.conn.udp = from.conn.PacketConn.(*net.UDPConn)
	from.conn.guard = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	toConn := to.conn.PacketConn.(*net.UDPConn)

	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	if _, err := from.conn.send([]byte("to a service"), other.LocalAddr().(*net.UDPAddr).AddrPort(), nil); err != nil {
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
	_ = other.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := other.ReadFromUDP(buf); err == nil {
		t.Errorf("a guarded own address was reached on a port that is not a relay: %q", buf[:n])
	}
	if n := r.st.peersDenied.Load(); n != 1 {
		t.Errorf("peersDenied = %d, want 1", n)
	}
}

// TestOwnAddressGuard: a real TURN client allocates against turnsvc whose own address
// (127.0.0.1, allowed by the peer policy as a public EXTERNAL_IP would be) runs another UDP
// service. Relaying to that service, or to the TURN port itself, is refused and counted, on
// pion's path (Send indications) and on the fast path (ChannelData) alike; a peer on a relay
// port of the same address — a second relayed caller — is still reached, and so is a peer on
// an address that is not the server's.
func TestOwnAddressGuard(t *testing.T) {
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
	if err := roundTrip(relayA, udpPeer(t).LocalAddr(), "elsewhere", 3*time.Second); err != nil {
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
	if err := roundTrip(relayA, udpPeer(t).LocalAddr(), "still relaying", 3*time.Second); err != nil {
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
