package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/credsvc"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/turnsvc"
)

// TestBrowserSelfTest: a `self-test` first message gets short-lived TURN credentials of a
// participant no room knows; they relay; the socket holds no room (a join on it is refused,
// and two others fill the PIN room as usual); closing the socket revokes them at once; and
// self-tests are limited like joins.
func TestBrowserSelfTest(t *testing.T) {
	t.Parallel()
	ts := startTurnStack(t, nil)
	c := dialWS(t, ts.stack, "tester", nil)
	c.send(`{"type":"self-test"}`)
	m := c.expect("self-test")
	var info joinInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatalf("self-test data: %v", err)
	}
	if info.CredentialTTL <= 0 || info.CredentialTTL > 600 {
		t.Fatalf("self-test credential TTL %d s, want minutes", info.CredentialTTL)
	}
	if info.ParticipantID != "" || info.ResumeToken != "" {
		t.Fatalf("self-test answer carries a membership: %s", m.raw)
	}
	var urls []string
	for _, s := range info.ICEServers {
		urls = append(urls, s.URLs...)
	}
	if !strings.Contains(strings.Join(urls, " "), "transport=udp") || !strings.Contains(strings.Join(urls, " "), "transport=tcp") {
		t.Fatalf("self-test ICE servers lack TURN over UDP and TCP: %v", urls)
	}
	user, pass := turnCredential(t, ts, info)
	if !strings.Contains(user, ":selftest-") {
		t.Fatalf("self-test username %q is not a test participant's", user)
	}
	allocateAndEcho(t, ts.client(t, "udp", user, pass), testnet.UDPEchoPeer(t).LocalAddr(), "self-test credential over UDP")

	// Not a room slot: this socket cannot join, and a PIN room fills with two others.
	c.send(`{"type":"join-pin","pin":"` + nextPIN() + `"}`)
	c.expectError("", "ALREADY_JOINED")
	joinedPair(t, ts.stack, nextPIN())

	// The end of the socket revokes the credential.
	_ = c.c.Close(websocket.StatusNormalClosure, "done")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, 5*time.Second, "self-test credential revoked", func() bool {
		res, err := ts.cred.Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: user, Realm: "tuturu"}))
		return err == nil && res.Msg.GetVerdict() == credv1.Verdict_VERDICT_REVOKED
	})

	// Limited like joins: the join limiter's burst, then JOIN_RATE_LIMITED.
	for i := range 100 {
		d := dialWS(t, ts.stack, "burst", nil)
		d.send(`{"type":"self-test"}`)
		r := d.recv()
		_ = d.c.CloseNow()
		if r.Type == "error" {
			if r.Code != "JOIN_RATE_LIMITED" {
				t.Fatalf("self-test %d: %s", i, r.raw)
			}
			return
		}
	}
	t.Fatal("100 self-tests from one address in a row were all answered: no join limit")
}

// connectionTestJS reads the connection test's results: check id → status.
const connectionTestJS = `Object.fromEntries([...document.querySelectorAll('#test-results li')].map((li) => [li.dataset.id, li.dataset.status]))`

// runConnectionTest opens the test from the PIN screen's link, runs it and returns each
// check's status and the summary.
func runConnectionTest(p *page) (map[string]string, string) {
	p.t.Helper()
	p.do("open the connection test", chromedpClick("test-link"))
	p.waitFor("the test screen alone", `!document.getElementById('screen-test').hidden && document.getElementById('screen-pin').offsetParent === null && location.hash === '#test'`, uiTimeout)
	p.do("start the test", chromedpClick("test-start"))
	p.waitFor("the test to finish", `document.getElementById('screen-test').dataset.state === 'done'`, 90*time.Second)
	return eval[map[string]string](p, connectionTestJS), p.text("test-summary")
}

// TestChromiumConnectionTest: "Test my connection" on the real page against the real stack,
// with turnsvc serving TURN over TLS too. With everything up, every check passes and the
// microphone meter moves. With credsvc handing out the UDP URL on a port where nothing listens
// (what a network that blocks UDP looks like to the page), TURN over UDP and STUN fail, TCP,
// TLS and the round trip work, and the page says calls will be relayed over TLS.
func TestChromiumConnectionTest(t *testing.T) {
	t.Parallel()
	if !inLoopbackNamespace(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	// TURN over TLS on turnsvc's own listener, with a certificate of a CA made for the test,
	// which Chromium trusts by the leaf's key alone (it verifies turns: certificates).
	ca := newEdgeCA(t, t.TempDir())
	b := startChromium(t, ctx, chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, ca.certFile)))
	s := startStack(t, stackOptions{Turnsvc: func(c *turnsvc.Config) { c.TLSCertFile, c.TLSKeyFile, c.TLSPort = ca.certFile, ca.keyFile, 0 }})
	p := b.openPage("tester", s.GatewayURL+"/?debug=1", 1024, 900, false)
	got, summary := runConnectionTest(p)
	want := map[string]string{"media": "ok", "stun": "ok", "udp": "ok", "tcp": "ok", "tls": "ok", "roundTrip": "ok"}
	for id, status := range want {
		if got[id] != status {
			t.Fatalf("all up: check %s is %q, want %q (all: %v; summary %q)", id, got[id], status, got, summary)
		}
	}
	if summary != "Your connection is ready for calls." {
		t.Fatalf("all up: summary %q", summary)
	}
	p.waitFor("the microphone meter to move", `Number(document.getElementById('test-meter').dataset.peak || 0) > 0.01`, uiTimeout)
	p.screenshot("connection-test-ok")
	p.do("back to the PIN screen", chromedpClick("test-back"))
	p.waitFor("the PIN screen", `document.getElementById('screen-test').hidden && document.getElementById('pin').offsetParent !== null`, uiTimeout)

	// A UDP port with nothing behind it: taken, then given back.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	s2 := startStack(t, stackOptions{
		Turnsvc: func(c *turnsvc.Config) { c.TLSCertFile, c.TLSKeyFile, c.TLSPort = ca.certFile, ca.keyFile, 0 },
		Credsvc: func(c *credsvc.Config) { c.TurnUDPPort = closed },
	})
	p2 := b.openPage("no-udp", s2.GatewayURL+"/?debug=1", 1024, 900, false)
	got, summary = runConnectionTest(p2)
	want = map[string]string{"media": "ok", "stun": "fail", "udp": "fail", "tcp": "ok", "tls": "ok", "roundTrip": "ok"}
	for id, status := range want {
		if got[id] != status {
			t.Fatalf("UDP blocked: check %s is %q, want %q (all: %v; summary %q)", id, got[id], status, got, summary)
		}
	}
	if !strings.HasPrefix(summary, "Your network blocks UDP: calls will be relayed over TLS on port ") {
		t.Fatalf("UDP blocked: summary %q", summary)
	}
	p2.screenshot("connection-test-no-udp")
}

// spkiHash is base64(SHA-256(SubjectPublicKeyInfo)) of the PEM certificate in file, the form
// Chromium's --ignore-certificate-errors-spki-list takes.
func spkiHash(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
