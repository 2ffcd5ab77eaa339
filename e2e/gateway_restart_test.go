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

// TestGatewayStopKeepsCalls: a gateway that stops closes its sockets with 1001 and keeps
// their slots; a member resumes through another gateway and the other member notices nothing.
func TestGatewayStopKeepsCalls(t *testing.T) {
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 10 * time.Second }})
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

	pin := nextPIN()
	a := dialWS(t, other, "a", nil) // through the gateway that will stop
	ia := a.join(pin)
	b := dialWS(t, s, "b", nil)
	b.join(pin)
	a.expect("peer-joined")

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

	a2 := dialWS(t, s, "a2", nil)
	a2.send(`{"type":"resume","token":"` + ia.ResumeToken + `"}`)
	if r := a2.joinAnswer("resumed"); r.ParticipantID != ia.ParticipantID {
		t.Fatalf("resumed as %s, was %s", r.ParticipantID, ia.ParticipantID)
	}
	b.expectQuiet()
	b.send(`{"type":"answer","data":{"type":"answer","sdp":"x"}}`)
	a2.expect("answer")
}
