package turnsvc

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
)

// The ChannelData fast path relays media of UDP allocations without going through pion's
// per-datagram request handling (a request struct, logging calls, a decode, two locked lookups
// and string allocations for the 5-tuple fingerprint, an encode with a fresh buffer).
//
// pion still owns every TURN request: Allocate, Refresh, CreatePermission and ChannelBind go
// through it, and its events tell turnsvc which channels exist. With a channel bound,
// ChannelData from the client goes straight to the relay socket, and datagrams from the peer
// straight back as ChannelData; everything else (Send/Data indications, unknown channels, TCP
// and TLS clients) falls through to pion unchanged. The same counters, bandwidth cap and own-IP
// guard apply on both paths, and a closed allocation leaves the fast path when it is released.

// channel is one channel binding of an allocation.
type channel struct {
	number uint16
	peer   netip.AddrPort
}

// isChannelData reports whether b starts with a ChannelData header (first two bits 01).
func isChannelData(b []byte) bool { return len(b) >= 4 && b[0]&0xc0 == 0x40 }

// channelPeer returns the peer bound to number.
func (a *allocation) channelPeer(number uint16) (netip.AddrPort, bool) {
	if list := a.chans.Load(); list != nil {
		for _, c := range *list {
			if c.number == number {
				return c.peer, true
			}
		}
	}
	return netip.AddrPort{}, false
}

// channelFor returns the channel bound to peer.
func (a *allocation) channelFor(peer netip.AddrPort) (uint16, bool) {
	if list := a.chans.Load(); list != nil {
		for _, c := range *list {
			if c.peer == peer {
				return c.number, true
			}
		}
	}
	return 0, false
}

// channelCreated and channelDeleted mirror pion's channel bindings (copy on write: bindings
// change every few minutes, datagrams arrive every few milliseconds).
func (r *registry) channelCreated(relay, peer net.Addr, number uint16) {
	a, ap, ok := r.channelTarget(relay, peer)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var list []channel
	if old := a.chans.Load(); old != nil {
		list = slices.DeleteFunc(slices.Clone(*old), func(c channel) bool { return c.number == number || c.peer == ap })
	}
	list = append(list, channel{number: number, peer: ap})
	a.chans.Store(&list)
}

func (r *registry) channelDeleted(relay, peer net.Addr, number uint16) {
	a, _, ok := r.channelTarget(relay, peer)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := a.chans.Load(); old != nil {
		list := slices.DeleteFunc(slices.Clone(*old), func(c channel) bool { return c.number == number })
		a.chans.Store(&list)
	}
}

func (r *registry) channelTarget(relay, peer net.Addr) (*allocation, netip.AddrPort, bool) {
	ru, ok1 := relay.(*net.UDPAddr)
	pu, ok2 := peer.(*net.UDPAddr)
	if !ok1 || !ok2 {
		return nil, netip.AddrPort{}, false
	}
	r.mu.RLock()
	a := r.byPort[ru.Port]
	r.mu.RUnlock()
	if a == nil {
		return nil, netip.AddrPort{}, false
	}
	ap := pu.AddrPort()
	return a, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// fastClient returns the UDP allocation of a client address, if it may use the fast path.
func (r *registry) fastClient(client netip.AddrPort) *allocation {
	v, ok := r.fast.Load(client)
	if !ok {
		return nil
	}
	return v.(*allocation)
}

// relayFromClient sends the payload of a ChannelData datagram from client to its channel's
// peer. It returns false when pion must handle the datagram instead.
func (r *registry) relayFromClient(client netip.AddrPort, b []byte) bool {
	a := r.fastClient(client)
	if a == nil {
		return false
	}
	number := binary.BigEndian.Uint16(b)
	length := int(binary.BigEndian.Uint16(b[2:]))
	if 4+length > len(b) {
		return false // malformed: pion decides
	}
	peer, ok := a.channelPeer(number)
	if !ok {
		return false
	}
	_, _ = a.conn.send(b[4:4+length], peer, nil)
	return true
}

// relayToClient sends a datagram from peer to the client as ChannelData when a channel is bound
// to peer. out must have room for 4 more bytes than payload. It returns false when pion must
// handle the datagram (no channel: a Data indication, or nothing).
func (a *allocation) relayToClient(out *net.UDPConn, buf []byte, n int, peer netip.AddrPort) bool {
	if out == nil || !a.clientAP.IsValid() {
		return false
	}
	number, ok := a.channelFor(peer)
	if !ok {
		return false
	}
	binary.BigEndian.PutUint16(buf[0:], number)
	binary.BigEndian.PutUint16(buf[2:], uint16(n))
	// Over UDP the 4-byte padding of ChannelData is optional (RFC 8656 §12.5); none is sent.
	_, _ = out.WriteToUDPAddrPort(buf[:4+n], a.clientAP)
	return true
}
