package turnsvc

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// fence orders pion's request handling before turnsvc closing an allocation.
//
// pion/turn v4.1.4 stores a permission's timer (Permission.start) after publishing the
// permission, without a lock, and Allocation.Close reads it from the relay goroutine. When
// turnsvc closes an allocation (revocation, admin, shutdown) nothing orders the two, so the race
// detector flags pion. Every STUN message the server sends (the response that follows the
// store) marks the fence; a closer syncs with it before closing, and the relay goroutine syncs
// with the closer through allocation.reason. ChannelData (first byte 0x40-0x7f) never touches
// it, so relayed media pays nothing.
type fence struct{ seq atomic.Uint64 }

func (f *fence) mark(p []byte) {
	if len(p) > 0 && p[0] < 0x40 {
		f.seq.Add(1)
	}
}

func (f *fence) sync() { f.seq.Load() }

// fencedPacketConn is a TURN server socket that marks the fence on STUN writes. It also sends
// through WriteToUDPAddrPort, which unlike WriteTo allocates nothing per datagram.
type fencedPacketConn struct {
	net.PacketConn
	udp *net.UDPConn // the same socket; nil if not UDP
	f   *fence
	reg *registry // for the ChannelData fast path (fastpath.go)
	// addrs hands out one *net.UDPAddr per client instead of one per datagram. Only pion's read
	// loop of this socket calls ReadFrom, so it needs no lock; pion only reads the addresses.
	addrs map[netip.AddrPort]*net.UDPAddr
	// cur is the client of the datagram pion is handling, so that the AuthHandler can tell which
	// read loop it holds (Service.loopOf); budget is that loop's lookup budget.
	cur    atomic.Pointer[net.UDPAddr]
	budget *loopBudget
}

// maxCachedAddrs bounds addrs; when full it starts over (a few allocations, then warm again).
const maxCachedAddrs = 4096

func (c *fencedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.udp == nil {
		return c.PacketConn.ReadFrom(p)
	}
	var n int
	var ap netip.AddrPort
	for {
		var err error
		n, ap, err = c.udp.ReadFromUDPAddrPort(p)
		if err != nil {
			return n, nil, err
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !isChannelData(p[:n]) || !c.reg.relayFromClient(ap, p[:n]) {
			break
		}
	}
	addr, ok := c.addrs[ap]
	if !ok {
		if len(c.addrs) >= maxCachedAddrs {
			clear(c.addrs)
		}
		addr = net.UDPAddrFromAddrPort(ap)
		c.addrs[ap] = addr
	}
	c.cur.Store(addr)
	return n, addr, nil
}

func newFencedPacketConn(pc net.PacketConn, reg *registry) *fencedPacketConn {
	udp, _ := pc.(*net.UDPConn)
	return &fencedPacketConn{PacketConn: pc, udp: udp, f: &reg.fence, reg: reg, addrs: map[netip.AddrPort]*net.UDPAddr{}}
}

// WriteTo sends a message from pion; an error response may be replaced by one with its
// ERROR-CODE (refusal.go).
func (c *fencedPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	out := p
	if isErrorResponse(p) {
		out = c.reg.answerError(p, addr)
	}
	var n int
	var err error
	if u, ok := addr.(*net.UDPAddr); ok && c.udp != nil {
		n, err = c.udp.WriteToUDPAddrPort(out, u.AddrPort())
	} else {
		n, err = c.PacketConn.WriteTo(out, addr)
	}
	c.f.mark(out)
	if err == nil {
		n = len(p)
	}
	return n, err
}
