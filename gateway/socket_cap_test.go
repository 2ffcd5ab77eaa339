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
