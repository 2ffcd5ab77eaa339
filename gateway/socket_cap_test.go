package gateway

import (
	"flag"
	"strings"
	"testing"

	"github.com/tuturu/tuturu/internal/platform"
)

func TestSocketCapCountsPerAddress(t *testing.T) {
	c := newSocketCap(2)
	for i := range 2 {
		if !c.acquire("192.0.2.1") {
			t.Fatalf("socket %d within the cap refused", i+1)
		}
	}
	if c.acquire("192.0.2.1") {
		t.Fatal("socket over the cap admitted")
	}
	if !c.acquire("198.51.100.7") {
		t.Fatal("another address refused")
	}
	c.release("192.0.2.1")
	if !c.acquire("192.0.2.1") {
		t.Fatal("slot not freed by a release")
	}
	c.release("192.0.2.1")
	c.release("192.0.2.1")
	c.release("198.51.100.7")
	if len(c.addrs) != 0 {
		t.Fatalf("addresses kept with no socket open: %v", c.addrs)
	}
}

func TestSocketCapBind(t *testing.T) {
	bind := func(env map[string]string) (Config, error) {
		var c Config
		v := platform.NewVars(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
		c.Bind(v)
		return c, v.Resolve()
	}
	c, err := bind(nil)
	if err != nil || c.Limits.MaxSocketsPerAddress != defaultMaxSocketsPerAddress {
		t.Fatalf("default: %d, %v; want %d", c.Limits.MaxSocketsPerAddress, err, defaultMaxSocketsPerAddress)
	}
	if c, err = bind(map[string]string{"WS_MAX_SOCKETS_PER_ADDRESS": "1000"}); err != nil || c.Limits.MaxSocketsPerAddress != 1000 {
		t.Fatalf("raised: %d, %v", c.Limits.MaxSocketsPerAddress, err)
	}
	if _, err = bind(map[string]string{"WS_MAX_SOCKETS_PER_ADDRESS": "0"}); err == nil || !strings.Contains(err.Error(), "WS_MAX_SOCKETS_PER_ADDRESS") {
		t.Fatalf("0: error %v, want one naming WS_MAX_SOCKETS_PER_ADDRESS", err)
	}
}

func TestTruncateUTF8KeepsWholeCharacters(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"Room 123456 is full", 123, "Room 123456 is full"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: never cut in half
		{"日本", 5, "日"},
		{"", 0, ""},
	} {
		if got := truncateUTF8(c.in, c.n); got != c.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestCapacityFromTheOpenFileLimit(t *testing.T) {
	for limit, want := range map[int]int{256: 156, 20000: 19000, 1024: 924, 100: 1} {
		if got := capacityFromLimit(limit); got != want {
			t.Errorf("capacityFromLimit(%d) = %d, want %d", limit, got, want)
		}
	}
	c := &capacity{max: 2}
	if !c.acquire() || !c.acquire() || c.acquire() || !c.full() {
		t.Fatal("a capacity of 2 did not fill at 2")
	}
	c.release()
	if c.full() || !c.acquire() {
		t.Fatal("a released slot was not free again")
	}
}
