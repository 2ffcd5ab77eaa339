package turnsvc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testtls"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(*Config)
		want   string // the variable the error must name
	}{
		{"min above max", func(c *Config) { c.MinPort, c.MaxPort = 50000, 40000 }, "TURN_MIN_PORT"},
		{"external ip not an ip", func(c *Config) { c.ExternalIP = "turn.example.com" }, "EXTERNAL_IP"},
		{"external ip unspecified", func(c *Config) { c.ExternalIP = "0.0.0.0" }, "EXTERNAL_IP"},
		{"external ip v6", func(c *Config) { c.ExternalIP = "2001:db8::1" }, "EXTERNAL_IP"},
		{"listen host", func(c *Config) { c.ListenHost = "localhost" }, "TURN_LISTEN_HOST"},
		{"listen host v6", func(c *Config) { c.ListenHost = "::" }, "TURN_LISTEN_HOST"},
		{"deny list", func(c *Config) { c.DenyPeers = "10.0.0.0/8,nonsense" }, "TURN_DENY_PEERS"},
		{"allow list", func(c *Config) { c.AllowPeers = "127.0.0.0/33" }, "TURN_ALLOW_PEERS"},
		{"user quota", func(c *Config) { c.UserQuota = 0 }, "TURN_USER_QUOTA"},
		{"max allocations", func(c *Config) { c.MaxAllocations = -1 }, "TURN_MAX_ALLOCATIONS"},
		{"max permissions", func(c *Config) { c.MaxPermissions = 0 }, "TURN_MAX_PERMISSIONS"},
		{"bitrate", func(c *Config) { c.MaxBitrate = -5 }, "TURN_MAX_BITRATE"},
		{"cert without key", func(c *Config) { c.TLSCertFile = "cert.pem" }, "TURN_TLS_CERT"},
		{"unreadable cert", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "/nonexistent/c.pem", "/nonexistent/k.pem" }, "TURN_TLS_CERT"},
		{"realm", func(c *Config) { c.Realm = "" }, "TURN_REALM"},
		{"auth timeout", func(c *Config) { c.AuthTimeout = 0 }, "TURN_AUTH_TIMEOUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, "http://127.0.0.1:1")
			c.change(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New accepted a bad configuration")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %s", err, c.want)
			}
		})
	}
	// every problem is reported at once
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.MinPort, cfg.MaxPort, cfg.ExternalIP = 2, 1, "x"
	_, err := New(cfg)
	if err == nil || !strings.Contains(err.Error(), "TURN_MIN_PORT") || !strings.Contains(err.Error(), "EXTERNAL_IP") {
		t.Errorf("want both problems named, got %v", err)
	}
}

func TestConfigTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testtls.NewCA(t).Issue(t, certFile, keyFile, 1, "127.0.0.1")
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New with TLS: %v", err)
	}
	defer s.lns.close()
	if s.TURNTLSAddr() == nil || s.TURNTLSAddr().Port == 0 {
		t.Fatalf("no TLS listener: %v", s.TURNTLSAddr())
	}
	if s.TURNAddr().Port != s.TURNTCPAddr().Port {
		t.Errorf("UDP port %d and TCP port %d differ", s.TURNAddr().Port, s.TURNTCPAddr().Port)
	}
	if len(s.lns.udp) != cfg.UDPSockets {
		t.Errorf("%d UDP sockets, want %d", len(s.lns.udp), cfg.UDPSockets)
	}
	_ = os.Remove(certFile)
}

// TestAllocateTLS allocates over TURN-over-TLS and relays a datagram.
func TestAllocateTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testtls.NewCA(t).Issue(t, certFile, keyFile, 1, "127.0.0.1")
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s, _ := startTurn(t, cfg)
	u, p := cred.issue("tls-user", time.Hour)
	relay, err := turnClient(t, "tls", s, u, p).Allocate()
	if err != nil {
		t.Fatalf("Allocate over TLS: %v", err)
	}
	if err := testnet.RelayRoundTrip(relay, testnet.UDPEchoPeer(t).LocalAddr(), "over tls", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	allocs := listAllocs(t, s, "tls-user")
	if len(allocs) != 1 || allocs[0].GetProtocol() != "tls" {
		t.Fatalf("allocations = %v, want one over tls", allocs)
	}
}
