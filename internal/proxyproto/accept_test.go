package proxyproto

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/testnet"
)

// TestListenerSurvivesEMFILE: running out of file descriptors for a moment must not close the
// listener for good (TURN over TLS through the edge would stop until a restart).
func TestListenerSurvivesEMFILE(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(&testnet.EMFILEListener{Listener: inner, N: 3}, 2*time.Second, nil)
	defer ln.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := netip.MustParseAddrPort("198.51.100.9:40000")
	if _, err := c.Write(AppendV2(nil, src, netip.MustParseAddrPort("127.0.0.1:443"))); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() {
		a, err := ln.Accept()
		if err == nil {
			_ = a.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("Accept after transient errors: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5s")
	}
}
