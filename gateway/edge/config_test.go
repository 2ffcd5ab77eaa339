package edge

import (
	"flag"
	"net/http"
	"strings"
	"testing"

	"github.com/tuturu/tuturu/internal/platform"
)

// resolve binds the edge's variables with env and returns the resolved config.
func resolve(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	var c Config
	v := platform.NewVars(flag.NewFlagSet("edge", flag.ContinueOnError), func(k string) string { return env[k] })
	c.Bind(v)
	return c, v.Resolve()
}

func TestBindDefaults(t *testing.T) {
	c, err := resolve(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Enabled() || c.HTTPAddr != ":80" || c.HTTPSAddr != ":443" || c.Staging || c.directory() != "" {
		t.Errorf("defaults: %+v", c)
	}
	c, err = resolve(t, map[string]string{"DOMAIN": "Call.Example.org", "LETSENCRYPT_STAGING": "true", "LETSENCRYPT_EMAIL": "ops@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Enabled() || c.AppName() != "a.call.example.org" || c.TurnName() != "t.call.example.org" || c.directory() != LetsEncryptStaging {
		t.Errorf("with DOMAIN: app %q turn %q dir %q", c.AppName(), c.TurnName(), c.directory())
	}
	c, _ = resolve(t, map[string]string{"DOMAIN": "example.org", "LETSENCRYPT_STAGING": "true", "ACME_DIRECTORY_URL": "https://ca.internal/dir", "APP_HOST": "meet.example.org"})
	if c.directory() != "https://ca.internal/dir" || c.AppName() != "meet.example.org" {
		t.Errorf("overrides: dir %q app %q", c.directory(), c.AppName())
	}
}

func TestBadVariablesAreNamed(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DOMAIN": "https://example.org"}, "DOMAIN (-domain)"},
		{map[string]string{"DOMAIN": "example.org:443"}, "DOMAIN (-domain)"},
		{map[string]string{"DOMAIN": "localhost"}, "DOMAIN (-domain)"},
		{map[string]string{"DOMAIN": "203.0.113.1"}, "DOMAIN (-domain)"},
		{map[string]string{"DOMAIN": "-bad.example.org"}, "DOMAIN (-domain)"},
		{map[string]string{"DOMAIN": "ex_ample.org"}, "DOMAIN (-domain)"},
		{map[string]string{"APP_HOST": "a b"}, "APP_HOST (-app-host)"},
		{map[string]string{"TURN_TLS_HOST": "t"}, "TURN_TLS_HOST (-turn-tls-host)"},
		{map[string]string{"LETSENCRYPT_EMAIL": "not-an-address"}, "LETSENCRYPT_EMAIL (-letsencrypt-email)"},
		{map[string]string{"LETSENCRYPT_EMAIL": "Ops <ops@example.org>"}, "LETSENCRYPT_EMAIL (-letsencrypt-email)"},
		{map[string]string{"LETSENCRYPT_STAGING": "maybe"}, "LETSENCRYPT_STAGING (-letsencrypt-staging)"},
		{map[string]string{"ACME_DIRECTORY_URL": "http://ca.example/dir"}, "ACME_DIRECTORY_URL (-acme-directory-url)"},
	}
	for _, c := range cases {
		_, err := resolve(t, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.env, err, c.want)
		}
	}
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	app := http.NotFoundHandler()
	certFile, keyFile := certFiles(t)
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Domain: "example.org", CertFile: certFile, App: app}, "TLS_KEY_FILE"},
		{Config{Domain: "example.org", KeyFile: keyFile, App: app}, "TLS_CERT_FILE"},
		{Config{Domain: "example.org", HTTPSAddr: ":0", CertFile: certFile, KeyFile: keyFile, App: app}, "TLS_CERT_FILE"}, // missing files
		{Config{Domain: "example.org", AppHost: "example.org", App: app}, "APP_HOST"},
		{Config{Domain: "example.org", TurnHost: "example.org", App: app}, "TURN_TLS_HOST"},
		{Config{Domain: "example.org", HTTPSAddr: "443", App: app}, "HTTPS_ADDR"},
		{Config{Domain: "example.org", HTTPSAddr: ":0", TurnUpstream: "nohost", App: app}, "TURN_PROXY_PROTOCOL_ADDR"},
		{Config{Domain: "example.org", HTTPSAddr: ":0", App: app}, "DATA_DIR"},
		{Config{Domain: "", App: app}, "DOMAIN"},
	}
	for _, c := range cases {
		e, err := New(c.cfg)
		if err == nil {
			_ = e.tlsLn.Close()
			if e.httpLn != nil {
				_ = e.httpLn.Close()
			}
			t.Errorf("%+v: accepted", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %q does not name %s", c.cfg, err, c.want)
		}
	}
}

func TestDNSName(t *testing.T) {
	good := []string{"example.org", "a.b-c.example.org", "xn--bcher-kva.example", "EXAMPLE.org"}
	for _, s := range good {
		if _, err := dnsName(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := []string{"example.org.", "ex..org", strings.Repeat("a", 64) + ".org", "exa mple.org", "*.example.org", "::1", "[::1]"}
	for _, s := range bad {
		if _, err := dnsName(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
