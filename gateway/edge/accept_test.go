package edge

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
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

// TestAcceptSurvivesEMFILE: running out of file descriptors for a moment (a flood of
// connections) must not stop the HTTPS port, which would take the whole gateway down.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := certFiles(t)
	ca.issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	e := startEdge(t, Config{
		CertFile: certFile, KeyFile: keyFile,
		App:           appHandler(),
		HTTPSListener: &emfileListener{Listener: listenLoopback(t), n: 3},
	})
	c := httpsClient(e.Addr(), ca.pool, false)
	c.Timeout = 10 * time.Second
	resp, err := c.Get("https://" + testApp + "/")
	if err != nil {
		t.Fatalf("HTTPS after transient accept errors: %v", err)
	}
	if body := readBody(t, resp); body != "the app via HTTP/1.1" {
		t.Errorf("body %q", body)
	}
}
