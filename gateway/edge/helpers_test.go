package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

const (
	testDomain = "tuturu.test"
	testApp    = "a.tuturu.test"
	testTurn   = "t.tuturu.test"
)

// running is an edge started for a test.
type running struct {
	*Edge
	pool *x509.CertPool
}

// startEdge starts an edge on loopback ports with cfg's other fields as given, and stops it
// when the test ends.
func startEdge(t *testing.T, cfg Config) *running {
	t.Helper()
	if cfg.Domain == "" {
		cfg.Domain = testDomain
	}
	if cfg.HTTPSListener == nil {
		cfg.HTTPSListener = listenLoopback(t)
	}
	if cfg.HTTPListener == nil {
		cfg.HTTPListener = listenLoopback(t)
	}
	if cfg.Log == nil {
		cfg.Log = platform.NewLogger(testLog{t}, slog.LevelDebug)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("edge.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("edge did not stop within 15s")
		}
	})
	return &running{Edge: e}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// httpsClient returns a client that connects every request to addr, with TLS server name
// taken from the URL's host and verified against roots.
func httpsClient(addr string, roots *x509.CertPool, h2 bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{
		Transport: tr,
		Timeout:   20 * time.Second,
		// Redirects are asserted, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// certFiles returns paths for a certificate and key in a fresh directory.
func certFiles(t *testing.T) (string, string) {
	dir := t.TempDir()
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func baseWithDir(t *testing.T, dir string) platform.Base {
	return platform.Base{DataDir: dir, Log: platform.NewLogger(testLog{t}, slog.LevelDebug)}
}
