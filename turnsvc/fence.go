package turnsvc

import (
	"net"
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

// fencedPacketConn is a TURN server socket that marks the fence on STUN writes.
type fencedPacketConn struct {
	net.PacketConn
	f *fence
}

func (c *fencedPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	c.f.mark(p)
	return n, err
}
