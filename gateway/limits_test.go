package gateway

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		origin, host string
		allowed      []string
		want         bool
	}{
		{"", "call.example.com", nil, true}, // not a browser
		{"https://call.example.com", "call.example.com", nil, true},
		{"https://CALL.example.com", "call.example.com", nil, true},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", nil, true},
		{"https://evil.example", "call.example.com", nil, false},
		{"null", "call.example.com", nil, false},
		{"https://app.example.com", "call.example.com", []string{"https://app.example.com"}, true},
		{"https://app.example.com", "call.example.com", []string{"https://app.example.com/"}, true},
		{"http://app.example.com", "call.example.com", []string{"https://app.example.com"}, false},
		{"https://anything.example", "call.example.com", []string{"*"}, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://"+tt.host+"/ws", nil)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := originAllowed(r, tt.allowed); got != tt.want {
			t.Errorf("origin %q host %q allowed %v: got %v, want %v", tt.origin, tt.host, tt.allowed, got, tt.want)
		}
	}
}

func TestJoinLimiterBacksOff(t *testing.T) {
	j := newJoinLimiter(Limits{JoinsPerMinute: 60, JoinBurst: 2, JoinBackoffMax: time.Minute})
	now := time.Unix(1_000_000, 0)
	for i := range 2 {
		if ok, _ := j.allow("192.0.2.1", now); !ok {
			t.Fatalf("join %d within the burst refused", i+1)
		}
	}
	ok, wait1 := j.allow("192.0.2.1", now)
	if ok || wait1 < time.Second {
		t.Fatalf("third join: ok=%v wait=%v, want refused with a wait of at least 1s", ok, wait1)
	}
	_, wait2 := j.allow("192.0.2.1", now.Add(wait1/2))
	_, wait3 := j.allow("192.0.2.1", now.Add(wait1/2))
	if wait2 <= wait1/2 || wait3 <= wait2 {
		t.Fatalf("waits did not grow while hammering: %v, %v, %v", wait1, wait2, wait3)
	}
	if ok, _ := j.allow("198.51.100.7", now); !ok {
		t.Fatal("another address was refused")
	}
	// Hammering is capped, and after the wait the address may join again.
	var last time.Duration
	for range 20 {
		_, last = j.allow("192.0.2.1", now)
	}
	if last != time.Minute {
		t.Fatalf("wait after hammering = %v, want the 1m cap", last)
	}
	if ok, _ := j.allow("192.0.2.1", now.Add(2*time.Minute)); !ok {
		t.Fatal("address still refused after its wait")
	}
}

func TestJoinLimiterForgetsIdleAddresses(t *testing.T) {
	j := newJoinLimiter(Limits{JoinsPerMinute: 60, JoinBurst: 2, JoinBackoffMax: time.Minute})
	now := time.Unix(1_000_000, 0)
	j.allow("192.0.2.1", now)
	j.allow("192.0.2.2", now.Add(2*time.Minute))
	if n := j.addrs.Len(); n != 1 {
		t.Fatalf("%d addresses tracked after a sweep, want 1: the idle one was kept", n)
	}
}

func TestMessageBucket(t *testing.T) {
	var b bucket
	now := time.Unix(1_000_000, 0)
	for i := range 5 {
		if ok, _ := b.take(now, 1, 5); !ok {
			t.Fatalf("message %d within burst refused", i)
		}
	}
	if ok, wait := b.take(now, 1, 5); ok || wait != time.Second {
		t.Fatalf("over burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := b.take(now.Add(time.Second), 1, 5); !ok {
		t.Fatal("refill did not happen")
	}
}

func TestConfigBind(t *testing.T) {
	env := map[string]string{
		"WS_MAX_MESSAGE_BYTES":   "1024",
		"WS_MESSAGES_PER_SECOND": "2.5",
		"WS_JOINS_PER_MINUTE":    "100000",
		"ALLOWED_ORIGINS":        "https://a.example, http://localhost:3000",
		"FORCE_RELAY":            "false",
	}
	var c Config
	v := platform.NewVars(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
	c.Bind(v)
	if err := v.Resolve(); err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxMessageBytes != 1024 || c.Limits.MessagesPerSecond != 2.5 || c.Limits.JoinsPerMinute != 100000 ||
		len(c.AllowedOrigins) != 2 || c.ForceRelay {
		t.Fatalf("bound config: %+v", c)
	}

	env = map[string]string{"ALLOWED_ORIGINS": "example.com", "WS_JOINS_PER_MINUTE": "-1"}
	v = platform.NewVars(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
	c.Bind(v)
	err := v.Resolve()
	if err == nil || !strings.Contains(err.Error(), "ALLOWED_ORIGINS") || !strings.Contains(err.Error(), "WS_JOINS_PER_MINUTE") {
		t.Fatalf("bad values: error %v, want both variables named", err)
	}
}

// Limits count an IPv4 peer by its address and an IPv6 peer by its /64, so rotating addresses
// inside one's own /64 does not escape them.
func TestClientAddrKeys(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:443":            "192.0.2.1",
		"[::ffff:192.0.2.1]:443":   "192.0.2.1",
		"[2001:db8:1:2::1]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:1": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":    "2001:db8:1:3::/64",
		"[fe80::1%eth0]:443":       "fe80::/64",
		"not-an-address":           "not-an-address",
	} {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.RemoteAddr = remote
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", remote, got, want)
		}
	}
}
