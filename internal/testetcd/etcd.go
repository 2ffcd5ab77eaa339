// Package testetcd starts a real one-member etcd inside a test, on loopback ports with a
// temporary data directory, and stops it when the test ends.
package testetcd

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/tuturu/tuturu/internal/testnet"
)

// readyWithin bounds the wait for the member to serve.
const readyWithin = 30 * time.Second

// Etcd is one running member.
type Etcd struct {
	e *embed.Etcd
	// Endpoint is its client URL (http://127.0.0.1:port).
	Endpoint string
}

// TLS makes the member serve its clients over TLS and ask them for a certificate.
type TLS struct {
	// CertFile and KeyFile are its server certificate (for 127.0.0.1) and key.
	CertFile, KeyFile string
	// CAFile is the authority client certificates must chain to.
	CAFile string
}

// Start starts a member serving plain http and registers its stop with t.Cleanup.
func Start(t testing.TB) *Etcd {
	t.Helper()
	return start(t, nil)
}

// StartTLS starts a member serving https with client certificates required.
func StartTLS(t testing.TB, tls TLS) *Etcd {
	t.Helper()
	return start(t, &tls)
}

func start(t testing.TB, tls *TLS) *Etcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = t.TempDir()
	// The member's log goes to a file, shown only when the test fails: it logs its own
	// shutdown as errors, which would drown the test's output.
	logFile := filepath.Join(t.TempDir(), "etcd.log")
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{logFile}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("embedded etcd log:\n%s", b[max(0, len(b)-8192):])
			}
		}
	})
	client := url.URL{Scheme: "http", Host: testnet.FreeAddr(t)}
	if tls != nil {
		client.Scheme = "https"
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: tls.CertFile, KeyFile: tls.KeyFile, TrustedCAFile: tls.CAFile, ClientCertAuth: true}
	}
	peer := url.URL{Scheme: "http", Host: testnet.FreeAddr(t)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("embedded etcd failed: %v", err)
	case <-time.After(readyWithin):
		e.Server.Stop()
		t.Fatalf("embedded etcd not ready within %s", readyWithin)
	}
	return &Etcd{e: e, Endpoint: client.String()}
}
