package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
)

// TestRevocationsAtSaturation: 400 members leave in one batch, far faster than one fsync
// each. Every one of them ends up revoked in credsvc, and turnsvc's revocation watch closes
// the relays the departed still held and refuses their credentials.
func TestRevocationsAtSaturation(t *testing.T) {
	t.Parallel()
	const members, relays = 400, 8
	s := startTurnStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rooms := roomv1connect.NewRoomServiceClient(platform.NewH2CClient(), s.RoomsvcURL,
		connect.WithInterceptors(platform.NewSendToken(s.InternalToken)))
	stream := rooms.Sessions(ctx)
	t.Cleanup(func() { _ = stream.CloseRequest() })

	enter := &roomv1.SessionsRequest{}
	for i := range members {
		pin := nextPIN()
		enter.Requests = append(enter.Requests, &roomv1.MemberRequest{SessionId: uint64(i + 1),
			Msg: &roomv1.MemberRequest_Enter{Enter: &roomv1.Enter{Room: &roomv1.Enter_Pin{Pin: pin}}}})
	}
	if err := stream.Send(enter); err != nil {
		t.Fatalf("send enters: %v", err)
	}
	joined := map[uint64]*roomv1.Joined{}
	for len(joined) < members {
		res, err := stream.Receive()
		if err != nil {
			t.Fatalf("receive after %d joined: %v", len(joined), err)
		}
		for _, ev := range res.GetEvents() {
			if e := ev.GetEnded(); e != nil {
				t.Fatalf("session %d refused: %v", ev.GetSessionId(), e)
			}
			if j := ev.GetJoined(); j != nil {
				joined[ev.GetSessionId()] = j
			}
		}
	}

	// Some of them hold a relay with the credentials roomsvc issued them.
	peer := testnet.UDPEchoPeer(t).LocalAddr()
	live := map[string]net.PacketConn{}
	for id := uint64(1); id <= relays; id++ {
		j := joined[id]
		c := j.GetCredentials()
		relay, err := s.client(t, "udp", c.GetUsername(), c.GetPassword()).Allocate()
		if err != nil {
			t.Fatalf("Allocate with issued credentials: %v", err)
		}
		if err := testnet.RelayRoundTrip(relay, peer, "before leaving", 3*time.Second); err != nil {
			t.Fatal(err)
		}
		live[j.GetSelf().GetParticipantId()] = relay
	}

	leave := &roomv1.SessionsRequest{}
	for id := range joined {
		leave.Requests = append(leave.Requests, &roomv1.MemberRequest{SessionId: id,
			Msg: &roomv1.MemberRequest_Leave{Leave: &roomv1.Leave{Reason: roomv1.LeaveReason_LEAVE_REASON_HUNG_UP}}})
	}
	start := time.Now()
	if err := stream.Send(leave); err != nil {
		t.Fatalf("send leaves: %v", err)
	}

	credAdmin := credv1connect.NewCredentialAdminServiceClient(platform.NewH2CClient(), s.CredsvcURL,
		connect.WithInterceptors(platform.NewSendToken(s.AdminToken)))
	var missing int
	took := waitFor(t, 30*time.Second, "every departed participant revoked", func() bool {
		res, err := credAdmin.ListRevocations(ctx, connect.NewRequest(&credv1.ListRevocationsRequest{}))
		if err != nil {
			t.Fatalf("ListRevocations: %v", err)
		}
		revoked := map[string]bool{}
		for _, r := range res.Msg.GetRevocations() {
			revoked[r.GetParticipantId()] = true
		}
		missing = 0
		for _, j := range joined {
			if !revoked[j.GetSelf().GetParticipantId()] {
				missing++
			}
		}
		return missing == 0
	})
	t.Logf("%d departures revoked in credsvc %v after the leaves were sent", members, took)
	waitFor(t, 10*time.Second, "turnsvc closed the departed members' relays", func() bool {
		for participant := range live {
			if len(s.allocations(t, participant)) > 0 {
				return false
			}
		}
		return true
	})
	t.Logf("turnsvc closed the %d relays %v after the leaves were sent", relays, time.Since(start))
	j := joined[1]
	if _, err := s.client(t, "udp", j.GetCredentials().GetUsername(), j.GetCredentials().GetPassword()).Allocate(); err == nil {
		t.Error("a departed member's credentials still allocate")
	}
}
