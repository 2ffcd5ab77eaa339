package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkDecodeBrowser measures the decoder on the messages of a call set-up: a 3 KB offer
// and an ICE candidate.
func BenchmarkDecodeBrowser(b *testing.B) {
	benchDecode(b, func(m []byte) error { _, err := decodeBrowser(m); return err },
		`{"type":"offer","data":{"type":"offer","sdp":`+benchSDP()+`}}`,
		`{"type":"ice-candidate","data":{"candidate":"candidate:842163049 1 udp 1677729535 198.51.100.10 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag afRg network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"afRg"}}`)
}

// benchSDP is a 3 KB SDP as a JSON string, the size of a real offer's.
func benchSDP() string {
	sdp, _ := json.Marshal(strings.Repeat("a=rtpmap:96 VP8/90000\r\n", 3072/23))
	return string(sdp)
}

// benchDecode runs decode on an offer and a candidate frame, each as a sub-benchmark.
func benchDecode(b *testing.B, decode func([]byte) error, offer, candidate string) {
	for _, c := range []struct{ name, msg string }{{"offer", offer}, {"candidate", candidate}} {
		msg := []byte(c.msg)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := decode(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
