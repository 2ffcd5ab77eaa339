package turnsvc

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/ratelimit"
)

func TestLoopBudget(t *testing.T) {
	t.Parallel()
	b := newLoopBudget(250 * time.Millisecond)
	now := b.last
	if g := b.grant(now); g != 250*time.Millisecond {
		t.Fatalf("fresh grant = %v, want the whole bucket", g)
	}
	b.spend(250 * time.Millisecond)
	if g := b.grant(now); g != 0 {
		t.Fatalf("grant after spending everything = %v, want 0", g)
	}
	// 10 % of the loop's time: 100 ms after one second
	now = now.Add(time.Second)
	if g := b.grant(now); g != 100*time.Millisecond {
		t.Errorf("grant after 1 s = %v, want 100ms", g)
	}
	// less than minLookupWait left: no lookup
	b.spend(100*time.Millisecond - minLookupWait + time.Millisecond)
	if g := b.grant(now); g != 0 {
		t.Errorf("grant with less than minLookupWait left = %v, want 0", g)
	}
	// an overdraft (a wait that ran past its grant) is paid back before the next lookup
	b.spend(time.Second)
	if g := b.grant(now.Add(5 * time.Second)); g != 0 {
		t.Errorf("grant in debt = %v, want 0", g)
	}
	if g := b.grant(now.Add(time.Minute)); g != 250*time.Millisecond {
		t.Errorf("grant after a minute = %v, want the whole bucket", g)
	}
}

func TestIPLimiter(t *testing.T) {
	t.Parallel()
	l := newIPLimiter()
	now := time.Now()
	a, b := clientIP(&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1)}), clientIP(&net.UDPAddr{IP: net.IPv4(192, 0, 2, 2)})
	for i := range lookupBurstPerIP {
		if !l.allow(a, now) {
			t.Fatalf("lookup %d of the burst refused", i)
		}
	}
	if l.allow(a, now) {
		t.Error("lookup beyond the burst allowed")
	}
	if !l.allow(b, now) {
		t.Error("another address throttled by the first one")
	}
	if !l.allow(a, now.Add(time.Second/lookupsPerIP)) {
		t.Error("no lookup after the bucket refilled by one")
	}
	// bounded: a flood of invented addresses is not tracked past max, and never throttled for it
	l = newIPLimiterMax(100)
	for i := range 1000 {
		ip := ratelimit.ClientKey(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		if !l.allow(ip, now) {
			t.Fatalf("fresh address %v throttled", ip)
		}
	}
	if n := l.keys.Len(); n > 100 {
		t.Errorf("%d buckets over a bound of 100", n)
	}
	// once idle, buckets are swept and new addresses tracked again
	later := now.Add(time.Minute)
	fresh := ratelimit.ClientKey(netip.MustParseAddr("198.51.100.1"))
	for range lookupBurstPerIP {
		l.allow(fresh, later)
	}
	if l.allow(fresh, later) {
		t.Error("address not tracked after the sweep")
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, "fe80::/64"},
	} {
		if got := clientIP(c.addr); got.String() != c.want {
			t.Errorf("clientIP(%v) = %v, want %s", c.addr, got, c.want)
		}
	}
	if clientIP(&net.UnixAddr{}).IsValid() {
		t.Error("a non-IP address has an IP")
	}
}

// TestClientLimitsSeparateTransports: draining an address's UDP bucket leaves its TCP/TLS
// bucket whole, and the other way round.
func TestClientLimitsSeparateTransports(t *testing.T) {
	t.Parallel()
	c := newClientLimits()
	now := time.Now()
	udp := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
	tcp := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 2}
	for range lookupBurstPerIP {
		c.allow(udp, now)
	}
	if c.allow(udp, now) {
		t.Fatal("UDP lookup beyond the burst allowed")
	}
	for i := range lookupBurstPerIP {
		if !c.allow(tcp, now) {
			t.Fatalf("TCP lookup %d refused after the same address drained its UDP bucket", i)
		}
	}
	if c.allow(tcp, now) {
		t.Error("TCP lookup beyond the burst allowed")
	}
}
