package e2e

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A Flutter-dialect client is a wsClient (real WebSocket) whose first frame is `new`.

type flutterPeerInfo struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	UserAgent string `json:"user_agent"`
}

type flutterError struct {
	Request      string `json:"request"`
	Reason       string `json:"reason"`
	Code         string `json:"code"`
	RetryAfterMs int64  `json:"retryAfterMs"`
}

// dialFlutter opens /ws and registers id, as the demo app's connect() does.
func dialFlutter(t *testing.T, s *stack, id string) *wsClient {
	t.Helper()
	w := dialWS(t, s, id, nil)
	w.send(`{"type":"new","data":{"id":"` + id + `","name":"Flutter ` + id + `","user_agent":"flutter-webrtc/test"}}`)
	return w
}

// expectPeers reads a peers frame and checks its ids, in order.
func (w *wsClient) expectPeers(ids ...string) []flutterPeerInfo {
	w.t.Helper()
	m := w.expect("peers")
	var peers []flutterPeerInfo
	if err := json.Unmarshal(m.Data, &peers); err != nil {
		w.t.Fatalf("%s: peers data %s: %v", w.name, m.Data, err)
	}
	got := make([]string, 0, len(peers))
	for _, p := range peers {
		got = append(got, p.ID)
	}
	if !reflect.DeepEqual(got, ids) {
		w.t.Fatalf("%s: peers %v, want %v", w.name, got, ids)
	}
	return peers
}

// expectFlutterError reads {"type":"error","data":{request,reason,code}} and checks request
// and code.
func (w *wsClient) expectFlutterError(request, code string) flutterError {
	w.t.Helper()
	m := w.expect("error")
	var e flutterError
	if err := json.Unmarshal(m.Data, &e); err != nil {
		w.t.Fatalf("%s: error data %s: %v", w.name, m.raw, err)
	}
	if e.Request != request || e.Code != code || e.Reason == "" {
		w.t.Fatalf("%s: got error %s, want request %q code %q with a reason", w.name, m.raw, request, code)
	}
	return e
}

// expectFlutterQuiet proves nothing else was queued: a keepalive's echo is the next frame.
func (w *wsClient) expectFlutterQuiet() {
	w.t.Helper()
	w.send(`{"type":"keepalive","data":{}}`)
	if m := w.expect("keepalive"); string(m.Data) != "{}" {
		w.t.Fatalf("%s: keepalive echo %s", w.name, m.raw)
	}
}
