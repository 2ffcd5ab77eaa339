package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeBrowser(t *testing.T) {
	sdp := `{"type":"offer", "sdp":"v=0\r\n"}`
	tests := []struct {
		name    string
		in      string
		want    browserMsg
		wantErr string
	}{
		{"join", `{"type":"join-pin","pin":"123456"}`, browserMsg{Type: typeJoinPin, PIN: "123456", PINText: "123456"}, ""},
		{"join bad pin is not a decode error", `{"type":"join-pin","pin":"12345"}`, browserMsg{Type: typeJoinPin, PIN: "12345", PINText: "12345"}, ""},
		{"join number pin", `{"type":"join-pin","pin":123456}`, browserMsg{Type: typeJoinPin, PINText: "123456"}, ""},
		{"join no pin", `{"type":"join-pin"}`, browserMsg{Type: typeJoinPin, PINText: "undefined"}, ""},
		{"offer keeps raw data", `{"type":"offer","data":` + sdp + `}`, browserMsg{Type: typeOffer, Data: json.RawMessage(sdp)}, ""},
		{"traceparent", `{"type":"leave","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`, browserMsg{Type: typeLeave, Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, ""},
		{"resume", `{"type":"resume","token":"t.k"}`, browserMsg{Type: typeResume, Token: "t.k"}, ""},
		{"ping", `{"type":"ping"}`, browserMsg{Type: typePing}, ""},
		{"unknown type", `{"type":"hello"}`, browserMsg{}, `unknown type "hello"`},
		{"missing type", `{"pin":"123456"}`, browserMsg{}, "missing type"},
		{"empty type", `{"type":""}`, browserMsg{}, "missing type"},
		{"type not a string", `{"type":7}`, browserMsg{}, "type must be a string"},
		{"keys are case-sensitive", `{"TYPE":"leave"}`, browserMsg{}, "missing type"},
		{"escaped key", `{"\u0074ype":"leave"}`, browserMsg{Type: typeLeave}, ""},
		{"last duplicate wins", `{"type":"hello","type":"ping"}`, browserMsg{Type: typePing}, ""},
		{"trailing garbage", `{"type":"ping"} x`, browserMsg{}, "not valid JSON"},
		{"too deep", `{"type":"offer","data":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`, browserMsg{}, "JSON nested too deeply"},
		{"not an object", `"join-pin"`, browserMsg{}, "expected a JSON object"},
		{"not JSON", `{type:join}`, browserMsg{}, "not valid JSON"},
		{"offer without data", `{"type":"offer"}`, browserMsg{}, "offer needs a data object"},
		{"candidate null", `{"type":"ice-candidate","data":null}`, browserMsg{}, "ice-candidate needs a data object"},
		{"resume without token", `{"type":"resume"}`, browserMsg{}, "resume needs a token string"},
		{"bad utf8", "{\"type\":\"join-pin\",\"pin\":\"\xff\"}", browserMsg{}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeBrowser([]byte(tt.in))
			if tt.wantErr != "" {
				if !errors.Is(err, errInvalidMessage) || detail(err) != tt.wantErr {
					t.Fatalf("error = %v, want invalid message %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Type != tt.want.Type || got.PIN != tt.want.PIN || got.PINText != tt.want.PINText ||
				!bytes.Equal(got.Data, tt.want.Data) || got.Token != tt.want.Token || got.Traceparent != tt.want.Traceparent {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEncodeRelayKeepsBytes(t *testing.T) {
	data := []byte(`{"sdp" : "v=0\r\n",  "type":"answer"}`)
	got := encodeRelay(typeAnswer, data)
	want := `{"type":"answer","data":{"sdp" : "v=0\r\n",  "type":"answer"}}`
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestErrorTextsEchoLittle(t *testing.T) {
	m, err := decodeBrowser([]byte(`{"type":"join-pin","pin":"` + strings.Repeat("9", 5000) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(invalidPINText(m.PINText)) > 100 {
		t.Fatalf("error text echoes %d bytes of client input", len(invalidPINText(m.PINText)))
	}
}

// FuzzDecodeBrowser feeds arbitrary frames to the decoder: it must never panic, accept only
// known types, and whatever it relays must be the client's own bytes and valid JSON.
func FuzzDecodeBrowser(f *testing.F) {
	f.Add([]byte(`{"type":"join-pin","pin":"123456"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The scanner accepts exactly what encoding/json accepts (nesting limit aside).
		if serr := scanObject(b, func([]byte, bool, []byte) {}); !errors.Is(serr, errJSONDepth) {
			trimmed := bytes.TrimLeft(b, " \t\r\n")
			object := len(trimmed) > 0 && trimmed[0] == '{'
			if object && (serr == nil) != json.Valid(b) {
				t.Fatalf("scanner says %v, encoding/json says valid=%v, for %q", serr, json.Valid(b), b)
			}
		}
		m, err := decodeBrowser(b)
		if err != nil {
			if !errors.Is(err, errInvalidMessage) {
				t.Fatalf("error does not wrap errInvalidMessage: %v", err)
			}
			if !json.Valid((&browserDialect{}).errorFrame(wireError{Text: "Invalid message: " + detail(err), Code: codeInvalidMessage})) {
				t.Fatalf("error reply is not valid JSON for %q", b)
			}
			return
		}
		switch m.Type {
		case typeJoinPin:
			if !utf8.ValidString(m.PINText) || len(m.PINText) > 32+len("…") {
				t.Fatalf("PINText %q is not short valid UTF-8", m.PINText)
			}
			if !json.Valid((&browserDialect{}).errorFrame(wireError{Text: invalidPINText(m.PINText), Code: codeInvalidPIN})) {
				t.Fatalf("PIN error reply is not valid JSON for %q", b)
			}
		case typeOffer, typeAnswer, typeICECandidate:
			if !bytes.Contains(b, m.Data) {
				t.Fatalf("data %q is not the client's own bytes", m.Data)
			}
			out := encodeRelay(m.Type, m.Data)
			if !json.Valid(out) {
				t.Fatalf("relay %q is not valid JSON", out)
			}
			var back struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(out, &back); err != nil || back.Type != m.Type || !bytes.Equal(back.Data, m.Data) {
				t.Fatalf("relay does not round-trip: %q", out)
			}
		case typeResume:
			if m.Token == "" {
				t.Fatal("resume accepted without a token")
			}
		case typeLeave, typePing:
		default:
			t.Fatalf("accepted unknown type %q", m.Type)
		}
	})
}
