package turnsvc

import (
	"net"
	"testing"

	"github.com/tuturu/tuturu/internal/testnet"
)

// TestTrackingListenerSurvivesEMFILE: pion's accept loop stops at the first error, so running
// out of file descriptors once must not end TURN over TCP or TLS for good.
func TestTrackingListenerSurvivesEMFILE(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newTrackingListener(&testnet.EMFILEListener{Listener: inner, N: 3}, newRegistry(newStats(), 1, 1, 1))
	defer l.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after transient errors: %v", err)
	}
	_ = a.Close()

	_ = l.Close()
	if _, err := l.Accept(); err == nil {
		t.Error("Accept on a closed listener succeeded")
	}
}
