package roomsvc

import (
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

func TestResumeWithinGrace(t *testing.T) {
	ts := startService(t, nil)
	for i, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			pin := fmt.Sprintf("44444%d", i)
			a, ja := ts.join(t, p.opts, enterPIN(pin))
			b, jb := ts.join(t, p.opts, enterPIN(pin))
			a.next() // peer_joined

			// b's gateway dies: its connection is cut, no leave.
			b.drop()
			if err := b.ended(); err == nil {
				t.Fatal("cut stream ended cleanly")
			}
			waitFor(t, "b held", func() bool { return ts.svc.meters.held.Load() == 1 })
			// a keeps signalling; b's events are queued.
			a.send(signal("offer", "o", ""))
			a.send(signal("ice-candidate", "c1", ""))

			// b comes back through another stream (any gateway) with its token.
			b2, jr := ts.join(t, p.opts, resume(jb.ResumeToken))
			if !jr.Resumed || jr.Self.ParticipantId != jb.Self.ParticipantId || jr.RoomId != jb.RoomId || jr.Self.Role != roomv1.Role_ROLE_SECOND {
				t.Fatalf("resumed joined = %v", jr)
			}
			if jr.ResumeToken == "" || len(jr.Peers) != 1 || jr.Peers[0].ParticipantId != ja.Self.ParticipantId {
				t.Fatalf("resumed joined = %v", jr)
			}
			if s := b2.next().GetSignal(); s.GetType() != "offer" {
				t.Fatalf("want queued offer, got %v", s)
			}
			if s := b2.next().GetSignal(); string(s.GetData()) != "c1" {
				t.Fatalf("want queued candidate, got %v", s)
			}
			// a noticed nothing: its next event is b's answer, not a peer_left/joined.
			b2.send(signal("answer", "a", ""))
			if s := a.next().GetSignal(); s.GetType() != "answer" || s.FromParticipantId != jb.Self.ParticipantId {
				t.Fatalf("a wants the answer first, got %v", s)
			}

			// Resuming once more while b2 is attached ends b2 ("resumed elsewhere").
			b3, _ := ts.join(t, p.opts, resume(jr.ResumeToken))
			if err := b2.ended(); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Fatalf("old stream: %v, want FailedPrecondition", err)
			}
			b3.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			if pl := a.next().GetPeerLeft(); pl == nil || pl.Reason != roomv1.LeaveReason_LEAVE_REASON_HUNG_UP {
				t.Fatalf("want peer_left, got %v", pl)
			}
			// Gone for good: the token no longer works.
			if code := ts.refused(t, p.opts, resume(jr.ResumeToken)); code != connect.CodeNotFound {
				t.Fatalf("resume after leave: %v", code)
			}
			a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			if err := a.ended(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGraceExpiry(t *testing.T) {
	ts := startService(t, func(c *Config) { c.ResumeGrace = 100 * time.Millisecond })
	for i, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			pin := fmt.Sprintf("55555%d", i)
			a, _ := ts.join(t, p.opts, enterPIN(pin))
			b, jb := ts.join(t, p.opts, enterPIN(pin))
			a.next()
			b.hangUp() // the gateway ends the stream without a leave
			pl := a.next().GetPeerLeft()
			if pl == nil || pl.Reason != roomv1.LeaveReason_LEAVE_REASON_CONNECTION_LOST || pl.Member.ParticipantId != jb.Self.ParticipantId {
				t.Fatalf("want peer_left(connection lost), got %v", pl)
			}
			// Exactly once: the next event a sees is the answer to its own probe.
			a.send(signal("offer", "x", ""))
			if se := a.next().GetError(); se.GetCode() != codeNoPeer {
				t.Fatalf("want NO_PEER, got %v", se)
			}
			if code := ts.refused(t, p.opts, resume(jb.ResumeToken)); code != connect.CodeNotFound {
				t.Fatalf("resume after grace: %v", code)
			}
			// The revocation reached credsvc.
			select {
			case id := <-ts.revoked.ch:
				if id != jb.Self.ParticipantId {
					t.Fatalf("revoked %q, want %q", id, jb.Self.ParticipantId)
				}
			case <-time.After(wait):
				t.Fatal("credsvc was not told")
			}
			a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			a.ended()
			<-ts.revoked.ch
		})
	}
}

func TestBadResumeTokens(t *testing.T) {
	ts := startService(t, nil)
	other := startService(t, nil)
	_, jo := other.join(t, nil, enterPIN("666666"))
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			for name, tok := range map[string]string{
				"empty":     "",
				"garbage":   "not a token",
				"foreign":   jo.ResumeToken, // signed by another process
				"truncated": jo.ResumeToken[:20],
			} {
				if code := ts.refused(t, p.opts, resume(tok)); code != connect.CodeNotFound {
					t.Errorf("%s: %v, want NotFound", name, code)
				}
			}
			expired := ts.svc.hub.keys.signToken(tokenClaims{participantID: "p", roomID: "r", expiry: time.Now().Add(-time.Minute)})
			if code := ts.refused(t, p.opts, resume(expired)); code != connect.CodeNotFound {
				t.Errorf("expired: %v, want NotFound", code)
			}
		})
	}
}
