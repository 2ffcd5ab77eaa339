package gateway

import "testing"

// BenchmarkDecodeFlutter measures the Flutter decoder on a 3 KB offer and a candidate, the
// frames of a call set-up. It scans the frame, then the data object again for its addresses.
func BenchmarkDecodeFlutter(b *testing.B) {
	benchDecode(b, func(m []byte) error { _, err := decodeFlutter(m); return err },
		`{"type":"offer","data":{"to":"222222","from":"111111","description":{"sdp":`+benchSDP()+`,"type":"offer"},"session_id":"111111-222222","media":"video"}}`,
		`{"type":"candidate","data":{"to":"222222","from":"111111","candidate":{"sdpMLineIndex":0,"sdpMid":"0","candidate":"candidate:842163049 1 udp 1677729535 198.51.100.10 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0"},"session_id":"111111-222222"}}`)
}
