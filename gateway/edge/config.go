package edge

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the edge. The edge is off while Domain is empty: the gateway then serves
// plain HTTP on its own address only, as it does for local development.
type Config struct {
	platform.Base
	// Domain is the bare domain (example.org): it serves the cover page, and the app and TURN
	// names default to a.<Domain> and t.<Domain>.
	Domain string
	// AppHost is the name that reaches the app; empty means a.<Domain>.
	AppHost string
	// TurnHost is the name that reaches TURN over TLS; empty means t.<Domain>.
	TurnHost string
	// HTTPAddr serves ACME http-01 challenges and redirects to HTTPS; empty disables it.
	HTTPAddr string
	// HTTPSAddr is the TLS port, routed by SNI.
	HTTPSAddr string
	// HTTPListener and HTTPSListener, when set, are used instead of the addresses (tests).
	HTTPListener, HTTPSListener net.Listener
	// Email is the ACME account contact (expiry warnings); optional.
	Email string
	// Staging uses Let's Encrypt's staging CA (untrusted certificates, generous rate limits).
	Staging bool
	// DirectoryURL is the ACME directory; it overrides Staging. Empty means Let's Encrypt.
	DirectoryURL string
	// ACMEHTTPClient talks to the ACME CA; nil means the default client (tests trust Pebble's
	// CA through it).
	ACMEHTTPClient *http.Client
	// CertFile and KeyFile, when set, replace ACME: one PEM certificate chain and key for every
	// name, reloaded when the files change.
	CertFile, KeyFile string
	// TurnUpstream is turnsvc's PROXY-protocol TURN-over-TCP listener; empty sends the TURN
	// name to the cover page instead.
	TurnUpstream string
	// HSTSMaxAge is the Strict-Transport-Security max-age of the app and the cover page.
	HSTSMaxAge time.Duration
	// DrainTimeout is how long relayed TURN connections and HTTP requests may run after
	// shutdown begins.
	DrainTimeout time.Duration
	// HelloTimeout is how long a new connection on the HTTPS port may take to send its whole
	// ClientHello; zero means 10 s. HandshakeTimeout bounds the whole handshake, certificate
	// issuance by ACME included; zero means 1 min. Set in code (tests shorten them).
	HelloTimeout, HandshakeTimeout time.Duration
	// App is the application handler (the gateway's web client, /ws and health). Set in code.
	App http.Handler
}

// Names of the variables, used in errors.
const (
	envDomain    = "DOMAIN (-domain)"
	envAppHost   = "APP_HOST (-app-host)"
	envTurnHost  = "TURN_TLS_HOST (-turn-tls-host)"
	envEmail     = "LETSENCRYPT_EMAIL (-letsencrypt-email)"
	envDirectory = "ACME_DIRECTORY_URL (-acme-directory-url)"
	envCertFile  = "TLS_CERT_FILE (-tls-cert-file)"
	envKeyFile   = "TLS_KEY_FILE (-tls-key-file)"
	envHTTPAddr  = "HTTP_ADDR (-http-addr)"
	envHTTPSAddr = "HTTPS_ADDR (-https-addr)"
	envUpstream  = "TURN_PROXY_PROTOCOL_ADDR (-turn-proxy-protocol-addr)"
)

// LetsEncryptStaging is the directory of Let's Encrypt's staging CA.
const LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"

// Bind registers the edge's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.Func("domain", "DOMAIN", "", "public domain; enables HTTPS on HTTPS_ADDR with a.<domain> (app), t.<domain> (TURN over TLS) and the bare domain (cover page); empty = plain HTTP for local development", func(s string) error {
		d, err := dnsName(s)
		c.Domain = d
		return err
	})
	v.Func("app-host", "APP_HOST", "", "host name of the app; a.<DOMAIN> when empty", func(s string) error {
		d, err := dnsName(s)
		c.AppHost = d
		return err
	})
	v.Func("turn-tls-host", "TURN_TLS_HOST", "", "host name of TURN over TLS on the HTTPS port; t.<DOMAIN> when empty", func(s string) error {
		d, err := dnsName(s)
		c.TurnHost = d
		return err
	})
	v.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", ":80", "with DOMAIN: HTTP listen address for ACME http-01 and redirects to HTTPS; empty = none")
	v.String(&c.HTTPSAddr, "https-addr", "HTTPS_ADDR", ":443", "with DOMAIN: HTTPS listen address, routed by SNI")
	v.Func("letsencrypt-email", "LETSENCRYPT_EMAIL", "", "contact address of the ACME account (certificate expiry warnings)", func(s string) error {
		c.Email = s
		return validEmail(s)
	})
	v.Bool(&c.Staging, "letsencrypt-staging", "LETSENCRYPT_STAGING", false, "use Let's Encrypt's staging CA (untrusted certificates; for trying a deployment)")
	v.Func("acme-directory-url", "ACME_DIRECTORY_URL", "", "ACME directory URL; overrides LETSENCRYPT_STAGING; empty = Let's Encrypt", func(s string) error {
		c.DirectoryURL = s
		return validDirectory(s)
	})
	v.String(&c.CertFile, "tls-cert-file", "TLS_CERT_FILE", "", "PEM certificate chain used instead of ACME (reloaded when it changes)")
	v.String(&c.KeyFile, "tls-key-file", "TLS_KEY_FILE", "", "PEM private key of TLS_CERT_FILE")
	v.String(&c.TurnUpstream, "turn-proxy-protocol-addr", "TURN_PROXY_PROTOCOL_ADDR", "", "loopback address of turnsvc's TURN-over-TCP listener that reads PROXY protocol headers; the edge relays TURN over TLS there")
	// Two years, the value the HSTS preload list asks for; the app is HTTPS-only by design.
	v.Duration(&c.HSTSMaxAge, "hsts-max-age", "HSTS_MAX_AGE", 2*365*24*time.Hour, "Strict-Transport-Security max-age on HTTPS responses")
	// As long as turnsvc's drain: a relayed call should survive a rolling restart of the edge
	// as long as it survives one of turnsvc.
	v.Duration(&c.DrainTimeout, "edge-drain-timeout", "EDGE_DRAIN_TIMEOUT", 30*time.Second, "on shutdown, how long relayed TURN connections and requests may continue")
}

// Enabled reports whether the edge should run.
func (c *Config) Enabled() bool { return c.Domain != "" }

// AppName is the app's host name.
func (c *Config) AppName() string {
	if c.AppHost != "" {
		return c.AppHost
	}
	return "a." + c.Domain
}

// TurnName is the host name of TURN over TLS.
func (c *Config) TurnName() string {
	if c.TurnHost != "" {
		return c.TurnHost
	}
	return "t." + c.Domain
}

// directory is the ACME directory in use.
func (c *Config) directory() string {
	switch {
	case c.DirectoryURL != "":
		return c.DirectoryURL
	case c.Staging:
		return LetsEncryptStaging
	}
	return "" // autocert's default, Let's Encrypt production
}

// cacheDir holds ACME account keys and certificates.
func (c *Config) cacheDir() string { return filepath.Join(c.DataDir, "acme") }

// check validates the configuration as a whole, for configs built in code as well as bound
// ones, and fills defaults. Errors name the variable.
func (c *Config) check() error {
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if d, err := dnsName(c.Domain); err != nil || d == "" {
		fail(envDomain, "%v", orEmpty(err, "must be set for the edge"))
	}
	if _, err := dnsName(c.AppHost); err != nil {
		fail(envAppHost, "%v", err)
	}
	if _, err := dnsName(c.TurnHost); err != nil {
		fail(envTurnHost, "%v", err)
	}
	if c.AppName() == c.Domain || c.AppName() == c.TurnName() {
		fail(envAppHost, "%q must differ from DOMAIN and TURN_TLS_HOST: the edge tells them apart by name", c.AppName())
	}
	if c.TurnName() == c.Domain {
		fail(envTurnHost, "%q must differ from DOMAIN", c.TurnName())
	}
	if err := validEmail(c.Email); err != nil {
		fail(envEmail, "%v", err)
	}
	if err := validDirectory(c.DirectoryURL); err != nil {
		fail(envDirectory, "%v", err)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			fail(envCertFile, "must be set together with TLS_KEY_FILE")
		} else {
			fail(envKeyFile, "must be set together with TLS_CERT_FILE")
		}
	}
	if c.HTTPListener == nil && c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			fail(envHTTPAddr, "%q is not host:port (such as :80)", c.HTTPAddr)
		}
	}
	if c.HTTPSListener == nil {
		if _, _, err := net.SplitHostPort(c.HTTPSAddr); err != nil {
			fail(envHTTPSAddr, "%q is not host:port (such as :443)", c.HTTPSAddr)
		}
	}
	if c.TurnUpstream != "" {
		if _, _, err := net.SplitHostPort(c.TurnUpstream); err != nil {
			fail(envUpstream, "%q is not host:port", c.TurnUpstream)
		}
	}
	if c.CertFile == "" && c.DataDir == "" {
		fail("DATA_DIR (-data-dir)", "must be set: ACME keys and certificates are kept in <DATA_DIR>/acme")
	}
	if c.App == nil {
		errs = append(errs, errors.New("edge: no app handler"))
	}
	if c.HSTSMaxAge < 0 {
		fail("HSTS_MAX_AGE (-hsts-max-age)", "must not be negative")
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = defaultHelloTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	return errors.Join(errs...)
}

func orEmpty(err error, msg string) any {
	if err != nil {
		return err
	}
	return msg
}

// dnsName normalises and checks a fully qualified DNS name such as example.org: at least two
// labels, letters, digits and hyphens only, no scheme, port, path or trailing dot. Empty is
// allowed (the caller decides whether it must be set).
func dnsName(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, ":/?#@ ") {
		return "", fmt.Errorf("%q is not a DNS name: give the name only, such as example.org (no scheme, port or path)", s)
	}
	if net.ParseIP(s) != nil {
		return "", fmt.Errorf("%q is an IP address; certificates need a DNS name such as example.org", s)
	}
	if len(s) > 253 {
		return "", fmt.Errorf("%q is longer than 253 characters", s)
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%q is not a dotted DNS name such as example.org (ACME CAs refuse single-label names)", s)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%q is not a DNS name: label %q is empty, too long or starts/ends with '-'", s, l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "", fmt.Errorf("%q is not a DNS name: %q is not allowed (use the punycode form of IDNs)", s, r)
			}
		}
	}
	return s, nil
}

// validEmail accepts an empty string or a bare address (no display name).
func validEmail(s string) error {
	if s == "" {
		return nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return fmt.Errorf("%q is not an email address such as ops@example.org", s)
	}
	return nil
}

// validDirectory accepts an empty string or an https URL.
func validDirectory(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an https URL of an ACME directory", s)
	}
	return nil
}
