package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// originAllowed says whether a /ws request may be upgraded. Browsers always send Origin, so
// checking it stops other sites from opening sockets with a visitor's browser. Clients that
// send none (native apps, load tools) are not browsers and cannot be protected this way.
func originAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null" (sandboxed frames, file://) and garbage
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	origin = strings.TrimSuffix(origin, "/")
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}

// clientAddr is the key the per-client limits (joins, open sockets, /api/turn) count against:
// the TCP peer's IPv4 address, or the /64 of an IPv6 peer — one subscriber usually holds a
// whole /64 and could otherwise rotate addresses inside it to escape every limit.
func clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String()
	}
	if p, err := ip.WithZone("").Prefix(64); err == nil {
		return p.String()
	}
	return ip.String()
}

// bucket is a token bucket; the caller serialises access.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills at rate tokens per second up to burst and takes one token if there is one.
// It returns how long until a token would be there when there is none.
func (b *bucket) take(now time.Time, rate, burst float64) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = burst
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// joinLimiter counts joins and resumes per client address. An address over its rate is told
// to wait; each refusal before that wait is over doubles it (up to a cap), so a client that
// hammers the gateway backs itself off instead of costing a room lookup per attempt.
type joinLimiter struct {
	rate, burst float64
	backoffMax  time.Duration

	mu        sync.Mutex
	addrs     map[string]*joinState
	lastSweep time.Time
}

type joinState struct {
	bucket
	strikes      int
	blockedUntil time.Time
}

func newJoinLimiter(l Limits) *joinLimiter {
	return &joinLimiter{
		rate:       l.JoinsPerMinute / 60,
		burst:      float64(l.JoinBurst),
		backoffMax: l.JoinBackoffMax,
		addrs:      map[string]*joinState{},
	}
}

// allow records a join attempt from addr; when refused it says how long to wait.
func (j *joinLimiter) allow(addr string, now time.Time) (bool, time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sweep(now)
	s := j.addrs[addr]
	if s == nil {
		s = &joinState{}
		j.addrs[addr] = s
	}
	if now.Before(s.blockedUntil) {
		return false, j.strike(s, now, s.blockedUntil.Sub(now))
	}
	ok, wait := s.take(now, j.rate, j.burst)
	if ok {
		s.strikes = 0
		return true, 0
	}
	return false, j.strike(s, now, wait)
}

// strike doubles the wait for every refusal in a row and blocks the address for it.
func (j *joinLimiter) strike(s *joinState, now time.Time, wait time.Duration) time.Duration {
	s.strikes++
	for i := 1; i < s.strikes && wait < j.backoffMax; i++ {
		wait *= 2
	}
	wait = min(max(wait, time.Second), j.backoffMax)
	s.blockedUntil = now.Add(wait)
	return wait
}

// sweep forgets, once a minute, addresses whose bucket is full again and who are not blocked,
// so the map holds only recent joiners.
func (j *joinLimiter) sweep(now time.Time) {
	if now.Sub(j.lastSweep) < time.Minute {
		return
	}
	j.lastSweep = now
	full := time.Duration(j.burst / j.rate * float64(time.Second))
	for addr, s := range j.addrs {
		if now.After(s.blockedUntil) && now.Sub(s.last) > full {
			delete(j.addrs, addr)
		}
	}
}
