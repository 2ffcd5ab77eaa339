package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
)

// TestChromiumTurnKilledCallComesBack: two pages in a relay-only call through a turnsvc that
// runs as a process of its own. turnsvc is killed (SIGKILL: every allocation is gone) and
// started again on the same ports. Both pages notice the lost path, renew their TURN
// credentials with a resume on a second socket (the resume answer carries fresh ones), apply
// them, and the call comes back by an ICE restart through the new turnsvc, within 10 s of its
// restart, with media flowing and the other page told nothing about a departure.
func TestChromiumTurnKilledCallComesBack(t *testing.T) {
	t.Parallel()
	if !inLoopbackNamespace(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()

	// credsvc hands out URLs for the turnsvc process, not for the stack's own turnsvc (which
	// keeps running, unused); the two agree on the port, the host and the external IP, and
	// turnsvc checks every credential with credsvc, so the secret is credsvc's alone.
	port := testnet.FreeTURNPort(t)
	s := startStack(t, stackOptions{
		Gateway: func(c *gateway.Config) { c.ForceRelay = true },
		Credsvc: func(c *credsvc.Config) {
			c.TurnHost = "127.0.0.1"
			c.TurnPort = port
			c.TurnsPort = 0
		},
	})
	env := map[string]string{
		"TURNSVC_ADDR":       testnet.FreeAddr(t),
		"CREDSVC_URL":        s.CredsvcURL,
		"INTERNAL_TOKEN":     s.InternalToken,
		"ADMIN_TOKEN":        s.AdminToken,
		"DATA_DIR":           t.TempDir(),
		"TURN_LISTEN_HOST":   "127.0.0.1",
		"EXTERNAL_IP":        "127.0.0.1",
		"TURN_PORT":          strconv.Itoa(port),
		"TURN_ALLOW_PEERS":   "127.0.0.0/8,::1/128",
		"TURN_DRAIN_TIMEOUT": "1s",
	}
	turn := startProc(t, "turnsvc", "", env)

	b := startChromium(t, ctx)
	url := s.GatewayURL + "/?debug=1"
	alice, bob := b.relayedCall(t, url)
	for _, p := range []*page{alice, bob} {
		p.waitFor("path badge relay", `document.getElementById('path-badge').dataset.path === 'relay'`, uiTimeout)
	}
	alice.expectRemoteFrames()
	bob.expectRemoteFrames()
	// adminOf reaches a turnsvc process's admin RPCs with the stack's helpers.
	adminOf := func(p *proc) *turnStack {
		return &turnStack{stack: s, admin: turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), "http://"+p.addr,
			connect.WithInterceptors(platform.NewSendToken(s.AdminToken)))}
	}
	participant := map[*page]string{}
	for _, p := range []*page{alice, bob} {
		participant[p] = eval[string](p, `window.tuturu.state().session.participantId`)
		if len(adminOf(turn).allocations(t, participant[p])) == 0 {
			t.Fatalf("%s: the call is not relayed by the turnsvc process", p.name)
		}
	}

	// The TURN username each page's peer connection holds: it names the credential's expiry,
	// so a renewed credential has another one.
	const usernameJS = `(window.tuturu.pc().getConfiguration().iceServers.find((s) => s.username) || {}).username || ''`
	before := map[*page]string{}
	for _, p := range []*page{alice, bob} {
		if before[p] = eval[string](p, usernameJS); before[p] == "" {
			t.Fatalf("%s: no TURN username in the peer connection's configuration", p.name)
		}
	}
	time.Sleep(1100 * time.Millisecond) // usernames carry the expiry in whole seconds

	// turnsvc crashes; it is restarted once both pages have noticed the lost path (Chromium
	// calls a path disconnected after about 7.5 s of unanswered checks; the client then gives
	// it ICE_GRACE_MS to heal before restarting ICE).
	turn.kill()
	killed := time.Now()
	for _, p := range []*page{alice, bob} {
		p.waitFor("the lost path noticed", `document.body.dataset.phase === 'reconnecting' || window.tuturu.pc().iceConnectionState !== 'connected'`, 20*time.Second)
	}
	again := startProc(t, "turnsvc", "", env)
	restarted := time.Now()
	t.Logf("turnsvc killed, the pages noticed, serving again %v after the kill", restarted.Sub(killed).Round(10*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("turnsvc before the kill:\n%s\nturnsvc after:\n%s", turn.log(), again.log())
		}
	})

	// Both pages are back in the call within 10 s of the restart.
	for _, p := range []*page{alice, bob} {
		left := max(10*time.Second-time.Since(restarted), 0)
		p.waitFor("back in the call", `document.body.dataset.phase === 'call' && ['connected', 'completed'].includes(window.tuturu.pc().iceConnectionState)`, left+100*time.Millisecond)
		t.Logf("%s: back in the call %v after turnsvc was serving again", p.name, time.Since(restarted).Round(10*time.Millisecond))
	}
	// Each page applied a renewed credential, and the restarted turnsvc relays for it with that
	// credential and no other: the restart was made with the fresh one.
	for _, p := range []*page{alice, bob} {
		now := eval[string](p, usernameJS)
		if now == before[p] {
			t.Fatalf("%s: the peer connection still holds the TURN username it had before the crash", p.name)
		}
		allocs := adminOf(again).allocations(t, participant[p])
		if len(allocs) == 0 {
			t.Fatalf("%s: no allocation on the restarted turnsvc", p.name)
		}
		for _, a := range allocs {
			if a.GetUsername() != now {
				t.Fatalf("%s: an allocation on the restarted turnsvc uses another credential than the renewed one", p.name)
			}
		}
		if code := p.attr("status", "data-code"); code == "peer-left" {
			t.Fatalf("%s was told the other person left", p.name)
		}
		p.waitFor("path badge relay", `document.getElementById('path-badge').dataset.path === 'relay'`, uiTimeout)
	}
	// The offerer applied the fresh credentials before making its restart offer: the action
	// that brought them (the renewal's resume answer) ran pc.configure, then pc.restartIce.
	if !alice.consoleHasAll("SOCKET_MESSAGE resumed", "pc.configure", "pc.restartIce") {
		t.Fatalf("alice: no renewal followed by the ICE restart in the action log")
	}
	alice.expectRemoteFrames()
	bob.expectRemoteFrames()
	alice.screenshot("call-after-turn-restart")
}

// consoleHasAll reports whether one console line contains every one of parts, in that order.
func (p *page) consoleHasAll(parts ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		rest, ok := l, true
		for _, s := range parts {
			i := strings.Index(rest, s)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(s):]
		}
		if ok {
			return true
		}
	}
	return false
}
