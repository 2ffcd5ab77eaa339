package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/webrtc/v4"

	"github.com/tuturu/tuturu/gateway"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/roomsvc"
)

// connectTimeout bounds ICE and DTLS on loopback, which take well under a second here.
const connectTimeout = 20 * time.Second

// TestCallThroughGateway: two pion peers join one PIN through the gateway, negotiate through
// it, connect on loopback and exchange data-channel messages both ways.
func TestCallThroughGateway(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	pin := nextPIN()
	a := newCallPeer(t, s, "a", pin)
	b := newCallPeer(t, s, "b", pin)
	a.waitConnected(connectTimeout)
	b.waitConnected(connectTimeout)
	aChat := a.waitChat(connectTimeout)
	bChat := b.remoteChannel("chat", connectTimeout)
	exchange(t, aChat, bChat, "before", 10)
}

// TestCallSurvivesSignalingDrop: one peer's signaling socket drops mid-call; it resumes with
// its token, the other peer is told nothing, data keeps flowing, and signaling continues (a
// renegotiation that adds a data channel goes through the resumed socket).
func TestCallSurvivesSignalingDrop(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Roomsvc: func(c *roomsvc.Config) { c.ResumeGrace = 10 * time.Second }})
	pin := nextPIN()
	a := newCallPeer(t, s, "a", pin)
	b := newCallPeer(t, s, "b", pin)
	a.waitConnected(connectTimeout)
	b.waitConnected(connectTimeout)
	aChat := a.waitChat(connectTimeout)
	bChat := b.remoteChannel("chat", connectTimeout)
	exchange(t, aChat, bChat, "before", 5)

	a.dropSocket()
	exchange(t, aChat, bChat, "while-dropped", 5) // media and data are peer to peer
	info := a.resume()
	if info.ParticipantID != a.info.ParticipantID || info.Role != "first" {
		t.Fatalf("resumed as %+v, joined as %+v", info, a.info)
	}
	exchange(t, aChat, bChat, "after-resume", 5)

	// Signaling continues: a renegotiates to add a channel, through the new socket.
	extra, err := a.pc.CreateDataChannel("extra", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.offer()
	bExtra := b.remoteChannel("extra", connectTimeout)
	exchange(t, extra, bExtra, "renegotiated", 5)
	select {
	case <-b.peerLeft:
		t.Fatal("the other peer was told peer-left during a resume")
	default:
	}
}

func (p *callPeer) waitChat(d time.Duration) *webrtc.DataChannel {
	p.t.Helper()
	select {
	case dc := <-p.chatReady:
		return dc
	case err := <-p.errs:
		p.t.Fatal(err)
	case <-time.After(d):
		p.t.Fatalf("%s: never offered", p.name)
	}
	return nil
}

// exchange sends n messages each way over a pair of channel ends and checks every one
// arrives, in order.
func exchange(t *testing.T, x, y *webrtc.DataChannel, tag string, n int) {
	t.Helper()
	recv := func(dc *webrtc.DataChannel) chan string {
		ch := make(chan string, n)
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case ch <- string(m.Data):
			default:
			}
		})
		return ch
	}
	// Poll the state: calling OnOpen again on an open channel races inside pion.
	for _, dc := range []*webrtc.DataChannel{x, y} {
		deadline := time.Now().Add(connectTimeout)
		for dc.ReadyState() != webrtc.DataChannelStateOpen {
			if time.Now().After(deadline) {
				t.Fatalf("data channel %s not open (%s)", dc.Label(), dc.ReadyState())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fromX, fromY := recv(y), recv(x)
	for i := range n {
		if err := x.SendText(fmt.Sprintf("%s x %d", tag, i)); err != nil {
			t.Fatalf("send on %s: %v", x.Label(), err)
		}
		if err := y.SendText(fmt.Sprintf("%s y %d", tag, i)); err != nil {
			t.Fatalf("send on %s: %v", y.Label(), err)
		}
	}
	for i := range n {
		for _, c := range []struct {
			ch   chan string
			from string
		}{{fromX, "x"}, {fromY, "y"}} {
			select {
			case got := <-c.ch:
				if want := fmt.Sprintf("%s %s %d", tag, c.from, i); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			case <-time.After(connectTimeout):
				t.Fatalf("%s: message %d from %s did not arrive", tag, i, c.from)
			}
		}
	}
}

// TestCallForceRelay: with FORCE_RELAY the join answer says "relay", and two pion peers that
// follow it connect through turnsvc with the credentials from the answer.
func TestCallForceRelay(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.ForceRelay = true }})
	pin := nextPIN()
	a := newCallPeer(t, s, "a", pin)
	b := newCallPeer(t, s, "b", pin)
	if a.info.ICETransportPolicy != "relay" {
		t.Fatalf("iceTransportPolicy %q", a.info.ICETransportPolicy)
	}
	a.waitConnected(connectTimeout)
	b.waitConnected(connectTimeout)
	exchange(t, a.waitChat(connectTimeout), b.remoteChannel("chat", connectTimeout), "relayed", 10)
	for _, p := range []*callPeer{a, b} {
		pair, err := selectedPair(p.pc)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Fatalf("%s: local candidate %s, want relay", p.name, pair.Local.Typ)
		}
	}

	// After both hang up, their relays are torn down and their credentials refused.
	a.hangUp()
	b.hangUp()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), s.TurnsvcURL,
		connect.WithInterceptors(platform.NewSendToken(s.AdminToken)))
	for {
		res, err := admin.ListAllocations(ctx, connect.NewRequest(&turnv1.ListAllocationsRequest{}))
		if err != nil {
			t.Fatalf("ListAllocations: %v", err)
		}
		if len(res.Msg.GetAllocations()) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("allocations still live after both left: %v", res.Msg.GetAllocations())
		case <-time.After(50 * time.Millisecond):
		}
	}
	creds := credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), s.CredsvcURL,
		connect.WithInterceptors(platform.NewSendToken(s.InternalToken)))
	for _, p := range []*callPeer{a, b} {
		var username string
		for _, srv := range p.info.ICEServers {
			if srv.Username != "" {
				username = srv.Username
			}
		}
		if username == "" {
			t.Fatalf("%s: the join answer carried no TURN credential", p.name)
		}
		res, err := creds.Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: username, Realm: "tuturu"}))
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if v := res.Msg.GetVerdict(); v != credv1.Verdict_VERDICT_REVOKED {
			t.Errorf("%s: credential verdict after leaving = %v, want REVOKED", p.name, v)
		}
	}
}
