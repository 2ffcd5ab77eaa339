package e2e

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/roomsvc"
)

// TestFlutterLobbyFull: a `new` beyond LOBBY_MAX_MEMBERS is refused with LOBBY_FULL and close
// 1008; the members are not disturbed, and a place freed by a departure can be taken.
func TestFlutterLobbyFull(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.LobbyMaxMembers = 2 }})
	a := dialFlutter(t, s, "alice")
	a.expectPeers("alice")
	b := dialFlutter(t, s, "bob")
	b.expectPeers("alice", "bob")
	a.expectPeers("alice", "bob")

	c := dialFlutter(t, s, "carol")
	e := c.expectFlutterError("new", "LOBBY_FULL")
	if !strings.Contains(e.Reason, "is full (maximum 2 members)") {
		t.Fatalf("reason %q, want the lobby's maximum", e.Reason)
	}
	c.expectClose(websocket.StatusPolicyViolation)
	a.expectFlutterQuiet()
	b.expectFlutterQuiet()

	if err := b.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	a.expect("leave")
	a.expectPeers("alice")
	d := dialFlutter(t, s, "dave")
	d.expectPeers("alice", "dave")
}
