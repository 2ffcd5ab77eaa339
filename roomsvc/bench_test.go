package roomsvc

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

// The call set-up pattern of the performance target: join, join, peer_joined, offer (3 KB),
// answer, 10 candidates each way, leave, leave.

var (
	benchSDP       = []byte(`{"type":"offer","sdp":"` + strings.Repeat("a", 3000) + `"}`)
	benchCandidate = []byte(`{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0","sdpMLineIndex":0}`)
)

// BenchmarkHubCallSetup measures the room rules alone (no network, no encoding).
func BenchmarkHubCallSetup(b *testing.B) {
	h, _ := newTestHub(&testing.T{}, time.Minute)
	h.queueLimit = 256
	h.gone = nil
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		pin := fmt.Sprintf("%06d", i%1000000)
		i++
		a := h.testEnter(&testing.T{}, pinEnter(pin))
		c := h.testEnter(&testing.T{}, pinEnter(pin))
		a.events()
		c.events()
		a.signal("offer", string(benchSDP), "")
		c.events()
		c.signal("answer", string(benchSDP), "")
		for range 10 {
			a.signal("ice-candidate", string(benchCandidate), "")
			c.signal("ice-candidate", string(benchCandidate), "")
		}
		a.events()
		c.events()
		h.leave(a.m, a.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
		c.events()
		h.leave(c.m, c.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
	}
}

// BenchmarkJoinCallSetup runs whole call set-ups over real Connect streams on loopback. The
// client runs in the same process, so cpu-µs/setup is client + server together: an upper
// bound for roomsvc's share. To measure roomsvc alone, run `tuturu roomsvc` and point the
// benchmark at it with ROOMSVC_BENCH_URL and ROOMSVC_BENCH_TOKEN (the internal token), then
// read the server's CPU time from /proc (see docs/rooms.md).
func BenchmarkJoinCallSetup(b *testing.B) {
	ts := &testService{url: os.Getenv("ROOMSVC_BENCH_URL"), internal: os.Getenv("ROOMSVC_BENCH_TOKEN")}
	if ts.url == "" {
		ts = startService(b, func(c *Config) { c.Log = nil })
	}
	ts.shared = platform.NewH2CClient()
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		pin := fmt.Sprintf("%06d", i%1000000)
		i++
		if err := benchCall(b, ts, pin); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/setup")
}

func benchCall(b *testing.B, ts *testService, pin string) error {
	a, _ := ts.join(b, nil, enterPIN(pin))
	c, _ := ts.join(b, nil, enterPIN(pin))
	defer a.cancel()
	defer c.cancel()
	if a.next().GetPeerJoined() == nil {
		return fmt.Errorf("no peer_joined")
	}
	a.send(&roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: "offer", Data: benchSDP}}})
	if s := c.next().GetSignal(); len(s.GetData()) != len(benchSDP) {
		return fmt.Errorf("offer: %v", s)
	}
	c.send(&roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: "answer", Data: benchSDP}}})
	for range 10 {
		a.send(&roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: "ice-candidate", Data: benchCandidate}}})
		c.send(&roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: "ice-candidate", Data: benchCandidate}}})
	}
	for i := range 11 { // a: the answer and 10 candidates; c: 10 candidates after the offer
		if a.next().GetSignal() == nil || (i < 10 && c.next().GetSignal() == nil) {
			return fmt.Errorf("missing signal")
		}
	}
	a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
	if a.ended() != nil || c.next().GetPeerLeft() == nil {
		return fmt.Errorf("leave")
	}
	c.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
	if err := c.ended(); err != nil {
		return err
	}
	return nil
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
