package edge

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// certSource hands out the certificate for a handshake.
type certSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// acmeCerts gets certificates from an ACME CA through autocert, which caches them on disk and
// renews them in the background 30 days before expiry; new handshakes pick the renewed
// certificate up while live connections keep the one they started with.
type acmeCerts struct {
	m      *autocert.Manager
	domain string
	names  []string
}

func newACMECerts(cfg *Config, names []string) *acmeCerts {
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cfg.cacheDir()),
		HostPolicy: autocert.HostWhitelist(names...),
		Email:      cfg.Email,
	}
	if dir := cfg.directory(); dir != "" || cfg.ACMEHTTPClient != nil {
		m.Client = &acme.Client{DirectoryURL: dir, HTTPClient: cfg.ACMEHTTPClient}
		if dir == "" {
			m.Client.DirectoryURL = autocert.DefaultACMEDirectory
		}
	}
	return &acmeCerts{m: m, domain: cfg.Domain, names: names}
}

// GetCertificate answers tls-alpn-01 challenges for our names, serves our names their own
// certificate, and serves every other name (or none, as when a scanner connects to the IP)
// the bare domain's certificate, as a default virtual host would.
func (a *acmeCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, acme.ALPNProto) || slices.Contains(a.names, hello.ServerName) {
		return a.m.GetCertificate(hello)
	}
	h := *hello
	h.ServerName = a.domain
	return a.m.GetCertificate(&h)
}

// fileCerts serves one certificate from PEM files for every name, and reloads it when the
// files change (checked at most once per interval, on a handshake): certbot or an operator
// replaces the files and new handshakes use them, with no signal and no dropped connection.
type fileCerts struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   []byte // size and mtime of both files when cert was loaded
	checked time.Time
}

func newFileCerts(certFile, keyFile string, log *slog.Logger) (*fileCerts, error) {
	f := &fileCerts{certFile: certFile, keyFile: keyFile, interval: 10 * time.Second, log: log}
	stamp, err := f.stampNow()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s / %s: %w", envCertFile, envKeyFile, err)
	}
	f.cert, f.stamp, f.checked = &cert, stamp, time.Now()
	return f, nil
}

func (f *fileCerts) stampNow() ([]byte, error) {
	var b bytes.Buffer
	for _, p := range []struct{ env, path string }{{envCertFile, f.certFile}, {envKeyFile, f.keyFile}} {
		st, err := os.Stat(p.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.env, err)
		}
		fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return b.Bytes(), nil
}

// GetCertificate returns the current certificate, reloading it first if the files changed.
// A pair that does not load (half-written, key and certificate not matching) is ignored with
// a warning, and the previous certificate stays in use.
func (f *fileCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) < f.interval {
		return f.cert, nil
	}
	f.checked = time.Now()
	stamp, err := f.stampNow()
	if err != nil || bytes.Equal(stamp, f.stamp) {
		if err != nil {
			f.log.Warn("certificate files unreadable; keeping the loaded certificate", "err", err)
		}
		return f.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		f.log.Warn("changed certificate files do not load; keeping the loaded certificate", "err", err)
		return f.cert, nil
	}
	f.cert, f.stamp = &cert, stamp
	f.log.Info("certificate reloaded from files", "cert_file", f.certFile)
	return f.cert, nil
}
