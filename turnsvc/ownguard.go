package turnsvc

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// The own-address guard: what a relay may never send to, whatever the peer policy says.

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// neverRelayable reports whether ip addresses a group of hosts: multicast, or the limited
// broadcast 255.255.255.255. Such a datagram reaches every listener of the link, the server's
// own on 0.0.0.0 included, so no policy may open it (TURN relays unicast only).
func neverRelayable(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsMulticast() || ip == limitedBroadcast
}

// ownGuard decides which peers a relay may never send to, beyond the peer policy.
type ownGuard struct {
	// own are the server's own addresses (guardedOwnIPs): reachable only as a live relay.
	own []netip.Addr
	// relay are the addresses relay sockets are bound to or advertised on (relayIPs): the only
	// own addresses on which a relay port is another caller's relay.
	relay []netip.Addr
}

// refuses reports whether a datagram to peer must be dropped: multicast or the limited
// broadcast, or an own address unless it is a relay address and peer's port a live relay
// socket. A nil guard refuses only what is never relayable.
func (g *ownGuard) refuses(peer netip.AddrPort, reg *registry) bool {
	ip := peer.Addr()
	if neverRelayable(ip) {
		return true
	}
	if g == nil || !slices.Contains(g.own, ip) {
		return false
	}
	return !slices.Contains(g.relay, ip) || !reg.isRelayPort(int(peer.Port()))
}

// newOwnGuard builds the guard from the machine's interface addresses, or, when they cannot be
// listed (ifErr: some sandboxes block netlink), warns and guards what is known without them:
// EXTERNAL_IP, TURN_LISTEN_HOST, the unspecified addresses and loopback (present on every
// machine). Relay sockets still have SO_BROADCAST off, so the broadcasts stay unreachable.
func newOwnGuard(set settings, ifaces []netip.Prefix, ifErr error, log *slog.Logger) *ownGuard {
	if ifErr != nil {
		log.Warn("own-address guard: cannot list the machine's addresses; guarding EXTERNAL_IP, TURN_LISTEN_HOST and loopback only, so relays may reach the machine's other addresses",
			"err", ifErr)
		ifaces = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}
	}
	return &ownGuard{own: set.guardedOwnIPs(ifaces), relay: set.relayIPs()}
}

// relayIPs lists the addresses relay sockets are reached on: EXTERNAL_IP (advertised) and
// TURN_LISTEN_HOST when specific (bound). With 0.0.0.0 the relays are bound to every address,
// yet only EXTERNAL_IP is one a client was given: the machine's other addresses stay closed on
// every port, relay ports included. Loopback counts when configured so (tests, demos).
func (s settings) relayIPs() []netip.Addr {
	var out []netip.Addr
	for _, b := range []net.IP{s.externalIP, s.listenIP} {
		ip, ok := netip.AddrFromSlice(b)
		if ip = ip.Unmap(); ok && !ip.IsUnspecified() && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}

// guardedOwnIPs lists the server's own addresses: EXTERNAL_IP, TURN_LISTEN_HOST when specific,
// the unspecified addresses (a datagram to 0.0.0.0 is delivered locally), and for each of
// ifaces, the machine's interface addresses, the address itself and, for IPv4, its directed
// broadcast (a datagram to x.y.z.255 is delivered to the server's own listeners on 0.0.0.0 as
// well as to the link). A relay may send to them on relay ports only, whatever the peer policy
// says: otherwise a client could reach the server's other ports (admin RPCs, roomsvc, credsvc,
// SSH) through its public address. The interfaces are guarded whatever TURN_LISTEN_HOST is,
// because a relay bound to one address reaches every other local address too.
func (s settings) guardedOwnIPs(ifaces []netip.Prefix) []netip.Addr {
	out := []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	add := func(ip netip.Addr) {
		ip = ip.WithZone("").Unmap()
		if ip.IsValid() && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	for _, b := range []net.IP{s.externalIP, s.listenIP} {
		if ip, ok := netip.AddrFromSlice(b); ok {
			add(ip)
		}
	}
	for _, p := range ifaces {
		add(p.Addr())
		if b, ok := directedBroadcast(p); ok {
			add(b)
		}
	}
	return out
}

// directedBroadcast returns the broadcast address of an IPv4 subnet (ip | ^mask). /31 and /32
// have none (RFC 3021: both addresses of a /31 are hosts).
func directedBroadcast(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() < 0 || p.Bits() > 30 {
		return netip.Addr{}, false
	}
	b := p.Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, v))), true
}

// interfaceIPs lists the addresses of the machine's network interfaces, with their prefix
// length (for the directed broadcast).
func interfaceIPs() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the machine's addresses for the own-address guard: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		var ip net.IP
		bits := -1
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
			bits, _ = v.Mask.Size()
		case *net.IPAddr:
			ip = v.IP
		}
		x, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		x = x.Unmap()
		if bits > x.BitLen() {
			bits -= 128 - 32 // a 16-byte mask on an IPv4 address
		}
		if bits < 0 || bits > x.BitLen() {
			bits = x.BitLen() // no usable mask: the address alone
		}
		out = append(out, netip.PrefixFrom(x, bits))
	}
	return out, nil
}

// noBroadcast turns SO_BROADCAST off on a relay socket (Go turns it on for every UDP socket),
// so that the kernel refuses a datagram to any broadcast address (EACCES), one the guard does
// not know included (an interface added after start).
func noBroadcast(conn net.PacketConn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("relay socket %T has no file descriptor to turn SO_BROADCAST off", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("turn SO_BROADCAST off: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 0)
	}); err != nil {
		return fmt.Errorf("turn SO_BROADCAST off: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("turn SO_BROADCAST off: %w", serr)
	}
	return nil
}
