package turnsvc

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/internal/testnet"
)

// TestFastPath: once the client has bound a channel (pion's client does after its first send),
// ChannelData is relayed both ways by the fast path with the same counters, and a closed
// allocation leaves it at once.
func TestFastPath(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	peer := testnet.UDPEchoPeer(t)
	u, p := cred.issue("fast", time.Hour)
	relay, err := turnClient(t, "udp", s, u, p).Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "first", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	allocs := s.reg.match(u, "", false)
	if len(allocs) != 1 {
		t.Fatalf("%d allocations", len(allocs))
	}
	a := allocs[0]
	eventually(t, 3*time.Second, "channel bound", func() bool {
		list := a.chans.Load()
		return list != nil && len(*list) == 1
	})
	if got := s.reg.fastClient(a.clientAP); got != a {
		t.Fatalf("fast path entry = %v, want the allocation", got)
	}
	before := a.pktsTo.Load()
	for i := range 100 {
		if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "fast "+string(rune('a'+i%26)), 3*time.Second); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
	}
	if d := a.pktsTo.Load() - before; d < 100 {
		t.Errorf("%d packets to the client counted on the fast path, want >= 100", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := adminClient(s, s.cfg.AdminToken).CloseAllocations(ctx, connect.NewRequest(&turnv1.CloseAllocationsRequest{
		Target: &turnv1.CloseAllocationsRequest_Username{Username: u}})); err != nil {
		t.Fatal(err)
	}
	if s.reg.fastClient(a.clientAP) != nil {
		t.Error("closed allocation still on the fast path")
	}
	if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "after close", 300*time.Millisecond); err == nil {
		t.Error("relay works after the allocation was closed")
	}
}

func TestIsChannelData(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x40, 0x00, 0x00, 0x00}, true},
		{[]byte{0x7f, 0xff, 0x00, 0x01, 0xaa}, true},
		{[]byte{0x00, 0x01, 0x00, 0x00}, false}, // STUN
		{[]byte{0x80, 0x00, 0x00, 0x00}, false}, // RTP
		{[]byte{0x40, 0x00}, false},             // short
	} {
		if got := isChannelData(c.b); got != c.want {
			t.Errorf("isChannelData(%x) = %v", c.b, got)
		}
	}
}
