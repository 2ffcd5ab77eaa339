package turnsvc

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// A TCP connection that never speaks is closed after firstRead; one that spoke gets the idle
// deadline instead.
func TestTrackedConnDeadlines(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := newTrackingListener(ln, newRegistry(newStats(), 1, 1, 1))
	tl.firstRead, tl.idle = 100*time.Millisecond, 300*time.Millisecond
	defer tl.Close()

	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	buf := make([]byte, 16)
	start := time.Now()
	if _, err := server.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent connection: read err %v, want a deadline", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("silent connection held for %v", waited)
	}

	client2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client2.Close()
	server2, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server2.Close()
	if _, err := client2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := server2.Read(buf); err != nil {
		t.Fatalf("first message: %v", err)
	}
	time.Sleep(150 * time.Millisecond) // past firstRead, within idle
	if _, err := client2.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := server2.Read(buf); err != nil {
		t.Fatalf("a connection that spoke was held to the first-message deadline: %v", err)
	}
	if _, err := server2.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection: read err %v, want a deadline", err)
	}
}
