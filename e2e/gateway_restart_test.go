package e2e

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/roomsvc"
)

// TestGatewayStopKeepsCalls: a gateway that stops closes its sockets with 1001 and keeps
// their slots; a member resumes through another gateway and the other member notices nothing.
func TestGatewayStopKeepsCalls(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 10 * time.Second }})
	g2 := startExtraGateway(t, s)
	other := g2.stack

	pin := nextPIN()
	a := dialWS(t, other, "a", nil) // through the gateway that will stop
	ia := a.join(pin)
	b := dialWS(t, s, "b", nil)
	b.join(pin)
	a.expect("peer-joined")

	g2.stop()
	a.expectClose(websocket.StatusGoingAway)
	if err := g2.wait(); err != nil {
		t.Fatalf("gateway stopped with %v", err)
	}

	a2 := dialWS(t, s, "a2", nil)
	a2.send(`{"type":"resume","token":"` + ia.ResumeToken + `"}`)
	if r := a2.joinAnswer("resumed"); r.ParticipantID != ia.ParticipantID {
		t.Fatalf("resumed as %s, was %s", r.ParticipantID, ia.ParticipantID)
	}
	b.expectQuiet()
	b.send(`{"type":"answer","data":{"type":"answer","sdp":"x"}}`)
	a2.expect("answer")
}
