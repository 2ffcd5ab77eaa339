package edge

import (
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testtls"
)

// TestAcceptSurvivesEMFILE: running out of file descriptors for a moment (a flood of
// connections) must not stop the HTTPS port, which would take the whole gateway down.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ca := testtls.NewCA(t)
	certFile, keyFile := certFiles(t)
	ca.Issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	e := startEdge(t, Config{
		CertFile: certFile, KeyFile: keyFile,
		App:           appHandler(),
		HTTPSListener: &testnet.EMFILEListener{Listener: listenLoopback(t), N: 3},
	})
	c := httpsClient(e.Addr(), ca.Pool, false)
	c.Timeout = 10 * time.Second
	resp, err := c.Get("https://" + testApp + "/")
	if err != nil {
		t.Fatalf("HTTPS after transient accept errors: %v", err)
	}
	if body := readBody(t, resp); body != "the app via HTTP/1.1" {
		t.Errorf("body %q", body)
	}
}
