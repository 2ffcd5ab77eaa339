package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
)

// Behaviour of the gateway↔roomsvc Sessions stream seen from the clients: members on
// different gateways, a gateway killed, a socket that stops reading, a gateway at capacity.

// TestGatewayKilledMembersResumeThroughAnother: alice joins through the in-process gateway, bob
// through a gateway process; they signal across gateways. bob's gateway is killed (SIGKILL: no
// drain, no detach sent); roomsvc sees the stream break and holds bob, who resumes through
// alice's gateway and signals again. alice is never told bob left.
func TestGatewayKilledMembersResumeThroughAnother(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	other := startProc(t, "gateway", "", gatewayEnv(t, s))
	otherStack := &stack{GatewayURL: "http://" + other.addr}

	pin := nextPIN()
	alice := dialWS(t, s, "alice", nil)
	alice.join(pin)
	bob := dialWS(t, otherStack, "bob", nil)
	info := bob.join(pin)
	alice.expect("peer-joined")
	alice.send(`{"type":"offer","data":{"type":"offer","sdp":"v=0 across gateways"}}`)
	if m := bob.expect("offer"); !strings.Contains(string(m.Data), "across gateways") {
		t.Fatalf("bob got %s", m.raw)
	}
	bob.send(`{"type":"answer","data":{"type":"answer","sdp":"v=0 back"}}`)
	alice.expect("answer")

	other.kill()
	waitFor(t, 5*time.Second, "bob held by roomsvc", func() bool { return memberState(t, s, pin, info.ParticipantID) == roomv1.MemberState_MEMBER_STATE_HELD })

	bob2 := dialWS(t, s, "bob again", nil)
	bob2.send(`{"type":"resume","token":"` + info.ResumeToken + `"}`)
	if again := bob2.joinAnswer("resumed"); again.ParticipantID != info.ParticipantID || len(again.ICEServers) == 0 {
		t.Fatalf("resumed as %+v", again)
	}
	alice.send(`{"type":"ice-candidate","data":{"candidate":"after the kill"}}`)
	if m := bob2.expect("ice-candidate"); !strings.Contains(string(m.Data), "after the kill") {
		t.Fatalf("bob got %s", m.raw)
	}
	alice.expectQuiet() // no peer-left
}

// memberState is the state roomsvc reports for a member of the PIN room, or unspecified.
func memberState(t *testing.T, s *stack, pin, participant string) roomv1.MemberState {
	t.Helper()
	return memberStateOn(t, s.RoomsvcURL, s.AdminToken, pin, participant)
}

// memberStateOn is memberState on the roomsvc at roomsvcURL.
func memberStateOn(t *testing.T, roomsvcURL, adminToken, pin, participant string) roomv1.MemberState {
	t.Helper()
	res := pinRoom(t, roomsvcURL, adminToken, pin)
	if res == nil {
		t.Fatalf("GetRoom %s: no such room", pin)
	}
	for _, m := range res.GetMembers() {
		if m.GetParticipantId() == participant {
			return m.GetState()
		}
	}
	return roomv1.MemberState_MEMBER_STATE_UNSPECIFIED
}

// TestStuckSocketIsDisconnected: carol stops reading while dave sends her large candidates as
// fast as his burst allows. Past its queue bound (lowered to 64 events) her socket is
// disconnected (held for a resume) with SLOW_CONSUMER, and meanwhile alice and bob, on the
// same gateway and stream, keep relaying within a bound far above normal.
func TestStuckSocketIsDisconnected(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.SocketQueue = 64
		c.Limits.MessageBurst = 1000
	}})
	alice, bob := joinedPair(t, s, nextPIN())
	pin := nextPIN()
	carol := dialWS(t, s, "carol", nil)
	carolInfo := carol.join(pin)
	dave := dialWS(t, s, "dave", nil)
	dave.join(pin)
	carol.expect("peer-joined")
	// From here carol reads nothing.

	candidate := `{"type":"ice-candidate","data":{"candidate":"` + strings.Repeat("x", 60<<10) + `"}}`
	flood := make(chan error, 1)
	floodCtx, stopFlood := context.WithCancel(context.Background())
	defer stopFlood()
	go func() {
		for i := 0; i < 1000 && floodCtx.Err() == nil; i++ {
			if err := dave.c.Write(floodCtx, websocket.MessageText, []byte(candidate)); err != nil {
				flood <- err
				return
			}
		}
		flood <- nil
	}()

	var slowest time.Duration
	deadline := time.Now().Add(60 * time.Second)
	for memberState(t, s, pin, carolInfo.ParticipantID) != roomv1.MemberState_MEMBER_STATE_HELD {
		if time.Now().After(deadline) {
			t.Fatal("carol's socket was not disconnected within 60 s of the flood")
		}
		start := time.Now()
		alice.send(`{"type":"ice-candidate","data":{"candidate":"ping"}}`)
		bob.expect("ice-candidate")
		slowest = max(slowest, time.Since(start))
		// At most 20 probes a second, alice's message rate: on a slow machine the flood takes
		// long enough for an unpaced alice to spend her burst and be removed (RATE_LIMITED).
		time.Sleep(50 * time.Millisecond)
	}
	stopFlood()
	<-flood
	t.Logf("slowest alice→bob relay during the flood: %v", slowest)
	if slowest > 2*time.Second {
		t.Errorf("a relay through the same gateway took %v while carol was stuck (bound 2 s)", slowest)
	}
	// carol reads again: what was written before, then her error and the close.
	for {
		m, err := carol.tryRecv(wsTimeout)
		if err != nil {
			if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
				t.Fatalf("carol closed with %d (%v), want 1008 after SLOW_CONSUMER", got, err)
			}
			t.Fatal("carol's socket closed without a SLOW_CONSUMER error")
		}
		if m.Type == "error" {
			if m.Code != "SLOW_CONSUMER" {
				t.Fatalf("carol got error %s", m.raw)
			}
			break
		}
	}
	carol.expectClose(websocket.StatusPolicyViolation)
}

// TestGatewayFullAnswersServerFull: a gateway process with an open-file limit of 256 holds 156
// sockets; the next one gets SERVER_FULL and 1013 at once, /readyz says full while /healthz
// stays ok, the sockets already open still relay, and once some close new ones are accepted.
func TestGatewayFullAnswersServerFull(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	env := gatewayEnv(t, s)
	env["WS_MAX_SOCKETS_PER_ADDRESS"] = "1000"
	env["WS_JOINS_PER_MINUTE"] = "1000"
	env["WS_JOIN_BURST"] = "1000"
	gw := startProc(t, "gateway", "ulimit -n 256;", env)
	full := &stack{GatewayURL: "http://" + gw.addr}
	const capacity = 256 - 100 // the reserve is max(100, limit/20)

	pin := nextPIN()
	a := dialWS(t, full, "a", nil)
	a.join(pin)
	b := dialWS(t, full, "b", nil)
	b.join(pin)
	a.expect("peer-joined")
	others := make([]*wsClient, 0, capacity-2)
	for i := range capacity - 2 {
		c := dialWS(t, full, "idle", nil)
		if i%2 == 0 {
			c.expectQuiet() // served, not refused
		}
		others = append(others, c)
	}
	if code, body := httpGet(t, full.GatewayURL+"/readyz"); code != http.StatusServiceUnavailable || body != "full\n" {
		t.Fatalf("/readyz at capacity: %d %q", code, body)
	}
	if code, _ := httpGet(t, full.GatewayURL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz at capacity: %d", code)
	}
	for range 3 {
		c := dialWS(t, full, "over", nil)
		m := c.expect("error")
		if m.Code != "SERVER_FULL" || m.RetryAfterMs <= 0 {
			t.Fatalf("over capacity: %s", m.raw)
		}
		c.expectClose(websocket.StatusTryAgainLater)
	}
	a.send(`{"type":"offer","data":{"type":"offer","sdp":"v=0 at capacity"}}`)
	b.expect("offer")

	for _, c := range others[:10] {
		_ = c.c.Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, 10*time.Second, "/readyz ready after sockets closed", func() bool {
		code, _ := httpGet(t, full.GatewayURL+"/readyz")
		return code == http.StatusOK
	})
	c := dialWS(t, full, "after", nil)
	c.join(nextPIN())
}

// TestCloseReasonCarriesTheErrorText: a client that only shows the close reason (the original
// web client does) sees the whole error.
func TestCloseReasonCarriesTheErrorText(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	pin := nextPIN()
	joinedPair(t, s, pin)
	carol := dialWS(t, s, "carol", nil)
	carol.send(`{"type":"join-pin","pin":"` + pin + `"}`)
	want := "Room " + pin + " is full (maximum 2 clients)"
	carol.expectError(want, "ROOM_FULL")
	_, err := carol.tryRecv(wsTimeout)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != want {
		t.Fatalf("close = %v, want 1008 %q", err, want)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// pinRoom is what the roomsvc at roomsvcURL knows of the PIN room, or nil if it has none.
func pinRoom(t *testing.T, roomsvcURL, adminToken, pin string) *roomv1.GetRoomResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin := roomv1connect.NewRoomAdminServiceClient(http.DefaultClient, roomsvcURL)
	req := connect.NewRequest(&roomv1.GetRoomRequest{Room: &roomv1.GetRoomRequest_Pin{Pin: pin}})
	req.Header().Set("Authorization", "Bearer "+adminToken)
	res, err := admin.GetRoom(ctx, req)
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	if err != nil {
		t.Fatalf("GetRoom %s on %s: %v", pin, roomsvcURL, err)
	}
	return res.Msg
}
