package turnsvc

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// emfileListener fails its first n Accepts as a process out of file descriptors does.
type emfileListener struct {
	net.Listener
	n int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestTrackingListenerSurvivesEMFILE: pion's accept loop stops at the first error, so running
// out of file descriptors once must not end TURN over TCP or TLS for good.
func TestTrackingListenerSurvivesEMFILE(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newTrackingListener(&emfileListener{Listener: inner, n: 3}, &fence{})
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
