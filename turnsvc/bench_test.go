package turnsvc

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/ratelimit"
)

// BenchmarkAllocate measures Allocate latency as a TURN client sees it (401 challenge, then
// the authenticated Allocate) with auth backed by a Validate RPC to a Connect credential service
// on loopback: cold (a username turnsvc has never seen, so the read loop waits for Validate)
// and cached. It reports p50 and p99.
func BenchmarkAllocate(b *testing.B) {
	cred := newTestCredsvc()
	url, _ := startCredsvc(b, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(b, url)
	cfg.UserQuota = 1 << 20
	cfg.MaxAllocations = 1 << 20
	s, _ := startTurn(b, cfg)
	unthrottle(s) // every allocation comes from 127.0.0.1, one after the other
	for _, mode := range []string{"cold", "cached"} {
		b.Run(mode, func(b *testing.B) {
			u, p := cred.issue("bench-cached", time.Hour)
			users := make([][2]string, b.N)
			for i := range users {
				if mode == "cold" {
					u, p := cred.issue(fmt.Sprintf("bench-cold-%d-%d", b.N, i), time.Hour)
					users[i] = [2]string{u, p}
				} else {
					users[i] = [2]string{u, p}
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				c := turnClient(b, "udp", s, users[i][0], users[i][1])
				b.StartTimer()
				start := time.Now()
				relay, err := c.Allocate()
				lat = append(lat, time.Since(start))
				b.StopTimer()
				if err != nil {
					b.Fatalf("Allocate: %v", err)
				}
				_ = relay.Close()
				c.Close()
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
		})
	}
}

// unthrottle lifts the lookup budgets (authbudget.go) of s, for benchmarks that measure a
// stream of cold lookups from one address rather than what a flood may cost.
func unthrottle(s *Service) {
	for _, l := range []*ipLimiter{s.ipLimit.udp, s.ipLimit.conn} {
		l.keys.SetLimit(ratelimit.Limit{Rate: 1e9, Burst: 1e9})
	}
	for _, l := range append([]*loopBudget{s.otherLoop}, loopBudgets(s)...) {
		l.mu.Lock()
		l.share = 1
		l.mu.Unlock()
	}
}

func loopBudgets(s *Service) []*loopBudget {
	var out []*loopBudget
	for _, c := range s.loops {
		out = append(out, c.budget)
	}
	return out
}

// BenchmarkLookupBudget is what the budgets add to a lookup that must ask credsvc: finding the
// read loop (16 sockets, the client on the last), its budget and the client's bucket.
func BenchmarkLookupBudget(b *testing.B) {
	s := &Service{ipLimit: newClientLimits(), otherLoop: newLoopBudget(250 * time.Millisecond)}
	var src *net.UDPAddr
	for i := range 16 {
		c := &fencedPacketConn{budget: newLoopBudget(250 * time.Millisecond)}
		src = &net.UDPAddr{IP: net.IPv4(192, 0, 2, byte(i)), Port: 40000}
		c.cur.Store(src)
		s.loops = append(s.loops, c)
	}
	s.ipLimit.udp.keys.SetLimit(ratelimit.Limit{Rate: 1e9, Burst: 1e9})
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		l := s.loopOf(src)
		if l.grant(now) == 0 || !s.ipLimit.allow(src, now) {
			b.Fatal("throttled")
		}
		l.spend(0)
	}
}
