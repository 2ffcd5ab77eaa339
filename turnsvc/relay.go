package turnsvc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/turn/v4"
)

var errCapacity = errors.New("turnsvc: allocation capacity reached")

// relayGenerator opens relay sockets in the configured port range and wraps them, so that
// turnsvc can count their traffic, cap their bandwidth and close them (which ends the pion
// allocation).
type relayGenerator struct {
	inner    *turn.RelayAddressGeneratorPortRange
	reg      *registry
	bitrate  int // bytes per second per allocation; 0 = no cap
	guardOwn bool
	ownIP    netip.Addr
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
	udp, ok := addr.(*net.UDPAddr)
	if !ok {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("relay address %v is not UDP", addr)
	}
	a := &allocation{relay: udp, port: udp.Port}
	rc := &relayConn{PacketConn: conn, a: a, reg: g.reg, guardOwn: g.guardOwn, ownIP: g.ownIP}
	rc.udp, _ = conn.(*net.UDPConn)
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
	lastPeer *net.UDPAddr // the peer of the previous datagram, only touched by pion's relay goroutine
	a        *allocation
	reg      *registry
	limit    *limiter
	guardOwn bool
	ownIP    netip.Addr
	once     sync.Once
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.readFrom(p)
		if err != nil {
			c.a.reason.Load() // see fence
			return n, addr, err
		}
		if c.limit != nil && !c.limit.allow(n) {
			continue // over the cap: drop, as a congested link would
		}
		c.a.bytesTo.Add(uint64(n))
		c.a.pktsTo.Add(1)
		return n, addr, nil
	}
}

// readFrom reads one datagram. A relay nearly always talks to one peer, so the peer's address
// is kept and handed out again while it does not change, instead of allocating one per datagram
// as net.UDPConn.ReadFrom does. pion only reads the address.
func (c *relayConn) readFrom(p []byte) (int, net.Addr, error) {
	if c.udp == nil {
		return c.PacketConn.ReadFrom(p)
	}
	n, ap, err := c.udp.ReadFromUDPAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if l := c.lastPeer; l == nil || l.Port != int(ap.Port()) || !ipEqual(l.IP, ap.Addr()) {
		c.lastPeer = net.UDPAddrFromAddrPort(ap)
	}
	return n, c.lastPeer, nil
}

func ipEqual(ip net.IP, a netip.Addr) bool {
	if a.Is4() {
		v4 := ip.To4()
		return v4 != nil && [4]byte(v4) == a.As4()
	}
	return len(ip) == net.IPv6len && [16]byte(ip) == a.As16()
}

// writeTo sends without the per-datagram allocation of net.UDPConn.WriteTo.
func (c *relayConn) writeTo(p []byte, addr net.Addr) (int, error) {
	if u, ok := addr.(*net.UDPAddr); ok && c.udp != nil {
		return c.udp.WriteToUDPAddrPort(p, u.AddrPort())
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.guardOwn {
		// The server's own relay IP is allowed as a peer only so that two relayed callers can
		// reach each other: it must not open the server's other ports on that address.
		if u, ok := addr.(*net.UDPAddr); ok {
			ip, _ := netip.AddrFromSlice(u.IP)
			if ip.Unmap() == c.ownIP && !c.reg.isRelayPort(u.Port) {
				return len(p), nil
			}
		}
	}
	if c.limit != nil && !c.limit.allow(len(p)) {
		return len(p), nil // dropped, as a congested link would
	}
	// Counted before the write, so that a reply relayed back is never seen before its request.
	c.a.bytesFrom.Add(uint64(len(p)))
	c.a.pktsFrom.Add(1)
	n, err := c.writeTo(p, addr)
	if err != nil {
		c.a.bytesFrom.Add(^uint64(len(p) - 1))
		c.a.pktsFrom.Add(^uint64(0))
	}
	return n, err
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
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(bytesPerSecond int) *limiter {
	// Half a second of traffic as burst absorbs a video keyframe without letting a client
	// exceed the cap for long.
	burst := max(float64(bytesPerSecond)/2, 16<<10)
	return &limiter{rate: float64(bytesPerSecond), burst: burst, tokens: burst, last: time.Now()}
}

func (l *limiter) allow(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < float64(n) {
		return false
	}
	l.tokens -= float64(n)
	return true
}
