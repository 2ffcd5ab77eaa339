package turnsvc

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestGuardedOwnIPs: permit admits the listen address as well as the external one, so a
// private TURN_LISTEN_HOST behind a public EXTERNAL_IP must be limited to relay ports too;
// otherwise a client could relay to every UDP port of the server's private interface.
func TestGuardedOwnIPs(t *testing.T) {
	cases := []struct {
		name, listen, external, allow string
		want                          []string
	}{
		{"private listen, public external", "10.1.2.3", "8.8.8.8", "", []string{"10.1.2.3"}},
		{"both private", "10.1.2.3", "192.168.7.7", "", []string{"192.168.7.7", "10.1.2.3"}},
		{"same private address", "10.1.2.3", "10.1.2.3", "", []string{"10.1.2.3"}},
		{"every interface", "0.0.0.0", "10.1.2.3", "", []string{"10.1.2.3"}},
		{"public only", "0.0.0.0", "8.8.8.8", "", nil},
		{"operator allows the range", "10.1.2.3", "8.8.8.8", "10.0.0.0/8", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, "http://127.0.0.1:1")
			cfg.ListenHost, cfg.ExternalIP, cfg.AllowPeers = c.listen, c.external, c.allow
			set, err := cfg.validate()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if ip := netip.MustParseAddr(w); !set.ownRelayIP(ip) || set.policy.Allowed(ip) {
					t.Fatalf("%s: want an own address that only ownRelayIP admits", w)
				}
			}
			got := set.guardedOwnIPs()
			var want []netip.Addr
			for _, w := range c.want {
				want = append(want, netip.MustParseAddr(w))
			}
			if !slices.Equal(got, want) {
				t.Errorf("guardedOwnIPs = %v, want %v", got, want)
			}
		})
	}
}

// TestRelayGuardOwnPorts: a guarded own address is reachable on relay ports only.
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
}
