package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/tuturu/tuturu/internal/ratelimit"
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

// clientAddr is the key the per-client limits (joins, open sockets, /api/turn) count against
// (ratelimit.ClientKey): the TCP peer's IPv4 address, or the /64 of an IPv6 peer, written
// "192.0.2.1" or "2001:db8::/64".
func clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	}
	k := ratelimit.ClientKey(ap.Addr())
	if k.Addr().Is4() {
		return k.Addr().String()
	}
	return k.String()
}

// bucket is a connection's message bucket; the caller serialises access.
type bucket struct{ ratelimit.Bucket }

// take refills at rate tokens per second up to burst and takes one token if there is one.
// It returns how long until a token would be there when there is none.
func (b *bucket) take(now time.Time, rate, burst float64) (bool, time.Duration) {
	return b.Take(now, ratelimit.Limit{Rate: rate, Burst: burst}, 1)
}

// joinLimiter counts joins and resumes per client address. An address over its rate is told
// to wait; each refusal before that wait is over doubles it (up to a cap), so a client that
// hammers the gateway backs itself off instead of costing a room lookup per attempt. An
// address's entry holds its refusals in a row; its Hold is the end of its current wait.
type joinLimiter struct {
	backoffMax time.Duration
	addrs      *ratelimit.Keyed[string, int]
}

func newJoinLimiter(l Limits) *joinLimiter {
	return &joinLimiter{
		backoffMax: l.JoinBackoffMax,
		addrs: ratelimit.NewKeyed[string, int](ratelimit.Config{
			Limit: ratelimit.Limit{Rate: l.JoinsPerMinute / 60, Burst: float64(l.JoinBurst)},
			// Addresses whose bucket is full again and who are not blocked are forgotten, so
			// the set holds only recent joiners; a sweep walks it all, so once a minute.
			SweepEvery: time.Minute,
		}),
	}
}

// allow records a join attempt from addr; when refused it says how long to wait.
func (j *joinLimiter) allow(addr string, now time.Time) (ok bool, wait time.Duration) {
	j.addrs.Do(addr, now, func(e *ratelimit.Entry[int]) {
		if now.Before(e.Hold) {
			wait = j.strike(e, now, e.Hold.Sub(now))
			return
		}
		if ok, wait = e.Take(now); ok {
			e.Value = 0
			return
		}
		wait = j.strike(e, now, wait)
	})
	return ok, wait
}

// strike doubles the wait for every refusal in a row and blocks the address for it.
func (j *joinLimiter) strike(e *ratelimit.Entry[int], now time.Time, wait time.Duration) time.Duration {
	e.Value++
	for i := 1; i < e.Value && wait < j.backoffMax; i++ {
		wait *= 2
	}
	wait = min(max(wait, time.Second), j.backoffMax)
	e.Hold = now.Add(wait)
	return wait
}
