package roomsvc

import (
	"errors"
	"io"
	"strings"
	"testing"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

func TestPINRoomCall(t *testing.T) {
	ts := startService(t, nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			a, ja := ts.join(t, p.opts, enterPIN("123456"))
			if ja.Self.Role != roomv1.Role_ROLE_FIRST || len(ja.Peers) != 0 || ja.Kind != roomv1.RoomKind_ROOM_KIND_PIN {
				t.Fatalf("first joined = %v", ja)
			}
			if ja.RoomId == "" || ja.RoomId == "123456" || ja.ResumeToken == "" || ja.Self.ParticipantId == "" || ja.Resumed {
				t.Fatalf("first joined has bad ids: %v", ja)
			}
			b, jb := ts.join(t, p.opts, enterPIN("123456"))
			if jb.Self.Role != roomv1.Role_ROLE_SECOND || len(jb.Peers) != 1 || jb.Peers[0].ParticipantId != ja.Self.ParticipantId {
				t.Fatalf("second joined = %v", jb)
			}
			if jb.RoomId != ja.RoomId || jb.Self.ParticipantId == ja.Self.ParticipantId {
				t.Fatalf("room ids %q/%q, participants %q/%q", ja.RoomId, jb.RoomId, ja.Self.ParticipantId, jb.Self.ParticipantId)
			}
			pj := a.next().GetPeerJoined()
			if pj == nil || pj.Member.ParticipantId != jb.Self.ParticipantId {
				t.Fatalf("first member wants peer_joined for the second, got %v", pj)
			}

			// The first makes the offer; candidates follow in order; the second answers.
			a.send(signal("offer", `{"sdp":"o"}`, ""))
			for i := range 10 {
				a.send(signal("ice-candidate", string(rune('a'+i)), ""))
			}
			// b's first event after joined is the offer: it was never told peer_joined.
			ev := b.next().GetSignal()
			if ev == nil || ev.Type != "offer" || string(ev.Data) != `{"sdp":"o"}` || ev.FromParticipantId != ja.Self.ParticipantId {
				t.Fatalf("second member wants the offer, got %v", ev)
			}
			for i := range 10 {
				ev := b.next().GetSignal()
				if ev == nil || ev.Type != "ice-candidate" || string(ev.Data) != string(rune('a'+i)) {
					t.Fatalf("candidate %d: got %v", i, ev)
				}
			}
			b.send(signal("answer", `{"sdp":"a"}`, ""))
			if ev := a.next().GetSignal(); ev == nil || ev.Type != "answer" || ev.FromParticipantId != jb.Self.ParticipantId {
				t.Fatalf("first member wants the answer, got %v", ev)
			}

			// A third member is refused while both are there.
			if code := ts.refused(t, p.opts, enterPIN("123456")); code != connect.CodeResourceExhausted {
				t.Fatalf("third member: code %v, want ResourceExhausted", code)
			}

			// Leave: the other is told once, and the leaver's stream ends cleanly.
			b.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			if err := b.ended(); err != nil {
				t.Fatalf("leaver's stream ended with %v", err)
			}
			pl := a.next().GetPeerLeft()
			if pl == nil || pl.Member.ParticipantId != jb.Self.ParticipantId || pl.Reason != roomv1.LeaveReason_LEAVE_REASON_HUNG_UP {
				t.Fatalf("want peer_left for the second member, got %v", pl)
			}
			// Nothing else was queued before this: a signal now has nobody to go to.
			a.send(signal("offer", "x", ""))
			if se := a.next().GetError(); se == nil || se.Code != codeNoPeer || se.Request != "offer" {
				t.Fatalf("signal with no peer: want NO_PEER error, got %v", se)
			}
			// The slot is free again: a new member becomes SECOND and a is told.
			c, jc := ts.join(t, p.opts, enterPIN("123456"))
			if jc.Self.Role != roomv1.Role_ROLE_SECOND {
				t.Fatalf("new member role %v", jc.Self.Role)
			}
			if pj := a.next().GetPeerJoined(); pj == nil || pj.Member.ParticipantId != jc.Self.ParticipantId {
				t.Fatalf("want peer_joined for the new member, got %v", pj)
			}
			a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			if pl := c.next().GetPeerLeft(); pl == nil {
				t.Fatalf("want peer_left, got %v", pl)
			}
			c.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			if err := c.ended(); err != nil {
				t.Fatalf("leave: %v", err)
			}
		})
	}
}

func TestJoinRefusals(t *testing.T) {
	ts := startService(t, nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			for _, pin := range []string{"", "12345", "1234567", "12345a", "١٢٣٤٥٦", "12 456"} {
				if code := ts.refused(t, p.opts, enterPIN(pin)); code != connect.CodeInvalidArgument {
					t.Errorf("PIN %q: code %v, want InvalidArgument", pin, code)
				}
			}
			if code := ts.refused(t, p.opts, signal("offer", "x", "")); code != connect.CodeFailedPrecondition {
				t.Errorf("signal before join: code %v, want FailedPrecondition", code)
			}
			if code := ts.refused(t, p.opts, leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP)); code != connect.CodeFailedPrecondition {
				t.Errorf("leave before join: code %v, want FailedPrecondition", code)
			}
			if code := ts.refused(t, p.opts, &roomv1.JoinRequest{}); code != connect.CodeInvalidArgument {
				t.Errorf("empty message: code %v, want InvalidArgument", code)
			}

			// A second enter on a joined stream ends it, and the other member is told.
			a, _ := ts.join(t, p.opts, enterPIN("222222"))
			b, jb := ts.join(t, p.opts, enterPIN("222222"))
			a.next() // peer_joined
			b.send(enterPIN("333333"))
			if err := b.ended(); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Fatalf("second enter: %v, want FailedPrecondition", err)
			}
			pl := a.next().GetPeerLeft()
			if pl == nil || pl.Member.ParticipantId != jb.Self.ParticipantId || pl.Reason != roomv1.LeaveReason_LEAVE_REASON_VIOLATION {
				t.Fatalf("want peer_left(violation), got %v", pl)
			}
			a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			if err := a.ended(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestJoinLobbyFull(t *testing.T) {
	ts := startService(t, func(c *Config) { c.LobbyMaxMembers = 2 })
	p := protocols[0]
	a, _ := ts.join(t, p.opts, enterLobby("hall", "a"))
	b, _ := ts.join(t, p.opts, enterLobby("hall", "b"))
	c := ts.dial(t, p.opts)
	if err := c.stream.Send(enterLobby("hall", "c")); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("send: %v", err)
	}
	c.start()
	err := c.ended()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || ce.Message() != "lobby hall is full (maximum 2 members)" {
		t.Fatalf("third join: %v, want ResourceExhausted: lobby hall is full (maximum 2 members)", err)
	}
	if st := ts.svc.meters.stats(); st.Rejections["lobby_full"] != 1 {
		t.Fatalf("rejections %v, want lobby_full 1", st.Rejections)
	}
	for _, m := range []*tmember{a, b} {
		m.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
	}
}

func TestNewRefusesBadLobbyMax(t *testing.T) {
	_, err := New(Config{Addr: "127.0.0.1:0", LobbyMaxMembers: -1})
	if err == nil || !strings.Contains(err.Error(), "LOBBY_MAX_MEMBERS") {
		t.Fatalf("New with LobbyMaxMembers -1: %v, want an error naming LOBBY_MAX_MEMBERS", err)
	}
}
