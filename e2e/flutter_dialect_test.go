package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
)

// TestFlutterDemoSequence replays what two flutter-webrtc demo apps send: register, peers,
// offer, answer, candidates both ways, keepalive, bye, disconnect. Relays arrive byte for
// byte; a departure is one `leave` with the right id, then the new `peers`.
func TestFlutterDemoSequence(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	a := dialFlutter(t, s, "111111")
	peers := a.expectPeers("111111")
	if peers[0].Name != "Flutter 111111" || peers[0].UserAgent != "flutter-webrtc/test" {
		t.Fatalf("peer info %+v", peers[0])
	}
	b := dialFlutter(t, s, "222222")
	a.expectPeers("111111", "222222")
	b.expectPeers("111111", "222222")

	// Odd spacing and key order prove the bytes are relayed as sent, not re-encoded.
	offer := `{"to":"222222","from":"111111", "description":{"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n","type":"offer"},"session_id":"111111-222222","media":"video"}`
	a.send(`{"type":"offer","data":` + offer + `}`)
	if m := b.expect("offer"); string(m.Data) != offer {
		t.Fatalf("offer relayed as %s, want %s", m.Data, offer)
	}
	answer := `{"to":"111111","from":"222222","description":{"sdp":"v=0\r\n","type":"answer"},"session_id":"111111-222222"}`
	b.send(`{"type":"answer","data":` + answer + `}`)
	if m := a.expect("answer"); string(m.Data) != answer {
		t.Fatalf("answer relayed as %s", m.Data)
	}
	for i, c := range []struct {
		from, to *wsClient
		fromID   string
		toID     string
	}{{a, b, "111111", "222222"}, {b, a, "222222", "111111"}, {a, b, "111111", "222222"}} {
		cand := `{"to":"` + c.toID + `","from":"` + c.fromID + `","candidate":{"sdpMLineIndex":0,"sdpMid":"0","candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000` + string(rune('0'+i)) + ` typ host"},"session_id":"111111-222222"}`
		c.from.send(`{"type":"candidate","data":` + cand + `}`)
		if m := c.to.expect("candidate"); string(m.Data) != cand {
			t.Fatalf("candidate %d relayed as %s", i, m.Data)
		}
	}
	a.expectFlutterQuiet() // keepalive echoed

	// bye goes to the other leg through roomsvc and back to the sender, as in the original.
	a.send(`{"type":"bye","data":{"session_id":"111111-222222","from":"111111"}}`)
	checkBye := func(w *wsClient, to string) {
		t.Helper()
		m := w.expect("bye")
		var d struct{ To, SessionID, From string }
		var raw map[string]string
		if err := json.Unmarshal(m.Data, &raw); err != nil {
			t.Fatalf("bye data %s: %v", m.Data, err)
		}
		d.To, d.SessionID, d.From = raw["to"], raw["session_id"], raw["from"]
		if d.To != to || d.SessionID != "111111-222222" || d.From != "111111" {
			t.Fatalf("%s got bye %s", w.name, m.Data)
		}
	}
	checkBye(b, "222222")
	checkBye(a, "111111")
	// The other leg may be on either side of the dash.
	b.send(`{"type":"bye","data":{"session_id":"111111-222222","from":"222222"}}`)
	m := a.expect("bye")
	if !strings.Contains(string(m.Data), `"to":"111111"`) {
		t.Fatalf("bye from the second leg: %s", m.Data)
	}
	b.expect("bye")

	// A third peer that closes cleanly, and the second that just drops: each departure is one
	// leave with the id of the peer who left, then the new list.
	c := dialFlutter(t, s, "333333")
	for _, w := range []*wsClient{a, b} {
		w.expectPeers("111111", "222222", "333333")
	}
	c.expectPeers("111111", "222222", "333333")
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	for _, w := range []*wsClient{a, b} {
		if m := w.expect("leave"); string(m.Data) != `"333333"` {
			t.Fatalf("%s: leave %s, want the id of the peer who left", w.name, m.Data)
		}
		w.expectPeers("111111", "222222")
	}
	_ = b.c.CloseNow() // TCP gone without a close frame: a Flutter app cannot resume
	if m := a.expect("leave"); string(m.Data) != `"222222"` {
		t.Fatalf("leave %s, want 222222", m.Data)
	}
	a.expectPeers("111111")
	a.expectFlutterQuiet() // once: no second leave, no ghost
}

// TestFlutterIDTaken: a second client asking for an id in use is refused and closed; the
// first keeps its id and is not disturbed (the original let the newcomer take it over).
func TestFlutterIDTaken(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	a := dialFlutter(t, s, "alice")
	a.expectPeers("alice")
	thief := dialFlutter(t, s, "alice")
	thief.expectFlutterError("new", "ID_TAKEN")
	thief.expectClose(websocket.StatusPolicyViolation)
	a.expectFlutterQuiet()
	b := dialFlutter(t, s, "bob")
	b.expectPeers("alice", "bob")
	a.expectPeers("alice", "bob")
	b.send(`{"type":"offer","data":{"to":"alice","from":"bob","description":{"type":"offer","sdp":"v=0"},"session_id":"bob-alice"}}`)
	a.expect("offer") // alice's socket still owns the id
}

// TestFlutterCloseAnswered: a client's close frame is answered (the close handshake
// completes), and a registered client's close is a departure the others see at once.
func TestFlutterCloseAnswered(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	idle := dialWS(t, s, "unregistered", nil)
	idle.send(`{"type":"new","data":{"id":"x1"}}`)
	idle.expectPeers("x1")
	if err := idle.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("the server did not answer the close frame: %v", err)
	}
	// The departure reaches roomsvc asynchronously: x2 may still see x1 at first, but then it
	// must see x1 leave, once.
	a := dialFlutter(t, s, "x2")
	m := a.expect("peers")
	if !strings.Contains(string(m.Data), `"x1"`) {
		return // x1 was already gone
	}
	if m := a.expect("leave"); string(m.Data) != `"x1"` {
		t.Fatalf("leave %s, want x1", m.Data)
	}
	a.expectPeers("x2")
}

// TestFlutterForgedFromAndUnknownTo: `from` must be the sender's own id, and a signal to an
// id nobody holds is answered with an error; neither ends the connection.
func TestFlutterForgedFromAndUnknownTo(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	a := dialFlutter(t, s, "a")
	a.expectPeers("a")
	b := dialFlutter(t, s, "b")
	a.expectPeers("a", "b")
	b.expectPeers("a", "b")
	for _, typ := range []string{"offer", "answer"} {
		a.send(`{"type":"` + typ + `","data":{"to":"b","from":"b","description":{"type":"offer","sdp":"v=0"}}}`)
		a.expectFlutterError(typ, "FORGED_FROM")
	}
	a.send(`{"type":"candidate","data":{"to":"b","from":"mallory","candidate":{"candidate":"","sdpMid":"0","sdpMLineIndex":0}}}`)
	a.expectFlutterError("candidate", "FORGED_FROM")
	a.send(`{"type":"bye","data":{"session_id":"a-b","from":"b"}}`)
	a.expectFlutterError("bye", "FORGED_FROM")
	b.expectFlutterQuiet() // b received none of them

	a.send(`{"type":"offer","data":{"to":"nobody","from":"a","description":{"type":"offer","sdp":"v=0"}}}`)
	e := a.expectFlutterError("offer", "UNKNOWN_PEER")
	t.Logf("unknown peer: %s", e.Reason)
	a.send(`{"type":"bye","data":{"session_id":"a-nobody","from":"a"}}`)
	a.expect("bye") // the sender's own leg is echoed at once
	a.expectFlutterError("bye", "UNKNOWN_PEER")
	a.send(`{"type":"bye","data":{"session_id":"b-c","from":"a"}}`)
	a.expectFlutterError("bye", "INVALID_SESSION")
	a.expectFlutterQuiet()
}

// TestFlutterBadInput: each defect gets a clear error in the Flutter shape, never a crash.
// Broken frames close with 1008; requests that are merely out of place leave it open.
func TestFlutterBadInput(t *testing.T) {
	t.Parallel()
	// Every subtest registers from 127.0.0.1: lift the per-address join limit.
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Limits.JoinsPerMinute, c.Limits.JoinBurst = 6000, 100 }})
	closing := []struct {
		name, first, then, request string
	}{
		{"new without data", `{"type":"new"}`, "", "new"},
		{"new with data not an object", `{"type":"new","data":"x"}`, "", "new"},
		{"new without id", `{"type":"new","data":{"name":"n"}}`, "", "new"},
		{"new with a numeric id", `{"type":"new","data":{"id":5}}`, "", "new"},
		{"new with an empty id", `{"type":"new","data":{"id":""}}`, "", "new"},
		{"new with a numeric name", `{"type":"new","data":{"id":"z","name":1}}`, "", "new"},
		{"unknown type", `{"type":"new","data":{"id":"bad1"}}`, `{"type":"hello","data":{}}`, "hello"},
		{"not JSON", `{"type":"new","data":{"id":"bad2"}}`, `{"type":`, ""},
		{"not an object", `{"type":"new","data":{"id":"bad3"}}`, `[1,2]`, ""},
		{"offer without description", `{"type":"new","data":{"id":"bad4"}}`, `{"type":"offer","data":{"to":"x","from":"bad4"}}`, "offer"},
		{"candidate without candidate", `{"type":"new","data":{"id":"bad5"}}`, `{"type":"candidate","data":{"to":"x","from":"bad5","candidate":"c"}}`, "candidate"},
		{"offer without to", `{"type":"new","data":{"id":"bad6"}}`, `{"type":"offer","data":{"from":"bad6","description":{}}}`, "offer"},
		{"bye without session", `{"type":"new","data":{"id":"bad7"}}`, `{"type":"bye","data":{"from":"bad7"}}`, "bye"},
	}
	for _, c := range closing {
		t.Run(c.name, func(t *testing.T) {
			leaveLobbyEmpty(t, s)
			w := dialWS(t, s, c.name, nil)
			w.send(c.first)
			if c.then != "" {
				w.expect("peers")
				w.send(c.then)
			}
			w.expectFlutterError(c.request, "INVALID_MESSAGE")
			w.expectClose(websocket.StatusPolicyViolation)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		leaveLobbyEmpty(t, s)
		w := dialFlutter(t, s, "bin")
		w.expect("peers")
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		if err := w.c.Write(ctx, websocket.MessageBinary, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		w.expectFlutterError("", "INVALID_MESSAGE")
		w.expectClose(websocket.StatusPolicyViolation)
	})
	t.Run("id too long", func(t *testing.T) {
		leaveLobbyEmpty(t, s)
		w := dialWS(t, s, "long", nil)
		w.send(`{"type":"new","data":{"id":"` + strings.Repeat("x", 200) + `"}}`)
		w.expectFlutterError("new", "BAD_PEER_INFO")
		w.expectClose(websocket.StatusPolicyViolation)
	})
	t.Run("second new", func(t *testing.T) {
		leaveLobbyEmpty(t, s)
		w := dialFlutter(t, s, "twice")
		w.expectPeers("twice")
		w.send(`{"type":"new","data":{"id":"again"}}`)
		w.expectFlutterError("new", "ALREADY_JOINED")
		w.expectFlutterQuiet()
	})
	t.Run("signal after leave", func(t *testing.T) {
		leaveLobbyEmpty(t, s)
		w := dialFlutter(t, s, "leaver")
		w.expectPeers("leaver")
		w.send(`{"type":"leave","data":{}}`)
		w.send(`{"type":"offer","data":{"to":"x","from":"leaver","description":{}}}`)
		w.expectFlutterError("offer", "NOT_IN_ROOM")
		w.expectFlutterQuiet()
	})
	t.Run("message too big", func(t *testing.T) {
		leaveLobbyEmpty(t, s)
		w := dialFlutter(t, s, "big")
		w.expectPeers("big")
		w.send(`{"type":"keepalive","data":{"pad":"` + strings.Repeat("x", 70000) + `"}}`)
		w.expectFlutterError("", "MESSAGE_TOO_BIG")
		w.expectClose(websocket.StatusMessageTooBig)
	})
}

// TestFlutterLimitsAndOrigin: the browser dialect's limits and Origin rule hold for Flutter
// clients too, with errors in the Flutter shape; the lobby can be turned off.
func TestFlutterLimitsAndOrigin(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.Limits.MessagesPerSecond = 1
		c.Limits.MessageBurst = 4
		c.Limits.JoinsPerMinute = 1
		c.Limits.JoinBurst = 2
	}})
	w := dialFlutter(t, s, "chatty")
	w.expectPeers("chatty")
	for range 3 {
		w.send(`{"type":"keepalive","data":{}}`)
		w.expect("keepalive")
	}
	w.send(`{"type":"keepalive","data":{}}`)
	w.expectFlutterError("", "RATE_LIMITED")
	w.expectClose(websocket.StatusPolicyViolation)

	// The join limit counts `new` (two so far would be over with the burst of 2: one used).
	dialFlutter(t, s, "second").expectPeers("second")
	third := dialFlutter(t, s, "third")
	if e := third.expectFlutterError("new", "JOIN_RATE_LIMITED"); e.RetryAfterMs <= 0 {
		t.Fatalf("no retryAfterMs in %+v", e)
	}
	third.expectClose(websocket.StatusTryAgainLater)

	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	_, res, err := websocket.Dial(ctx, wsURL(s), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign page opened /ws: %v", err)
	}
}

// TestFlutterLobbyOff: FLUTTER_LOBBY=false refuses `new` with an error and close 1008, while
// the browser dialect keeps working.
func TestFlutterLobbyOff(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Flutter.LobbyOff = true }})
	w := dialFlutter(t, s, "nobody")
	w.expectFlutterError("new", "LOBBY_DISABLED")
	w.expectClose(websocket.StatusPolicyViolation)
	b := dialWS(t, s, "browser", nil)
	b.join(nextPIN())
}
