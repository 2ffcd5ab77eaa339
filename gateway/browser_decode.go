package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Browser message types (docs/protocol.md, "The browser dialect"), plus this project's ping and
// resume extensions.
const (
	typeJoinPin      = "join-pin"
	typeOffer        = "offer"
	typeAnswer       = "answer"
	typeICECandidate = "ice-candidate"
	typeLeave        = "leave"
	typePing         = "ping"
	typeResume       = "resume"
	typeSelfTest     = "self-test"
)

// browserMsg is one decoded client message. Data keeps the raw bytes the client sent, so a
// relay passes them on exactly, without re-encoding.
type browserMsg struct {
	Type string
	// PIN is set for join-pin when the pin is a JSON string; PINText is what to show in an
	// error when it is not a valid PIN (its text, or the raw JSON of a non-string).
	PIN, PINText string
	Data         json.RawMessage
	Token        string
	// Traceparent and Tracestate continue the browser's trace when present.
	Traceparent, Tracestate string
}

// errInvalidMessage marks a message that breaks the dialect: the reply is `Invalid message: ...`.
var errInvalidMessage = errors.New("invalid message")

// invalid wraps errInvalidMessage with the human detail shown to the client.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidMessage, fmt.Sprintf(format, args...))
}

// wireMsg holds the raw bytes of the members a client message may carry; unknown members are
// ignored, as old clients may send more than we read. As in JSON.parse, a repeated key's last
// value wins, and keys are case-sensitive.
type wireMsg struct {
	Type, PIN, Data, Token, Traceparent, Tracestate []byte
}

// decodeBrowser parses one text frame of the browser dialect. It never panics: every defect
// is an error wrapping errInvalidMessage whose text is safe to show to the client.
func decodeBrowser(b []byte) (browserMsg, error) {
	var m browserMsg
	if !utf8.Valid(b) {
		return m, invalid("not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return m, invalid("expected a JSON object")
	}
	var w wireMsg
	err := scanObject(b, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = []byte(jsonKey(key, escaped)) // rare: the common keys have no escapes
		}
		switch string(key) { // no allocation: the compiler compares the bytes in place
		case "type":
			w.Type = val
		case "pin":
			w.PIN = val
		case "data":
			w.Data = val
		case "token":
			w.Token = val
		case "traceparent":
			w.Traceparent = val
		case "tracestate":
			w.Tracestate = val
		}
	})
	switch {
	case errors.Is(err, errJSONDepth):
		return m, invalid("JSON nested too deeply")
	case err != nil:
		return m, invalid("not valid JSON")
	case w.Type == nil:
		return m, invalid("missing type")
	}
	typ, ok := jsonString(w.Type)
	if !ok {
		return m, invalid("type must be a string")
	}
	m.Type = typ
	m.Traceparent = optionalString(w.Traceparent)
	m.Tracestate = optionalString(w.Tracestate)
	switch m.Type {
	case typeJoinPin:
		if s, ok := jsonString(w.PIN); ok {
			m.PIN, m.PINText = s, s
		} else if len(w.PIN) == 0 {
			m.PINText = "undefined"
		} else {
			m.PINText = string(w.PIN)
		}
		m.PINText = truncate(m.PINText, 32)
	case typeOffer, typeAnswer, typeICECandidate:
		// A relayed payload must be an object (RTCSessionDescriptionInit or RTCIceCandidateInit);
		// anything else would only fail in the other browser.
		if len(w.Data) == 0 || w.Data[0] != '{' {
			return m, invalid("%s needs a data object", m.Type)
		}
		m.Data = w.Data
	case typeResume:
		s, ok := jsonString(w.Token)
		if !ok || s == "" {
			return m, invalid("resume needs a token string")
		}
		m.Token = s
	case typeLeave, typePing, typeSelfTest:
	case "":
		return m, invalid("missing type")
	default:
		return m, invalid("unknown type %q", truncate(m.Type, 32))
	}
	return m, nil
}

// jsonString decodes raw, an already validated JSON value, as a string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// optionalString is raw as a string, or "" when it is absent or not a string.
func optionalString(raw []byte) string {
	s, _ := jsonString(raw)
	return s
}

// truncate cuts s to at most n bytes on a rune boundary, so errors that echo client input stay
// small.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
