package gateway

import (
	"encoding/json"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Fixed server messages, encoded once.
var (
	msgPeerJoined = []byte(`{"type":"peer-joined"}`)
	msgPeerLeft   = []byte(`{"type":"peer-left"}`)
	msgPong       = []byte(`{"type":"pong"}`)
)

// Machine-readable error codes sent in {"type":"error",...,"code":...}.
const (
	codeInvalidPIN         = "INVALID_PIN"
	codeRoomFull           = "ROOM_FULL"
	codeInvalidMessage     = "INVALID_MESSAGE"
	codeAlreadyJoined      = "ALREADY_JOINED"
	codeNotInRoom          = "NOT_IN_ROOM"
	codeRateLimited        = "RATE_LIMITED"
	codeJoinRateLimited    = "JOIN_RATE_LIMITED"
	codeMessageTooBig      = "MESSAGE_TOO_BIG"
	codeResumeFailed       = "RESUME_FAILED"
	codeServiceUnavailable = "SERVICE_UNAVAILABLE"
	codeRoomClosed         = "ROOM_CLOSED"
	codeInternal           = "INTERNAL"
	codeJoinTimeout        = "JOIN_TIMEOUT"
	codeSlowConsumer       = "SLOW_CONSUMER"
	codeServerFull         = "SERVER_FULL"
)

// encodeRelay builds {"type":<t>,"data":<data>} around the raw bytes the other member sent. t
// is one of the fixed relay types, so it needs no escaping.
func encodeRelay(t string, data []byte) []byte {
	b := make([]byte, 0, len(`{"type":"","data":}`)+len(t)+len(data))
	b = append(b, `{"type":"`...)
	b = append(b, t...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// errorMsg is {"type":"error","error":"<human text>","code":"<MACHINE_CODE>","supportCode":"<CODE>"}.
type errorMsg struct {
	Type         string `json:"type"`
	Error        string `json:"error"`
	Code         string `json:"code"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
	SupportCode  string `json:"supportCode,omitempty"`
}

// iceServer is one RTCIceServer as the browser wants it.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// joinData is the data of the join-pin answer and of resumed. The first two fields are what
// the original client reads; the rest are extensions it ignores.
type joinData struct {
	ICEServers         []iceServer `json:"iceServers"`
	ICETransportPolicy string      `json:"iceTransportPolicy"`
	ParticipantID      string      `json:"participantId"`
	Role               string      `json:"role"`
	ResumeToken        string      `json:"resumeToken"`
	ResumeGraceMs      int64       `json:"resumeGraceMs"`
	CredentialTTL      int64       `json:"credentialTtl"`
}

type joinAnswer struct {
	Type string   `json:"type"`
	Data joinData `json:"data"`
}

// encodeJoinAnswer builds the join-pin (or resumed) answer from roomsvc's Joined and credsvc's
// credentials.
func encodeJoinAnswer(typ string, joined *roomv1.Joined, creds *credv1.IssueResponse, forceRelay bool) []byte {
	d := joinData{
		ICEServers:         iceServers(creds),
		ICETransportPolicy: "all",
		ParticipantID:      joined.GetSelf().GetParticipantId(),
		Role:               roleName(joined.GetSelf().GetRole()),
		ResumeToken:        joined.GetResumeToken(),
		ResumeGraceMs:      joined.GetResumeGrace().AsDuration().Milliseconds(),
		CredentialTTL:      int64(creds.GetTtl().AsDuration().Seconds()),
	}
	if forceRelay {
		d.ICETransportPolicy = "relay"
	}
	b, _ := json.Marshal(joinAnswer{Type: typ, Data: d}) // strings and numbers always marshal
	return b
}

// iceServers are credsvc's ICE servers as the browser wants them.
func iceServers(creds *credv1.IssueResponse) []iceServer {
	out := make([]iceServer, 0, len(creds.GetIceServers()))
	for _, s := range creds.GetIceServers() {
		out = append(out, iceServer{URLs: s.GetUrls(), Username: s.GetUsername(), Credential: s.GetCredential()})
	}
	return out
}

func roleName(r roomv1.Role) string {
	switch r {
	case roomv1.Role_ROLE_FIRST:
		return "first"
	case roomv1.Role_ROLE_SECOND:
		return "second"
	case roomv1.Role_ROLE_LOBBY_MEMBER:
		return "member"
	}
	return "unknown"
}
