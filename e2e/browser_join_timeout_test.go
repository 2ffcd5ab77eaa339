package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
)

// TestBrowserJoinTimeout: a socket that never joins is closed after WS_JOIN_TIMEOUT with
// JOIN_TIMEOUT and 1008, though it keeps pinging; a socket that joined stays open.
func TestBrowserJoinTimeout(t *testing.T) {
	t.Parallel()
	// Long enough that the ping below is answered before it passes on a loaded machine.
	const timeout = 2 * time.Second
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.JoinTimeout = timeout }})
	idle := dialWS(t, s, "idle", nil)
	start := time.Now()
	// Application pings are answered, but do not count as a join.
	idle.send(`{"type":"ping"}`)
	idle.expect("pong")
	joined := dialWS(t, s, "joined", nil)
	joined.join(nextPIN())
	m := idle.expectError("", "JOIN_TIMEOUT")
	if !strings.Contains(m.Error, "No room joined within "+timeout.String()) {
		t.Fatalf("error text %q, want the timeout", m.Error)
	}
	if waited := time.Since(start); waited > timeout+2*time.Second {
		t.Fatalf("closed after %v, want about %v", waited, timeout)
	}
	idle.expectClose(websocket.StatusPolicyViolation)

	time.Sleep(timeout)
	joined.expectQuiet() // a member is not subject to the join timeout
}

// TestFlutterJoinTimeout: the Flutter dialect claims the deadline with `new`; a Flutter
// socket that registered is not closed when the join timeout passes.
func TestFlutterJoinTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.JoinTimeout = timeout }})
	a := dialFlutter(t, s, "alice")
	a.expectPeers("alice")
	time.Sleep(2 * timeout)
	a.expectFlutterQuiet()
}
