package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

// Bad edge configuration stops start-up naming the variable, before anything listens.
func TestBadEdgeConfigurationNamesTheVariable(t *testing.T) {
	cases := []struct {
		target string
		env    map[string]string
		want   string
	}{
		{"all", map[string]string{"DOMAIN": "https://call.example.org"}, "DOMAIN (-domain)"},
		{"gateway", map[string]string{"DOMAIN": "localhost"}, "DOMAIN (-domain)"},
		{"all", map[string]string{"LETSENCRYPT_EMAIL": "ops at example"}, "LETSENCRYPT_EMAIL (-letsencrypt-email)"},
		{"gateway", map[string]string{"LETSENCRYPT_STAGING": "staging"}, "LETSENCRYPT_STAGING (-letsencrypt-staging)"},
		{"turnsvc", map[string]string{"EXTERNAL_IP": "my-server"}, "EXTERNAL_IP"},
		{"turnsvc", map[string]string{"TURN_PROXY_PROTOCOL_ADDR": "0.0.0.0:9104"}, "TURN_PROXY_PROTOCOL_ADDR"},
		{"gateway", map[string]string{"DOMAIN": "call.example.org", "TLS_CERT_FILE": "/nonexistent/cert.pem", "HTTPS_ADDR": "127.0.0.1:0", "HTTP_ADDR": "", "GATEWAY_ADDR": "127.0.0.1:0"}, "TLS_KEY_FILE"},
	}
	for _, c := range cases {
		env := map[string]string{"DATA_DIR": t.TempDir()}
		for k, v := range c.env {
			env[k] = v
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errOut bytes.Buffer
		err := run(ctx, []string{c.target}, envFrom(env), &out, &errOut)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want one naming %s", c.target, c.env, err, c.want)
		}
	}
}

// With DOMAIN set, `all` connects the edge to turnsvc and hands out turns:t.<DOMAIN>:443.
func TestWireEdge(t *testing.T) {
	resolve := func(env map[string]string) configs {
		var c configs
		v := platform.NewVars(flag.NewFlagSet("t", flag.ContinueOnError), envFrom(env))
		c.bind(v, "all")
		if err := v.Resolve(); err != nil {
			t.Fatal(err)
		}
		c.wireEdge()
		return c
	}
	c := resolve(map[string]string{"DOMAIN": "call.example.org"})
	if c.gw.Edge.TurnUpstream != defaultTurnProxyAddr || c.turn.ProxyProtocolAddr != defaultTurnProxyAddr {
		t.Errorf("upstream %q, turnsvc %q", c.gw.Edge.TurnUpstream, c.turn.ProxyProtocolAddr)
	}
	if c.cred.TurnsHost != "t.call.example.org" || c.cred.TurnsPort != 443 {
		t.Errorf("turns URL host %q port %d", c.cred.TurnsHost, c.cred.TurnsPort)
	}
	c = resolve(map[string]string{"DOMAIN": "call.example.org", "TURNS_PORT": "5349", "TURN_PROXY_PROTOCOL_ADDR": "127.0.0.1:7000"})
	if c.cred.TurnsPort != 5349 || c.cred.TurnsHost != "" || c.turn.ProxyProtocolAddr != "127.0.0.1:7000" {
		t.Errorf("explicit settings overridden: %+v %q", c.cred.TurnsPort, c.turn.ProxyProtocolAddr)
	}
	c = resolve(nil)
	if c.gw.Edge.TurnUpstream != "" || c.cred.TurnsPort != 0 {
		t.Error("edge wiring without DOMAIN")
	}
}
