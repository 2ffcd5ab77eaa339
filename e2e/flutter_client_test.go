package e2e

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	"github.com/tuturu/tuturu/internal/platform"
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

// leaveLobbyEmpty makes the end of t wait until roomsvc holds no member (after the sockets t
// opened are closed by their own cleanups), so the next test that registers in the one
// lobby sees only itself in `peers`. Call it before dialing: cleanups run last-in first-out.
func leaveLobbyEmpty(t *testing.T, s *stack) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin := roomv1connect.NewRoomAdminServiceClient(platform.NewH2CClient(), s.RoomsvcURL,
			connect.WithInterceptors(platform.NewSendToken(s.AdminToken)))
		for {
			res, err := admin.GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{}))
			if err != nil {
				t.Errorf("GetStats: %v", err)
				return
			}
			if res.Msg.GetMembers() == 0 && res.Msg.GetHeldMembers() == 0 {
				return
			}
			select {
			case <-ctx.Done():
				t.Errorf("roomsvc still holds %d members (%d held) after the test's sockets closed",
					res.Msg.GetMembers(), res.Msg.GetHeldMembers())
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
}
