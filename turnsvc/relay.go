package turnsvc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"github.com/tuturu/tuturu/internal/ratelimit"
)

var errCapacity = errors.New("turnsvc: allocation capacity reached")

// relayGenerator opens relay sockets in the configured port range and wraps them, so that
// turnsvc can count their traffic, cap their bandwidth and close them (which ends the pion
// allocation).
type relayGenerator struct {
	inner   *turn.RelayAddressGeneratorPortRange
	reg     *registry
	bitrate int // bytes per second per allocation; 0 = no cap
	// guard keeps relays off the server's own addresses but its relays, and off broadcast and
	// multicast (ownguard.go).
	guard *ownGuard
}

func (g *relayGenerator) Validate() error { return g.inner.Validate() }

func (g *relayGenerator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	if g.reg.full() {
		return nil, nil, errCapacity
	}
	conn, addr, err := g.inner.AllocatePacketConn(network, requestedPort)
	if err != nil {
		return nil, nil, fmt.Errorf("open relay socket: %w", err)
	}
	if err := noBroadcast(conn); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	udp, ok := addr.(*net.UDPAddr)
	if !ok {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("relay address %v is not UDP", addr)
	}
	a := &allocation{relay: udp, port: udp.Port}
	rc := &relayConn{PacketConn: conn, a: a, reg: g.reg, guard: g.guard}
	rc.udp, _ = conn.(*net.UDPConn)
	// pion's relay buffer is 1600 bytes too; longer datagrams are truncated either way.
	rc.buf = make([]byte, 4+1600)
	if g.bitrate > 0 {
		rc.limit = newLimiter(g.bitrate)
	}
	a.conn = rc
	if !g.reg.reserve(a) {
		_ = conn.Close()
		return nil, nil, errCapacity
	}
	return rc, addr, nil
}

func (g *relayGenerator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("turnsvc: TCP relays (RFC 6062) are not supported")
}

// relayConn is one allocation's relay socket. Reads are peer→client, writes client→peer.
type relayConn struct {
	net.PacketConn
	udp      *net.UDPConn // the same socket, for the allocation-free calls; nil if not UDP
	lastPeer *net.UDPAddr // the peer of the previous datagram; only pion's relay goroutine reads
	buf      []byte       // 4 bytes of ChannelData header, then a datagram; same goroutine
	a        *allocation
	reg      *registry
	limit    *limiter
	guard    *ownGuard   // own addresses reachable as live relays only; nil: none
	guarded  atomic.Bool // the guard has dropped a datagram of this allocation (logged once)
	once     sync.Once
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.udp == nil {
		return c.readOther(p)
	}
	for {
		n, ap, err := c.udp.ReadFromUDPAddrPort(c.buf[4:])
		if err != nil {
			c.a.reason.Load() // see fence
			return 0, nil, err
		}
		if c.limit != nil && !c.limit.allow(n) {
			continue // over the cap: drop, as a congested link would
		}
		c.a.bytesTo.Add(uint64(n))
		c.a.pktsTo.Add(1)
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if c.a.relayToClient(c.reg.udpOut, c.buf, n, ap) {
			continue
		}
		return copy(p, c.buf[4:4+n]), c.peerAddr(ap), nil
	}
}

// readOther is ReadFrom for a relay socket that is not a *net.UDPConn (never in practice).
func (c *relayConn) readOther(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			c.a.reason.Load() // see fence
			return n, addr, err
		}
		if c.limit != nil && !c.limit.allow(n) {
			continue
		}
		c.a.bytesTo.Add(uint64(n))
		c.a.pktsTo.Add(1)
		return n, addr, nil
	}
}

// peerAddr returns ap as a *net.UDPAddr. A relay nearly always talks to one peer, so the
// previous address is handed out again while it does not change, instead of allocating one per
// datagram as net.UDPConn.ReadFrom does. pion only reads it.
func (c *relayConn) peerAddr(ap netip.AddrPort) *net.UDPAddr {
	if l := c.lastPeer; l == nil || l.Port != int(ap.Port()) || !ipEqual(l.IP, ap.Addr()) {
		c.lastPeer = net.UDPAddrFromAddrPort(ap)
	}
	return c.lastPeer
}

func ipEqual(ip net.IP, a netip.Addr) bool {
	if a.Is4() {
		v4 := ip.To4()
		return v4 != nil && [4]byte(v4) == a.As4()
	}
	return len(ip) == net.IPv6len && [16]byte(ip) == a.As16()
}

// WriteTo relays a datagram from the client to a peer (pion's path).
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if u, ok := addr.(*net.UDPAddr); ok && c.udp != nil {
		ap := u.AddrPort()
		return c.send(p, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil)
	}
	return c.send(p, netip.AddrPort{}, addr)
}

// send relays p to peer (or, for a socket that is not UDP, to addr) with the own-IP guard, the
// bandwidth cap and the counters; pion's path and the fast path both use it.
func (c *relayConn) send(p []byte, peer netip.AddrPort, addr net.Addr) (int, error) {
	if addr != nil {
		if u, ok := addr.(*net.UDPAddr); ok {
			ap := u.AddrPort()
			peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	// Multicast and limited broadcast are never relayed; the server's own addresses are
	// reachable as peers only so that two relayed callers can reach each other: they must not
	// open the server's other ports (admin RPCs, SSH...).
	if c.guard.refuses(peer, c.reg) {
		c.refuseOwn(peer)
		return len(p), nil
	}
	if c.limit != nil && !c.limit.allow(len(p)) {
		return len(p), nil // dropped, as a congested link would
	}
	// Counted before the write, so that a reply relayed back is never seen before its request.
	c.a.bytesFrom.Add(uint64(len(p)))
	c.a.pktsFrom.Add(1)
	var n int
	var err error
	if addr == nil {
		n, err = c.udp.WriteToUDPAddrPort(p, peer)
	} else {
		n, err = c.PacketConn.WriteTo(p, addr)
	}
	if err != nil {
		c.a.bytesFrom.Add(^uint64(len(p) - 1))
		c.a.pktsFrom.Add(^uint64(0))
	}
	return n, err
}

// refuseOwn counts a datagram the own-address guard dropped and reports the first one of the
// allocation (not every one: a client may keep sending).
func (c *relayConn) refuseOwn(peer netip.AddrPort) {
	c.reg.st.peersDenied.Add(1)
	if !c.guarded.Swap(true) && c.reg.onGuarded != nil {
		c.reg.onGuarded(c.a, peer)
	}
}

// Close is idempotent: turnsvc closes a relay to end an allocation, then pion closes it again.
func (c *relayConn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.PacketConn.Close()
		c.reg.release(c.a)
	})
	return err
}

// limiter is a token bucket over bytes, shared by both directions of one allocation.
type limiter struct {
	mu    sync.Mutex
	limit ratelimit.Limit // bytes per second
	b     ratelimit.Bucket
}

func newLimiter(bytesPerSecond int) *limiter {
	// Half a second of traffic as burst absorbs a video keyframe without letting a client
	// exceed the cap for long.
	burst := max(float64(bytesPerSecond)/2, 16<<10)
	return &limiter{limit: ratelimit.Limit{Rate: float64(bytesPerSecond), Burst: burst}}
}

// allow takes n bytes; false means the datagram is over the cap.
func (l *limiter) allow(n int) bool {
	now := time.Now()
	l.mu.Lock()
	ok, _ := l.b.Take(now, l.limit, float64(n))
	l.mu.Unlock()
	return ok
}
