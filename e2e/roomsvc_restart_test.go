package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
)

// TestRoomsvcKilledCallGoesOn: roomsvc runs as a process of its own; two members joined on a
// PIN through the gateway, then roomsvc is killed (SIGKILL) and started again on the same
// address. The gateway re-attaches both members with their resume tokens, the new roomsvc
// rebuilds the room from them, and signaling goes on: the browsers see no close, no error and
// no peer-left, and a signal sent while roomsvc was down (and /readyz said so) arrives after
// it is back.
func TestRoomsvcKilledCallGoesOn(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	addr := testnet.FreeAddr(t)
	env := roomsvcEnv(t, s, addr)
	room := startProc(t, "roomsvc", "", env)

	// A gateway in front of the roomsvc process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{
		Base:       platform.Base{InternalToken: s.InternalToken, Log: platform.NewLogger(testWriter{t, "gateway"}, logLevel())},
		Listener:   ln,
		RoomsvcURL: "http://" + addr,
		CredsvcURL: s.CredsvcURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	gw := &stack{GatewayURL: "http://" + g.Addr()}

	alice, bob := joinedPair(t, gw, nextPIN())
	alice.send(`{"type":"offer","data":{"type":"offer","sdp":"v=0 before"}}`)
	bob.expect("offer")

	room.kill()
	waitFor(t, 10*time.Second, "the gateway to see roomsvc gone", func() bool {
		code, body := httpGet(t, gw.GatewayURL+"/readyz")
		return code == 503 && body == "room service unreachable\n"
	})
	alice.send(`{"type":"ice-candidate","data":{"candidate":"while roomsvc was down"}}`)
	again := startProc(t, "roomsvc", "", env)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("roomsvc before the kill:\n%s\nroomsvc after:\n%s", room.log(), again.log())
		}
	})

	if m := bob.expect("ice-candidate"); !strings.Contains(string(m.Data), "while roomsvc was down") {
		t.Fatalf("bob got %s", m.raw)
	}
	bob.send(`{"type":"answer","data":{"type":"answer","sdp":"v=0 after"}}`)
	if m := alice.expect("answer"); !strings.Contains(string(m.Data), "after") {
		t.Fatalf("alice got %s", m.raw)
	}
	alice.expectQuiet()
	bob.expectQuiet()
}

// roomsvcEnv is the environment of a roomsvc process on addr with s's tokens and credsvc.
func roomsvcEnv(t *testing.T, s *stack, addr string) map[string]string {
	return map[string]string{
		"ROOMSVC_ADDR":   addr,
		"CREDSVC_URL":    s.CredsvcURL,
		"INTERNAL_TOKEN": s.InternalToken,
		"ADMIN_TOKEN":    s.AdminToken,
		"DATA_DIR":       t.TempDir(),
	}
}
