package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkDecodeBrowser measures the decoder on the messages of a call set-up: a 3 KB offer
// and an ICE candidate.
func BenchmarkDecodeBrowser(b *testing.B) {
	sdp, _ := json.Marshal(strings.Repeat("a=rtpmap:96 VP8/90000\r\n", 3072/23))
	offer := []byte(`{"type":"offer","data":{"type":"offer","sdp":` + string(sdp) + `}}`)
	cand := []byte(`{"type":"ice-candidate","data":{"candidate":"candidate:842163049 1 udp 1677729535 198.51.100.10 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag afRg network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"afRg"}}`)
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"offer", offer}, {"candidate", cand}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeBrowser(c.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
