package proxyproto

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestListenerReportsClientAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, 2*time.Second, nil)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer

	// A silent connection must not hold up the one behind it.
	silent, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Nor must one that sends garbage; it is closed.
	bad, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_, _ = bad.Write([]byte("GET / HTTP/1.1\r\n\r\n"))

	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := netip.MustParseAddrPort("198.51.100.9:40000")
	if _, err := c.Write(append(AppendV2(nil, src, netip.MustParseAddrPort("127.0.0.1:443")), "hello"...)); err != nil {
		t.Fatal(err)
	}

	accepted := make(chan net.Conn, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
			close(accepted)
			return
		}
		accepted <- a
	}()
	var a net.Conn
	select {
	case a = <-accepted:
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	if a == nil {
		t.FailNow()
	}
	defer a.Close()
	if got := a.RemoteAddr().String(); got != src.String() {
		t.Errorf("RemoteAddr %s, want %s", got, src)
	}
	buf := make([]byte, 5)
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "hello" {
		t.Errorf("payload %q, %v", buf, err)
	}
	// The garbage connection is closed by the listener.
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Read(buf); err == nil {
		t.Error("connection without a header stayed open")
	}

	_ = ln.Close()
	if _, err := ln.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

func TestListenerTimesOutSilentPeers(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, 200*time.Millisecond, nil)
	defer ln.Close()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("silent connection was not closed")
	}
}
