package turnsvc

import (
	"fmt"
	"slices"
	"testing"
	"time"
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
