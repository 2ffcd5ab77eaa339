package loadtest

import (
	"encoding/json"
	"fmt"
	"strings"
)

// payloads are the signaling messages of one call, built once: the relayed data and the exact
// frame the other side must receive for it.
type payloads struct {
	offer, answer  relay
	candsA, candsB []relay
	joinA, joinB   func(pin string) []byte
	leave          []byte
}

// relay is a message as sent and as it must arrive at the other member.
type relay struct {
	send, want []byte
}

func newRelay(typ string, data any) relay {
	d, _ := json.Marshal(data) // strings only
	return relay{
		send: []byte(`{"type":"` + typ + `","data":` + string(d) + `}`),
		want: []byte(`{"type":"` + typ + `","data":` + string(d) + `}`),
	}
}

// sdp returns a plausible session description of about size bytes.
func sdp(kind string, size int) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=msid-semantic: WMS\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/90000\r\na=rtcp-fb:%d nack pli\r\n", 96+i%32, kind, 96+i%32)
	}
	return b.String()[:size]
}

func newPayloads() *payloads {
	p := &payloads{
		offer:  newRelay("offer", map[string]string{"type": "offer", "sdp": sdp("VP8", 3072)}),
		answer: newRelay("answer", map[string]string{"type": "answer", "sdp": sdp("VP8", 1536)}),
		joinA:  joinMsg,
		joinB:  joinMsg,
		leave:  []byte(`{"type":"leave"}`),
	}
	for i := range 10 {
		p.candsA = append(p.candsA, newRelay("ice-candidate", candidate("a", i)))
		p.candsB = append(p.candsB, newRelay("ice-candidate", candidate("b", i)))
	}
	return p
}

func candidate(who string, i int) map[string]any {
	return map[string]any{
		"candidate":        fmt.Sprintf("candidate:%d 1 udp 1677729535 198.51.100.%d %d typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag %s network-cost 999", 842163049+i, 10+i, 50000+i, who+"fRg"),
		"sdpMid":           "0",
		"sdpMLineIndex":    0,
		"usernameFragment": who + "fRg",
	}
}

func joinMsg(pin string) []byte { return []byte(`{"type":"join-pin","pin":"` + pin + `"}`) }
