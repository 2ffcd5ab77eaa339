package turnsvc

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Budgets for credential lookups that must wait for credsvc.
//
// pion calls the AuthHandler on the read loop of the UDP socket a request arrived on, so while
// an uncached username waits for Validate, every other datagram of that socket waits too —
// media of live allocations included. An attacker who sends Allocates with fresh well-formed
// usernames (one nonce serves for an hour, and UDP sources can be spoofed) could keep a socket
// waiting. What such a lookup may cost is bounded three ways; over any bound the request is
// refused at once with the result `throttled` (not cached: it says nothing about the username).
const (
	// loopShare is the fraction of a UDP read loop's time that lookups may hold it, on average
	// (100 ms per second); a loop that was idle may spend up to TURN_AUTH_TIMEOUT at once. At
	// ~1 ms per Validate that is ~100 fresh usernames per second per socket, far above the
	// joins of a deployment this size; with a slow credsvc, live relays on the socket still get
	// 90 % of its time.
	loopShare = 0.1
	// minLookupWait: a lookup is not started with less budget than this left: it would likely
	// time out before credsvc answers, an RPC spent for nothing.
	minLookupWait = 10 * time.Millisecond
	// lookupsPerIP and lookupBurstPerIP bound one client address, so that one unspoofed
	// attacker cannot spend a socket's whole budget. A browser asks once per username (UDP, TCP
	// and TLS Allocates share the lookup); 30 at once and 10 a second leave room for many
	// callers joining behind one NAT. IPv6 clients are counted per /64.
	lookupsPerIP     = 10
	lookupBurstPerIP = 30
	// maxTrackedIPs bounds the per-address buckets (a spoofer can invent addresses); when full,
	// idle buckets are swept at most once a second and new addresses are not tracked meanwhile
	// (the loop budget still bounds them).
	maxTrackedIPs = 16384
	// maxLookupFlights bounds the Validate calls in flight at once (each may outlive its
	// waiter, up to 3 s), so that a flood over TCP connections, which each have a read loop of
	// their own, cannot pile calls onto credsvc.
	maxLookupFlights = 64
)

// loopBudget is the waiting time one UDP read loop may still spend on lookups: a token bucket
// in units of time. Only that loop uses it; the mutex keeps it safe should that ever change.
type loopBudget struct {
	mu     sync.Mutex
	share  float64 // loopShare; benchmarks raise it
	max    time.Duration
	tokens time.Duration
	last   time.Time
}

func newLoopBudget(max time.Duration) *loopBudget {
	return &loopBudget{share: loopShare, max: max, tokens: max, last: time.Now()}
}

// grant returns how long a lookup may hold the loop now: what is left of the budget, at most
// the bucket's size; 0 means over budget.
func (b *loopBudget) grant(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.max, b.tokens+time.Duration(float64(d)*b.share))
		b.last = now
	}
	if b.tokens < min(minLookupWait, b.max) {
		return 0
	}
	return b.tokens
}

// spend takes the time a lookup actually held the loop.
func (b *loopBudget) spend(d time.Duration) {
	b.mu.Lock()
	b.tokens -= d
	b.mu.Unlock()
}

// clientLimits are the per-address lookup buckets, one set for UDP clients and one for TCP and
// TLS clients. A UDP source address can be forged, a TCP one cannot (the handshake proves it,
// and the edge's PROXY header names a client it completed a TLS handshake with): kept apart,
// Allocates spoofed from a victim's address drain only its UDP bucket, never the TCP/TLS
// fallback a browser turns to when UDP fails. Spoofed sources cannot fill the TCP/TLS table
// either.
type clientLimits struct {
	udp, conn *ipLimiter
}

func newClientLimits() *clientLimits {
	return &clientLimits{udp: newIPLimiter(), conn: newIPLimiter()}
}

// allow takes one lookup from the bucket of src's address for its transport.
func (c *clientLimits) allow(src net.Addr, now time.Time) bool {
	l := c.conn
	if _, ok := src.(*net.UDPAddr); ok {
		l = c.udp
	}
	return l.allow(clientIP(src), now)
}

// ipLimiter is a token bucket of lookups per client address. Safe for concurrent use.
type ipLimiter struct {
	rate, burst float64
	max         int

	mu        sync.Mutex
	buckets   map[netip.Addr]*ipBucket
	lastSweep time.Time
}

type ipBucket struct {
	tokens float64
	last   time.Time
}

func newIPLimiter() *ipLimiter {
	return &ipLimiter{rate: lookupsPerIP, burst: lookupBurstPerIP, max: maxTrackedIPs, buckets: map[netip.Addr]*ipBucket{}}
}

// allow takes one lookup from ip's bucket.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) bool {
	if !ip.IsValid() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets) >= l.max {
			l.sweepLocked(now)
		}
		if len(l.buckets) >= l.max {
			return true
		}
		b = &ipBucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(l.burst, b.tokens+d*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweepLocked forgets buckets that have refilled (their address has been quiet), at most once
// a second: a sweep walks the whole map.
func (l *ipLimiter) sweepLocked(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for ip, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, ip)
		}
	}
}

// clientIP is the address a client's lookups are counted under: the IPv4 address, or the /64
// of an IPv6 one (one host usually holds a whole /64).
func clientIP(src net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := src.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		return netip.Addr{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip
}
