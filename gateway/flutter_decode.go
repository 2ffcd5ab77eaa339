package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Flutter dialect message types (flutter-webrtc-server; docs/protocol.md, "The Flutter dialect").
const (
	flutterNew       = "new"
	flutterOffer     = "offer"
	flutterAnswer    = "answer"
	flutterCandidate = "candidate"
	flutterBye       = "bye"
	flutterKeepalive = "keepalive"
	flutterLeave     = "leave" // from the client: hang up; from the server: a peer is gone
	flutterPeers     = "peers" // server only
)

// flutterClientTypes are the types a Flutter client may send (metric labels).
var flutterClientTypes = []string{flutterNew, flutterCandidate, flutterBye, flutterKeepalive}

// flutterMsg is one decoded Flutter frame. Data keeps the raw bytes of "data", relayed as is.
type flutterMsg struct {
	Type string
	Data json.RawMessage
	// new
	ID, Name, UserAgent string
	// offer, answer, candidate, bye
	To, From, SessionID string
	// Traceparent and Tracestate continue the client's trace when present.
	Traceparent, Tracestate string
}

// flutterData holds the raw members of "data" that the gateway reads.
type flutterData struct {
	ID, Name, UserAgent, To, From, SessionID, Description, Candidate []byte
}

// decodeFlutter parses one text frame of the Flutter dialect. Like decodeBrowser it never
// panics; every defect is an error wrapping errInvalidMessage, safe to show to the client. The
// original server crashed on a missing or non-string field; here each is a clear error.
func decodeFlutter(b []byte) (flutterMsg, error) {
	var m flutterMsg
	if !utf8.Valid(b) {
		return m, invalid("not valid UTF-8")
	}
	if trimmed := bytes.TrimLeft(b, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return m, invalid("expected a JSON object")
	}
	var typ, data, tp, ts []byte
	err := scanObject(b, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = []byte(jsonKey(key, escaped))
		}
		switch string(key) {
		case "type":
			typ = val
		case "data":
			data = val
		case "traceparent":
			tp = val
		case "tracestate":
			ts = val
		}
	})
	if err := scanError(err); err != nil {
		return m, err
	}
	if typ == nil {
		return m, invalid("missing type")
	}
	t, ok := jsonString(typ)
	if !ok {
		return m, invalid("type must be a string")
	}
	m.Type = t
	m.Traceparent, m.Tracestate = optionalString(tp), optionalString(ts)
	switch t {
	case flutterKeepalive, flutterLeave:
		return m, nil // data, if any, is not read
	case flutterNew, flutterOffer, flutterAnswer, flutterCandidate, flutterBye:
	case "":
		return m, invalid("missing type")
	default:
		return m, invalid("unknown type %q", truncate(t, 32))
	}
	if len(data) == 0 || data[0] != '{' {
		return m, invalid("%s needs a data object", t)
	}
	m.Data = data
	var d flutterData
	// data is valid JSON already; scanning it again only picks out its members.
	_ = scanObject(data, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = []byte(jsonKey(key, escaped))
		}
		switch string(key) {
		case "id":
			d.ID = val
		case "name":
			d.Name = val
		case "user_agent":
			d.UserAgent = val
		case "to":
			d.To = val
		case "from":
			d.From = val
		case "session_id":
			d.SessionID = val
		case "description":
			d.Description = val
		case "candidate":
			d.Candidate = val
		}
	})
	switch t {
	case flutterNew:
		if m.ID, err = requiredString(t, "id", d.ID); err != nil {
			return m, err
		}
		if m.Name, err = optionalField(t, "name", d.Name); err != nil {
			return m, err
		}
		if m.UserAgent, err = optionalField(t, "user_agent", d.UserAgent); err != nil {
			return m, err
		}
	case flutterOffer, flutterAnswer, flutterCandidate:
		if m.To, err = requiredString(t, "to", d.To); err != nil {
			return m, err
		}
		if m.From, err = requiredString(t, "from", d.From); err != nil {
			return m, err
		}
		if m.SessionID, err = optionalField(t, "session_id", d.SessionID); err != nil {
			return m, err
		}
		// The payload must be an object, or it would only fail in the other app.
		field, val := "description", d.Description
		if t == flutterCandidate {
			field, val = "candidate", d.Candidate
		}
		if len(val) == 0 || val[0] != '{' {
			return m, invalid("%s needs data.%s to be an object", t, field)
		}
	case flutterBye:
		if m.SessionID, err = requiredString(t, "session_id", d.SessionID); err != nil {
			return m, err
		}
		if m.From, err = requiredString(t, "from", d.From); err != nil {
			return m, err
		}
	}
	return m, nil
}

// scanError maps a scanner error to the message shown to the client.
func scanError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errJSONDepth):
		return invalid("JSON nested too deeply")
	}
	return invalid("not valid JSON")
}

// requiredString is a member that must be a non-empty JSON string.
func requiredString(typ, field string, raw []byte) (string, error) {
	s, ok := jsonString(raw)
	if !ok || s == "" {
		return "", invalid("%s needs data.%s, a non-empty string", typ, field)
	}
	return s, nil
}

// optionalField is a member that may be absent or null, and otherwise must be a string.
func optionalField(typ, field string, raw []byte) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", invalid("%s needs data.%s to be a string", typ, field)
	}
	return s, nil
}
