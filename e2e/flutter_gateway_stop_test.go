package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/roomsvc"
)

// TestFlutterGatewayStop: Flutter apps cannot resume, so when their gateway stops they leave
// at once (socket closed with 1001) and the members on other gateways get `leave` and `peers`
// without waiting for the resume grace; the freed id can be registered again immediately.
func TestFlutterGatewayStop(t *testing.T) {
	// A grace far longer than the test's waits: a held slot would fail the test, not slow it.
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = time.Minute }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g2, err := gateway.New(gateway.Config{
		Base:       platform.Base{InternalToken: s.InternalToken},
		Listener:   ln,
		RoomsvcURL: s.RoomsvcURL,
		CredsvcURL: s.CredsvcURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g2.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	other := &stack{GatewayURL: "http://" + g2.Addr()}

	a := dialFlutter(t, other, "on-g2")
	a.expectPeers("on-g2")
	b := dialFlutter(t, s, "on-g1")
	b.expectPeers("on-g2", "on-g1")
	a.expectPeers("on-g2", "on-g1")

	stop()
	a.expectClose(websocket.StatusGoingAway)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not stop")
	}
	done <- nil // for the cleanup

	if m := b.expect("leave"); string(m.Data) != `"on-g2"` {
		t.Fatalf("leave %s", m.Data)
	}
	b.expectPeers("on-g1")
	again := dialFlutter(t, s, "on-g2")
	again.expectPeers("on-g1", "on-g2")
	b.expectPeers("on-g1", "on-g2")
}
