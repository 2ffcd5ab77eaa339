package turnsvc

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tuturu/tuturu/internal/ratelimit"
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
	// maxTrackedIPs bounds the per-address buckets (a spoofer can invent addresses); idle
	// buckets are swept at most once a second, and when the set is full new addresses are not
	// tracked meanwhile (the loop budget still bounds them).
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
	keys *ratelimit.Keyed[netip.Prefix, struct{}]
}

func newIPLimiter() *ipLimiter {
	return newIPLimiterMax(maxTrackedIPs)
}

// newIPLimiterMax is newIPLimiter with another bound on the addresses tracked.
func newIPLimiterMax(max int) *ipLimiter {
	return &ipLimiter{keys: ratelimit.NewKeyed[netip.Prefix, struct{}](ratelimit.Config{
		Limit: ratelimit.Limit{Rate: lookupsPerIP, Burst: lookupBurstPerIP},
		// A sweep walks the whole set: at most once a second.
		SweepEvery: time.Second,
		MaxKeys:    max,
	})}
}

// allow takes one lookup from the bucket of key (ratelimit.ClientKey); an invalid key (not an
// IP client) is not limited.
func (l *ipLimiter) allow(key netip.Prefix, now time.Time) bool {
	if !key.IsValid() {
		return true
	}
	ok, _ := l.keys.Take(key, now)
	return ok
}

// clientIP is the key a client's lookups are counted under (ratelimit.ClientKey): the IPv4
// address, or the /64 of an IPv6 one.
func clientIP(src net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := src.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	}
	return ratelimit.ClientKey(ip)
}
