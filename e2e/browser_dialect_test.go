package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/roomsvc"
)

// TestBrowserCallSignaling walks one call through the browser dialect: join, join,
// peer-joined to the first only, every relay byte for byte, leave, peer-left once.
func TestBrowserCallSignaling(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	pin := nextPIN()
	a := dialWS(t, s, "a", nil)
	b := dialWS(t, s, "b", nil)

	ia := a.join(pin)
	if ia.Role != "first" || ia.ParticipantID == "" || ia.ResumeToken == "" || ia.ResumeGraceMs <= 0 ||
		ia.CredentialTTL <= 0 || ia.ICETransportPolicy != "all" || len(ia.ICEServers) == 0 {
		t.Fatalf("first join answer: %+v", ia)
	}
	if u := ia.ICEServers[len(ia.ICEServers)-1]; u.Username == "" || u.Credential == "" {
		t.Fatalf("join answer has no TURN credential: %+v", ia.ICEServers)
	}
	ib := b.join(pin)
	if ib.Role != "second" || ib.ParticipantID == ia.ParticipantID {
		t.Fatalf("second join answer: %+v (first %s)", ib, ia.ParticipantID)
	}
	a.expect("peer-joined")
	b.expectQuiet() // the second member is not told peer-joined

	// Relays carry the sender's bytes exactly, odd spacing and key order included.
	offer := `{ "sdp":"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" ,"type" :"offer"}`
	a.send(`{"type":"offer","data":` + offer + `}`)
	if m := b.expect("offer"); string(m.Data) != offer || string(m.raw) != `{"type":"offer","data":`+offer+`}` {
		t.Fatalf("relayed offer %s, want data %s", m.raw, offer)
	}
	answer := `{"type":"answer","sdp":"v=0\r\n"}`
	b.send(`{"type":"answer","data":` + answer + `}`)
	if m := a.expect("answer"); string(m.Data) != answer {
		t.Fatalf("relayed answer %s", m.Data)
	}
	for i := range 3 {
		cand := `{"candidate":"candidate:` + string(rune('1'+i)) + ` 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`
		a.send(`{"type":"ice-candidate","data":` + cand + `}`)
		b.send(`{"type":"ice-candidate","data":` + cand + `}`)
		if m := b.expect("ice-candidate"); string(m.Data) != cand {
			t.Fatalf("candidate to b: %s", m.Data)
		}
		if m := a.expect("ice-candidate"); string(m.Data) != cand {
			t.Fatalf("candidate to a: %s", m.Data)
		}
	}

	b.send(`{"type":"leave"}`)
	a.expect("peer-left")
	a.expectQuiet() // exactly once
	// A member who left relays nothing, and says so.
	b.send(`{"type":"offer","data":{"type":"offer","sdp":"x"}}`)
	b.expectError("", "NOT_IN_ROOM")
	a.expectQuiet()
	// A connection holds one room in its life: no second join, even after a leave.
	b.send(`{"type":"join-pin","pin":"` + pin + `"}`)
	b.expectError("", "ALREADY_JOINED")
}

func TestBrowserBadPIN(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	for _, tt := range []struct{ msg, shown string }{
		{`{"type":"join-pin","pin":"12345"}`, "12345"},
		{`{"type":"join-pin","pin":"12a456"}`, "12a456"},
		{`{"type":"join-pin","pin":123456}`, "123456"},
		{`{"type":"join-pin"}`, "undefined"},
	} {
		c := dialWS(t, s, "c", nil)
		c.send(tt.msg)
		c.expectError("Invalid PIN format: "+tt.shown+". Must be 6 digits", "INVALID_PIN")
		c.expectClose(websocket.StatusPolicyViolation)
	}
}

func TestBrowserRoomFull(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	pin := nextPIN()
	a, b, c := dialWS(t, s, "a", nil), dialWS(t, s, "b", nil), dialWS(t, s, "c", nil)
	a.join(pin)
	b.join(pin)
	c.send(`{"type":"join-pin","pin":"` + pin + `"}`)
	c.expectError("Room "+pin+" is full (maximum 2 clients)", "ROOM_FULL")
	c.expectClose(websocket.StatusPolicyViolation)
	a.expect("peer-joined")
	a.expectQuiet()
}

func TestBrowserInvalidMessages(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	for _, tt := range []struct{ msg, text string }{
		{`{"pin":"123456"}`, "Invalid message: missing type"},
		{`{"type":"hello"}`, `Invalid message: unknown type "hello"`},
		{`not json`, "Invalid message: expected a JSON object"},
		{`{"type":"offer"}`, "Invalid message: offer needs a data object"},
	} {
		c := dialWS(t, s, "c", nil)
		c.send(tt.msg)
		c.expectError(tt.text, "INVALID_MESSAGE")
		c.expectClose(websocket.StatusPolicyViolation)
	}
	// A member who breaks the protocol leaves for good: the other is told at once.
	pin := nextPIN()
	a, b := joinedPair(t, s, pin)
	b.send(`{"type":"nonsense"}`)
	b.expectError("", "INVALID_MESSAGE")
	a.expect("peer-left")
}

func TestBrowserSignalBeforeJoinAndAlone(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	c := dialWS(t, s, "c", nil)
	c.send(`{"type":"offer","data":{"type":"offer","sdp":"x"}}`)
	c.expectError("", "NOT_IN_ROOM")
	c.send(`{"type":"leave"}`)
	c.expectError("", "NOT_IN_ROOM")
	c.send(`{"type":"ping"}`)
	c.expect("pong")
	// Alone in a room, an offer has no recipient: roomsvc says so, the membership stays.
	c.join(nextPIN())
	c.send(`{"type":"offer","data":{"type":"offer","sdp":"x"}}`)
	if m := c.expect("error"); m.Code == "" || m.Error == "" {
		t.Fatalf("signal without a peer: %s", m.raw)
	}
	c.send(`{"type":"join-pin","pin":"` + nextPIN() + `"}`)
	c.expectError("", "ALREADY_JOINED")
	c.expectQuiet()
}

// TestBrowserNoGhosts: however a socket ends, its slot is freed and the other member is told
// once — at once for a close frame, after the resume grace for a dropped socket.
func TestBrowserNoGhosts(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 300 * time.Millisecond }})
	// With a grace far longer than any wait here, a peer-left proves the slot was not held.
	long := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 10 * time.Minute }})

	t.Run("close frame", func(t *testing.T) {
		s := long
		pin := nextPIN()
		a, b := joinedPair(t, s, pin)
		_ = b.c.Close(websocket.StatusNormalClosure, "bye")
		a.expect("peer-left")
		a.expectQuiet()
		c := dialWS(t, s, "c", nil)
		if info := c.join(pin); info.Role != "second" {
			t.Fatalf("slot not freed: new member role %q", info.Role)
		}
	})

	t.Run("dropped socket", func(t *testing.T) {
		pin := nextPIN()
		a, b := joinedPair(t, s, pin)
		_ = b.c.CloseNow() // TCP gone, no close frame
		a.expect("peer-left")
		a.expectQuiet()
		c := dialWS(t, s, "c", nil)
		if info := c.join(pin); info.Role != "second" {
			t.Fatalf("slot not freed: new member role %q", info.Role)
		}
	})

	t.Run("first member leaves, second becomes first", func(t *testing.T) {
		s := long
		pin := nextPIN()
		a, b := joinedPair(t, s, pin)
		a.send(`{"type":"leave"}`)
		b.expect("peer-left")
		c := dialWS(t, s, "c", nil)
		c.join(pin)
		// Whoever makes the offer now, the room works: b and c can talk.
		c.send(`{"type":"offer","data":{"type":"offer","sdp":"c"}}`)
		m := b.recv()
		if m.Type == "peer-joined" { // roomsvc made b the first member
			m = b.recv()
		}
		if m.Type != "offer" || string(m.Data) != `{"type":"offer","sdp":"c"}` {
			t.Fatalf("b got %s, want c's offer", m.raw)
		}
	})
}

// TestBrowserDeadSocketDetected: a client that stops answering pings is dropped, and after
// the grace its peer is told.
func TestBrowserDeadSocketDetected(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{
		Gateway: func(c *gateway.Config) { c.PingInterval, c.PingTimeout = 200*time.Millisecond, time.Second },
		Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 200 * time.Millisecond },
	})
	pin := nextPIN()
	a, _ := joinedPair(t, s, pin) // b, never read again, stays open until the test ends
	// b stops reading, so it answers no pings; a keeps reading and answering.
	a.expect("peer-left")
}

func TestBrowserResume(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 5 * time.Second }})
	pin := nextPIN()
	a, b := dialWS(t, s, "a", nil), dialWS(t, s, "b", nil)
	ia := a.join(pin)
	b.join(pin)
	a.expect("peer-joined")

	_ = a.c.CloseNow()
	a2 := dialWS(t, s, "a2", nil)
	a2.send(`{"type":"resume","token":"` + ia.ResumeToken + `"}`)
	r := a2.joinAnswer("resumed")
	if r.ParticipantID != ia.ParticipantID || r.Role != "first" || len(r.ICEServers) == 0 || r.ResumeToken == "" {
		t.Fatalf("resumed %+v, joined as %+v", r, ia)
	}
	b.expectQuiet() // the other member noticed nothing
	a2.send(`{"type":"offer","data":{"type":"offer","sdp":"after resume"}}`)
	if m := b.expect("offer"); string(m.Data) != `{"type":"offer","sdp":"after resume"}` {
		t.Fatalf("offer after resume: %s", m.raw)
	}
	b.send(`{"type":"answer","data":{"type":"answer","sdp":"a"}}`)
	a2.expect("answer")

	// A token is no key to a live slot held by someone else, nor to a slot that is gone.
	bad := dialWS(t, s, "bad", nil)
	bad.send(`{"type":"resume","token":"not-a-token"}`)
	bad.expectError("", "RESUME_FAILED")
	bad.expectClose(websocket.StatusPolicyViolation)
	a2.send(`{"type":"leave"}`)
	b.expect("peer-left")
	late := dialWS(t, s, "late", nil)
	late.send(`{"type":"resume","token":"` + r.ResumeToken + `"}`)
	late.expectError("", "RESUME_FAILED")
	late.expectClose(websocket.StatusPolicyViolation)
}

func TestBrowserForceRelay(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.ForceRelay = true }})
	c := dialWS(t, s, "c", nil)
	if info := c.join(nextPIN()); info.ICETransportPolicy != "relay" {
		t.Fatalf("iceTransportPolicy %q with FORCE_RELAY", info.ICETransportPolicy)
	}
}

// TestBrowserCredentialsDown: without credsvc the join fails clearly and leaves no member.
func TestBrowserCredentialsDown(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.CredsvcURL = "http://127.0.0.1:1" }})
	pin := nextPIN()
	a := dialWS(t, s, "a", nil)
	a.send(`{"type":"join-pin","pin":"` + pin + `"}`)
	a.expectError("", "SERVICE_UNAVAILABLE")
	a.expectClose(websocket.StatusInternalError)
	for range 2 { // had the member stayed, the room would be full for the second of these
		c := dialWS(t, s, "c", nil)
		c.send(`{"type":"join-pin","pin":"` + pin + `"}`)
		c.expectError("", "SERVICE_UNAVAILABLE")
	}
}

// TestGatewayHTTP: the web client and health are served; internal RPCs are not.
func TestGatewayHTTP(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	get := func(method, path string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, s.GatewayURL+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("GET", "/"); code != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("GET / = %d %q", code, body)
	}
	// /test is the connection test: a redirect to the page's #test, which Go's client follows
	// to the page itself.
	if code, body := get("GET", "/test"); code != 200 || !strings.Contains(body, `id="screen-test"`) {
		t.Fatalf("GET /test = %d %q", code, body)
	}
	if code, _ := get("GET", "/healthz"); code != 200 {
		t.Fatalf("GET /healthz = %d", code)
	}
	for _, p := range []string{"/tuturu.room.v1.RoomService/Join", "/tuturu.cred.v1.CredentialService/Issue", "/tuturu.room.v1.RoomAdminService/ListRooms"} {
		if code, _ := get("POST", p); code != 404 && code != 405 {
			t.Fatalf("POST %s on the gateway = %d, want 404", p, code)
		}
	}
}

// TestBrowserStuckReaderDropped: a client that stops reading while relays pile up for it is
// dropped (its pings go unanswered), so it cannot hold the gateway or the room.
func TestBrowserStuckReaderDropped(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{
		Gateway: func(c *gateway.Config) {
			// a answers pings between 60 KB writes; on a machine loaded by a compile beside the
			// tests a pong took over 3 s, so a gets 8 s (b, which reads nothing, is dropped then).
			c.PingInterval, c.PingTimeout = 300*time.Millisecond, 8*time.Second
			c.Limits.MessagesPerSecond, c.Limits.MessageBurst = 1000, 1000
		},
		Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 200 * time.Millisecond },
	})
	pin := nextPIN()
	a, _ := joinedPair(t, s, pin)
	// b reads nothing from here on; 400 offers of 60 KB are far more than socket buffers hold.
	// a keeps reading (and so answering pings) while it writes.
	left := make(chan struct{})
	go func() {
		for {
			m, err := a.tryRecv(15 * time.Second)
			if err != nil {
				return
			}
			if m.Type == "peer-left" {
				close(left)
				return
			}
		}
	}()
	big := []byte(`{"type":"offer","data":{"type":"offer","sdp":"` + strings.Repeat("x", 60<<10) + `"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 400 {
		if err := a.c.Write(ctx, websocket.MessageText, big); err != nil {
			t.Fatalf("a: write: %v", err)
		}
		select {
		case <-left:
			return
		default:
		}
	}
	select {
	case <-left:
	case <-time.After(20 * time.Second):
		t.Fatal("a: no peer-left after b stopped reading")
	}
}
