package roomsvc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

func TestAdmin(t *testing.T) {
	ts := startService(t, nil)
	ctx := context.Background()
	for i, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			pin := fmt.Sprintf("77777%d", i)
			admin := ts.adminClient(p.opts, ts.admin)

			// No token, the internal token, or a wrong one: refused.
			if _, err := ts.adminClient(p.opts, "").ListRooms(ctx, connect.NewRequest(&roomv1.ListRoomsRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("no token: %v", err)
			}
			if _, err := ts.adminClient(p.opts, ts.internal).GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("internal token on admin: %v", err)
			}
			// And the room service refuses the admin token.
			if code := (&testService{url: ts.url, internal: ts.admin}).refused(t, p.opts, enterPIN(pin)); code != connect.CodePermissionDenied {
				t.Fatalf("admin token on Join: %v", code)
			}

			a, ja := ts.join(t, p.opts, enterPIN(pin))
			b, _ := ts.join(t, p.opts, enterPIN(pin))
			lobby, _ := ts.join(t, p.opts, enterLobby(fmt.Sprintf("hall%d", i), "x"))
			a.next()
			lobby.next()

			list, err := admin.ListRooms(ctx, connect.NewRequest(&roomv1.ListRoomsRequest{Kind: roomv1.RoomKind_ROOM_KIND_PIN}))
			if err != nil {
				t.Fatal(err)
			}
			var found *roomv1.RoomSummary
			for _, r := range list.Msg.Rooms {
				if r.RoomId == ja.RoomId {
					found = r
				}
				if r.Kind != roomv1.RoomKind_ROOM_KIND_PIN || strings.Contains(r.String(), pin) {
					t.Fatalf("listed %v", r)
				}
			}
			if found == nil || found.Hint != "****"+pin[4:] || found.MemberCount != 2 {
				t.Fatalf("room %s not listed right: %v", ja.RoomId, list.Msg.Rooms)
			}

			byPIN, err := admin.GetRoom(ctx, connect.NewRequest(&roomv1.GetRoomRequest{Room: &roomv1.GetRoomRequest_Pin{Pin: pin}}))
			if err != nil || byPIN.Msg.Room.RoomId != ja.RoomId || len(byPIN.Msg.Members) != 2 {
				t.Fatalf("GetRoom by PIN: %v %v", byPIN, err)
			}
			byID, err := admin.GetRoom(ctx, connect.NewRequest(&roomv1.GetRoomRequest{Room: &roomv1.GetRoomRequest_RoomId{RoomId: ja.RoomId}}))
			if err != nil || byID.Msg.Members[0].ParticipantId != ja.Self.ParticipantId {
				t.Fatalf("GetRoom by id: %v %v", byID, err)
			}
			if _, err := admin.GetRoom(ctx, connect.NewRequest(&roomv1.GetRoomRequest{Room: &roomv1.GetRoomRequest_Pin{Pin: "000000"}})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("absent room: %v", err)
			}
			if _, err := admin.GetRoom(ctx, connect.NewRequest(&roomv1.GetRoomRequest{Room: &roomv1.GetRoomRequest_Pin{Pin: "12"}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("bad PIN: %v", err)
			}
			if _, err := admin.GetRoom(ctx, connect.NewRequest(&roomv1.GetRoomRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("no room named: %v", err)
			}

			// b drops and is held; CloseRoom still counts it, and it cannot come back.
			b.drop()
			b.ended()
			waitFor(t, "b held", func() bool {
				r, err := admin.GetRoom(ctx, connect.NewRequest(&roomv1.GetRoomRequest{Room: &roomv1.GetRoomRequest_RoomId{RoomId: ja.RoomId}}))
				return err == nil && r.Msg.Members[1].State == roomv1.MemberState_MEMBER_STATE_HELD
			})
			closed, err := admin.CloseRoom(ctx, connect.NewRequest(&roomv1.CloseRoomRequest{Room: &roomv1.CloseRoomRequest_Pin{Pin: pin}, Reason: "maintenance"}))
			if err != nil || closed.Msg.MembersDisconnected != 2 {
				t.Fatalf("CloseRoom: %v %v", closed, err)
			}
			if rc := a.next().GetRoomClosed(); rc.GetReason() != "maintenance" {
				t.Fatalf("want room_closed, got %v", rc)
			}
			if err := a.ended(); err != nil {
				t.Fatalf("closed member's stream ended with %v", err)
			}
			if _, err := admin.CloseRoom(ctx, connect.NewRequest(&roomv1.CloseRoomRequest{Room: &roomv1.CloseRoomRequest_RoomId{RoomId: ja.RoomId}})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("close twice: %v", err)
			}
			// The PIN is free again.
			c, jc := ts.join(t, p.opts, enterPIN(pin))
			if jc.Self.Role != roomv1.Role_ROLE_FIRST {
				t.Fatalf("after close: %v", jc)
			}
			c.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			c.ended()

			stats, err := admin.GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if s := stats.Msg; s.Joins < 4 || s.Departures["LEAVE_REASON_ROOM_CLOSED"] < 2 || s.Rooms < 1 || s.Members < 1 {
				t.Fatalf("stats = %v", s)
			}
			lobby.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			lobby.ended()
		})
	}
}

func TestLobby(t *testing.T) {
	ts := startService(t, nil)
	for i, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			name := fmt.Sprintf("lobby%d", i)
			a, ja := ts.join(t, p.opts, enterLobby(name, "alice"))
			if ja.Kind != roomv1.RoomKind_ROOM_KIND_LOBBY || ja.Self.Role != roomv1.Role_ROLE_LOBBY_MEMBER || ja.Self.PeerId != "alice" {
				t.Fatalf("joined = %v", ja)
			}
			if mc := a.next().GetMembersChanged(); len(mc.GetMembers()) != 1 {
				t.Fatalf("members_changed = %v", mc)
			}
			b, _ := ts.join(t, p.opts, enterLobby(name, "bob"))
			for _, m := range []*tmember{a, b} {
				if mc := m.next().GetMembersChanged(); len(mc.GetMembers()) != 2 {
					t.Fatalf("members_changed = %v", mc)
				}
			}
			if code := ts.refused(t, p.opts, enterLobby(name, "bob")); code != connect.CodeAlreadyExists {
				t.Fatalf("taken peer id: %v", code)
			}
			if code := ts.refused(t, p.opts, enterLobby(name, "")); code != connect.CodeInvalidArgument {
				t.Fatalf("empty peer id: %v", code)
			}
			if code := ts.refused(t, p.opts, enterLobby("", "carol")); code != connect.CodeInvalidArgument {
				t.Fatalf("empty lobby: %v", code)
			}
			a.send(signal("offer", "o", "bob"))
			if s := b.next().GetSignal(); s.GetFromPeerId() != "alice" || s.FromParticipantId != ja.Self.ParticipantId || s.Type != "offer" {
				t.Fatalf("bob got %v", s)
			}
			a.send(signal("offer", "o", "nobody"))
			if se := a.next().GetError(); se.GetCode() != codeUnknownPeer || se.Request != "offer" {
				t.Fatalf("unknown peer: %v", se)
			}
			b.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			b.ended()
			if pl := a.next().GetPeerLeft(); pl.GetMember().GetPeerId() != "bob" {
				t.Fatalf("want peer_left bob, got %v", pl)
			}
			if mc := a.next().GetMembersChanged(); len(mc.GetMembers()) != 1 {
				t.Fatalf("members_changed = %v", mc)
			}
			a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
			a.ended()
		})
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	ts := startService(t, nil)
	var members []*tmember
	for i, p := range protocols {
		m, _ := ts.join(t, p.opts, enterPIN(fmt.Sprintf("88888%d", i)))
		members = append(members, m)
		// A stream that has not sent its first message yet must end too.
		idle := ts.dial(t, p.opts)
		if err := idle.stream.Send(nil); err != nil {
			t.Fatal(err)
		}
		idle.start()
		members = append(members, idle)
	}
	waitFor(t, "streams open", func() bool { return ts.svc.meters.connected.Load() == 2 && ts.svc.streams.Load() == 4 })
	ts.stop(t) // fails the test unless Run returns promptly
	for i, m := range members {
		if err := m.ended(); connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("member %d ended with %v, want Unavailable", i, err)
		}
	}
}
