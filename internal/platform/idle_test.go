package platform

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServerClosesIdleConnections: a keep-alive connection that sends no further request is
// closed after IdleTimeout (net/http keeps it forever when no timeout is set), so idle
// clients of the public gateway port cannot hold sockets without end.
func TestServerClosesIdleConnections(t *testing.T) {
	srv := newTestServer(t)
	if srv.IdleTimeout <= 0 {
		t.Fatalf("IdleTimeout defaults to %v: idle connections are never closed", srv.IdleTimeout)
	}
	srv.IdleTimeout = 200 * time.Millisecond
	srv.Handle("/ok", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx)
	}()
	defer func() { stop(); <-done }()

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection not closed by the server: %v", err)
	}
}
