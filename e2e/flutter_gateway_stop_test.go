package e2e

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/roomsvc"
)

// TestFlutterGatewayStop: Flutter apps cannot resume, so when their gateway stops they leave
// at once (socket closed with 1001) and the members on other gateways get `leave` and `peers`
// without waiting for the resume grace; the freed id can be registered again immediately.
func TestFlutterGatewayStop(t *testing.T) {
	t.Parallel()
	// A grace far longer than the test's waits: a held slot would fail the test, not slow it.
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = time.Minute }})
	g2 := startExtraGateway(t, s)
	other := g2.stack

	a := dialFlutter(t, other, "on-g2")
	a.expectPeers("on-g2")
	b := dialFlutter(t, s, "on-g1")
	b.expectPeers("on-g2", "on-g1")
	a.expectPeers("on-g2", "on-g1")

	g2.stop()
	a.expectClose(websocket.StatusGoingAway)
	if err := g2.wait(); err != nil {
		t.Fatalf("gateway stopped with %v", err)
	}

	if m := b.expect("leave"); string(m.Data) != `"on-g2"` {
		t.Fatalf("leave %s", m.Data)
	}
	b.expectPeers("on-g1")
	again := dialFlutter(t, s, "on-g2")
	again.expectPeers("on-g1", "on-g2")
	b.expectPeers("on-g1", "on-g2")
}
