package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsTimeout bounds every wait of a test client.
const wsTimeout = 5 * time.Second

// wsClient is a real WebSocket client of the gateway's /ws, as a browser would use it.
type wsClient struct {
	t    *testing.T
	name string
	c    *websocket.Conn
}

// serverMsg is any server message of the browser dialect.
type serverMsg struct {
	Type         string          `json:"type"`
	Data         json.RawMessage `json:"data"`
	Error        string          `json:"error"`
	Code         string          `json:"code"`
	RetryAfterMs int64           `json:"retryAfterMs"`
	SupportCode  string          `json:"supportCode"`
	raw          []byte
}

// joinInfo is the data of a join-pin or resumed answer.
type joinInfo struct {
	ICEServers []struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username"`
		Credential string   `json:"credential"`
	} `json:"iceServers"`
	ICETransportPolicy string `json:"iceTransportPolicy"`
	ParticipantID      string `json:"participantId"`
	Role               string `json:"role"`
	ResumeToken        string `json:"resumeToken"`
	ResumeGraceMs      int64  `json:"resumeGraceMs"`
	CredentialTTL      int64  `json:"credentialTtl"`
}

func wsURL(s *stack) string { return "ws" + strings.TrimPrefix(s.GatewayURL, "http") + "/ws" }

// dialWS opens /ws; header may carry an Origin.
func dialWS(t *testing.T, s *stack, name string, header http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	c, res, err := websocket.Dial(ctx, wsURL(s), &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("%s: dial /ws: %v (HTTP %d)", name, err, status)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, name: name, c: c}
}

func (w *wsClient) send(msg string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		w.t.Fatalf("%s: send %s: %v", w.name, msg, err)
	}
}

// recv reads the next message, failing the test on a timeout or a closed socket.
func (w *wsClient) recv() serverMsg {
	w.t.Helper()
	m, err := w.tryRecv(wsTimeout)
	if err != nil {
		w.t.Fatalf("%s: receive: %v", w.name, err)
	}
	return m
}

func (w *wsClient) tryRecv(d time.Duration) (serverMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return serverMsg{}, err
	}
	if typ != websocket.MessageText {
		return serverMsg{}, errors.New("binary frame from the server")
	}
	var m serverMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return serverMsg{}, err
	}
	m.raw = b
	return m, nil
}

// expect reads the next message and checks its type.
func (w *wsClient) expect(typ string) serverMsg {
	w.t.Helper()
	m := w.recv()
	if m.Type != typ {
		w.t.Fatalf("%s: got %s, want type %q", w.name, m.raw, typ)
	}
	return m
}

// expectError reads an error message with this text and code.
func (w *wsClient) expectError(text, code string) serverMsg {
	w.t.Helper()
	m := w.expect("error")
	if (text != "" && m.Error != text) || m.Code != code {
		w.t.Fatalf("%s: got error %q code %q, want %q code %q", w.name, m.Error, m.Code, text, code)
	}
	return m
}

// expectClose reads until the server closes, and checks the close code.
func (w *wsClient) expectClose(code websocket.StatusCode) {
	w.t.Helper()
	_, err := w.tryRecv(wsTimeout)
	if err == nil {
		w.t.Fatalf("%s: got a message, want close %d", w.name, code)
	}
	if got := websocket.CloseStatus(err); got != code {
		w.t.Fatalf("%s: closed with %d (%v), want %d", w.name, got, err, code)
	}
}

// expectQuiet proves nothing else was queued: a ping's pong must be the very next message.
func (w *wsClient) expectQuiet() {
	w.t.Helper()
	w.send(`{"type":"ping"}`)
	w.expect("pong")
}

// join sends join-pin and returns the answer's data.
func (w *wsClient) join(pin string) joinInfo {
	w.t.Helper()
	w.send(`{"type":"join-pin","pin":"` + pin + `"}`)
	return w.joinAnswer("join-pin")
}

func (w *wsClient) joinAnswer(typ string) joinInfo {
	w.t.Helper()
	m := w.expect(typ)
	var info joinInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		w.t.Fatalf("%s: %s data: %v", w.name, typ, err)
	}
	return info
}

// pinCounter hands each test its own PIN, so tests never share a room by accident.
var pinCounter atomic.Int64

func init() { pinCounter.Store(time.Now().UnixNano() % 800000) }

// joinedPair opens two sockets, "a" and "b", that join pin in that order; a has been told
// peer-joined.
func joinedPair(t *testing.T, s *stack, pin string) (a, b *wsClient) {
	t.Helper()
	a = dialWS(t, s, "a", nil)
	a.join(pin)
	b = dialWS(t, s, "b", nil)
	b.join(pin)
	a.expect("peer-joined")
	return a, b
}

func nextPIN() string { return fmt.Sprintf("%06d", 100000+pinCounter.Add(1)%800000) }
