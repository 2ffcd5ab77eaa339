package gateway

import (
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Machine codes that only the Flutter dialect sends (the shared ones are in browser_encode.go).
const (
	codeIDTaken        = "ID_TAKEN"
	codeBadPeerInfo    = "BAD_PEER_INFO"
	codeForgedFrom     = "FORGED_FROM"
	codeInvalidSession = "INVALID_SESSION"
	codeLobbyDisabled  = "LOBBY_DISABLED"
	codeLobbyFull      = "LOBBY_FULL"
)

var msgKeepalive = []byte(`{"type":"keepalive","data":{}}`)

// flutterErrorData is the data of {"type":"error","data":{"request":...,"reason":...}}, as
// flutter-webrtc-server sends it; code, retryAfterMs and supportCode are extensions old apps
// ignore.
type flutterErrorData struct {
	Request      string `json:"request"`
	Reason       string `json:"reason"`
	Code         string `json:"code,omitempty"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
	SupportCode  string `json:"supportCode,omitempty"`
}

type flutterFrame[T any] struct {
	Type string `json:"type"`
	Data T      `json:"data"`
}

func encodeFlutterError(e wireError) []byte {
	return mustJSON(flutterFrame[flutterErrorData]{Type: "error", Data: flutterErrorData{
		Request: e.Request, Reason: e.Text, Code: e.Code, RetryAfterMs: e.RetryAfterMs, SupportCode: e.SupportCode,
	}})
}

// flutterPeer is one entry of the peers list.
type flutterPeer struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	UserAgent string `json:"user_agent"`
}

// encodePeers builds {"type":"peers","data":[{id,name,user_agent},...]} from a lobby's list.
func encodePeers(members []*roomv1.Member) []byte {
	list := make([]flutterPeer, 0, len(members))
	for _, m := range members {
		list = append(list, flutterPeer{ID: m.GetPeerId(), Name: m.GetName(), UserAgent: m.GetUserAgent()})
	}
	return mustJSON(flutterFrame[[]flutterPeer]{Type: flutterPeers, Data: list})
}

// encodeLeave builds {"type":"leave","data":"<id>"}: flutter-webrtc demo apps read the data
// as the id of the peer who left and close their sessions with it.
func encodeLeave(peerID string) []byte {
	return mustJSON(flutterFrame[string]{Type: flutterLeave, Data: peerID})
}

// byeData is the data of a bye as each leg receives it: like flutter-webrtc-server, "to" is
// the receiving leg; "from" says who hung up.
type byeData struct {
	To        string `json:"to"`
	SessionID string `json:"session_id"`
	From      string `json:"from"`
}

func encodeByeData(to, sessionID, from string) []byte {
	return mustJSON(byeData{To: to, SessionID: sessionID, From: from})
}
