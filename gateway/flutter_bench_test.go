package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkDecodeFlutter measures the Flutter decoder on a 3 KB offer and a candidate, the
// frames of a call set-up. It scans the frame, then the data object again for its addresses.
func BenchmarkDecodeFlutter(b *testing.B) {
	sdp, _ := json.Marshal(strings.Repeat("a=rtpmap:96 VP8/90000\r\n", 3072/23))
	offer := []byte(`{"type":"offer","data":{"to":"222222","from":"111111","description":{"sdp":` + string(sdp) + `,"type":"offer"},"session_id":"111111-222222","media":"video"}}`)
	cand := []byte(`{"type":"candidate","data":{"to":"222222","from":"111111","candidate":{"sdpMLineIndex":0,"sdpMid":"0","candidate":"candidate:842163049 1 udp 1677729535 198.51.100.10 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0"},"session_id":"111111-222222"}}`)
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"offer", offer}, {"candidate", cand}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeFlutter(c.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
