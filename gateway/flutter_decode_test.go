package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeFlutter(t *testing.T) {
	ok := []struct {
		in   string
		want flutterMsg
	}{
		{`{"type":"new","data":{"id":"123","name":"Pixel","user_agent":"flutter-webrtc/android"}}`,
			flutterMsg{Type: "new", ID: "123", Name: "Pixel", UserAgent: "flutter-webrtc/android"}},
		{`{"type":"new","data":{"id":"a\u00e9"}}`, flutterMsg{Type: "new", ID: "aé"}},
		{`{"type":"new","data":{"id":"x","name":null}}`, flutterMsg{Type: "new", ID: "x"}},
		{`{"type":"offer","data":{"to":"b","from":"a","description":{"sdp":"v=0","type":"offer"},"session_id":"a-b","media":"video"}}`,
			flutterMsg{Type: "offer", To: "b", From: "a", SessionID: "a-b"}},
		{`{"type":"candidate","data":{"to":"b","from":"a","candidate":{"sdpMLineIndex":0,"sdpMid":"0","candidate":"c"},"session_id":"a-b"}}`,
			flutterMsg{Type: "candidate", To: "b", From: "a", SessionID: "a-b"}},
		{`{"type":"bye","data":{"session_id":"a-b","from":"a"}}`, flutterMsg{Type: "bye", From: "a", SessionID: "a-b"}},
		{`{"type":"keepalive","data":{}}`, flutterMsg{Type: "keepalive"}},
		{`{"type":"keepalive"}`, flutterMsg{Type: "keepalive"}},
		{`{"type":"leave","data":"a"}`, flutterMsg{Type: "leave"}},
		{`{"type":"new","data":{"id":"x"},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
			flutterMsg{Type: "new", ID: "x", Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	}
	for _, c := range ok {
		m, err := decodeFlutter([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		data := m.Data
		m.Data = nil
		if !reflect.DeepEqual(m, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.in, m, c.want)
		}
		if len(data) > 0 && !strings.Contains(c.in, string(data)) {
			t.Errorf("%s: data %s is not the client's bytes", c.in, data)
		}
	}
	bad := map[string]string{
		``:                               "expected a JSON object",
		`[]`:                             "expected a JSON object",
		`{"type":`:                       "not valid JSON",
		`{"data":{}}`:                    "missing type",
		`{"type":1}`:                     "type must be a string",
		`{"type":"x","data":{}}`:         `unknown type "x"`,
		`{"type":"new"}`:                 "new needs a data object",
		`{"type":"new","data":[]}`:       "new needs a data object",
		`{"type":"new","data":{}}`:       "new needs data.id, a non-empty string",
		`{"type":"new","data":{"id":7}}`: "new needs data.id, a non-empty string",
		`{"type":"new","data":{"id":"x","user_agent":{}}}`:                                  "new needs data.user_agent to be a string",
		`{"type":"offer","data":{"to":"b","from":"a"}}`:                                     "offer needs data.description to be an object",
		`{"type":"answer","data":{"from":"a","description":{}}}`:                            "answer needs data.to, a non-empty string",
		`{"type":"candidate","data":{"to":"b","description":{},"from":"a"}}`:                "candidate needs data.candidate to be an object",
		`{"type":"offer","data":{"to":"b","description":{}}}`:                               "offer needs data.from, a non-empty string",
		`{"type":"offer","data":{"to":"b","from":"a","description":{},"session_id":3}}`:     "offer needs data.session_id to be a string",
		`{"type":"bye","data":{"from":"a"}}`:                                                "bye needs data.session_id, a non-empty string",
		"{\"type\":\"new\",\"data\":{\"id\":\"\xff\"}}":                                     "not valid UTF-8",
		strings.Repeat("[", 100):                                                            "expected a JSON object",
		`{"type":"new","data":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`: "JSON nested too deeply",
	}
	for in, want := range bad {
		_, err := decodeFlutter([]byte(in))
		if err == nil || !errors.Is(err, errInvalidMessage) || detail(err) != want {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestIsFlutterFirstFrame(t *testing.T) {
	for in, want := range map[string]bool{
		`{"type":"new","data":{"id":"a"}}`: true,
		`{"type":"new"}`:                   true, // Flutter, and then a Flutter-shaped error
		`{"typ\u0065":"new"}`:              true,
		`{"type":"join-pin","pin":"1"}`:    false,
		`{"type":"New"}`:                   false,
		`{"type":"new"`:                    false,
		`nope`:                             false,
	} {
		if got := isFlutterFirstFrame([]byte(in)); got != want {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
}

func TestOtherLeg(t *testing.T) {
	for _, c := range []struct {
		sid, self, other string
		ok               bool
	}{
		{"a-b", "a", "b", true},
		{"a-b", "b", "a", true},
		{"x-y-z", "x", "y-z", true}, // ids may contain dashes
		{"x-y-z", "z", "x-y", true},
		{"a-a", "a", "a", true},
		{"a-b", "c", "", false},
		{"a-", "a", "", false},
		{"ab", "a", "", false},
	} {
		other, ok := otherLeg(c.sid, c.self)
		if other != c.other || ok != c.ok {
			t.Errorf("otherLeg(%q, %q) = %q %v", c.sid, c.self, other, ok)
		}
	}
}

func TestFlutterEncodings(t *testing.T) {
	if got := string(encodeLeave(`a"b`)); got != `{"type":"leave","data":"a\"b"}` {
		t.Errorf("leave: %s", got)
	}
	e := encodeFlutterError(wireError{Request: "offer", Text: "Peer [x] not found", Code: "UNKNOWN_PEER"})
	if string(e) != `{"type":"error","data":{"request":"offer","reason":"Peer [x] not found","code":"UNKNOWN_PEER"}}` {
		t.Errorf("error: %s", e)
	}
	if !json.Valid(encodePeers(nil)) || !bytes.Contains(encodePeers(nil), []byte(`"data":[]`)) {
		t.Errorf("empty peers: %s", encodePeers(nil))
	}
}

// FuzzDecodeFlutter: the decoder never panics, every refusal is an invalid-message error whose
// reply is valid JSON, and every accepted relay round-trips the client's own bytes.
func FuzzDecodeFlutter(f *testing.F) {
	f.Add([]byte(`{"type":"new","data":{"id":"1","name":"n","user_agent":"u"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		isFlutterFirstFrame(b) // must not panic either
		m, err := decodeFlutter(b)
		if err != nil {
			if !errors.Is(err, errInvalidMessage) {
				t.Fatalf("error does not wrap errInvalidMessage: %v", err)
			}
			if !json.Valid(encodeFlutterError(wireError{Request: truncate(m.Type, 32), Text: "Invalid message: " + detail(err), Code: codeInvalidMessage})) {
				t.Fatalf("error reply is not valid JSON for %q", b)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		switch m.Type {
		case flutterNew:
			if m.ID == "" {
				t.Fatal("new accepted without an id")
			}
			if !json.Valid(encodePeers(nil)) || !json.Valid(encodeLeave(m.ID)) {
				t.Fatalf("frames built from id %q are not valid JSON", m.ID)
			}
		case flutterOffer, flutterAnswer, flutterCandidate, flutterBye:
			if m.From == "" || (m.Type != flutterBye && m.To == "") || (m.Type == flutterBye && m.SessionID == "") {
				t.Fatalf("%s accepted without its addresses: %+v", m.Type, m)
			}
			if !bytes.Contains(b, m.Data) {
				t.Fatalf("data %q is not the client's own bytes", m.Data)
			}
			out := encodeRelay(m.Type, m.Data)
			var back struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(out, &back); err != nil || back.Type != m.Type || !bytes.Equal(back.Data, m.Data) {
				t.Fatalf("relay does not round-trip: %q", out)
			}
			if m.Type == flutterBye && !json.Valid(encodeByeData(m.To, m.SessionID, m.From)) {
				t.Fatalf("bye data is not valid JSON for %+v", m)
			}
		case flutterKeepalive, flutterLeave:
		default:
			t.Fatalf("accepted unknown type %q", m.Type)
		}
		for _, s := range []string{m.ID, m.Name, m.UserAgent, m.To, m.From, m.SessionID} {
			if !utf8.ValidString(s) {
				t.Fatalf("field %q is not valid UTF-8", s)
			}
		}
	})
}
