package turnsvc

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
)

var (
	errFeedEnded     = errors.New("credsvc ended the revocation feed")
	errNoCloseTarget = errors.New("name a username or a participant_id to close")
)

// ListAllocations lists the live allocations, oldest first.
func (s *Service) ListAllocations(_ context.Context, req *connect.Request[turnv1.ListAllocationsRequest]) (*connect.Response[turnv1.ListAllocationsResponse], error) {
	u, p := req.Msg.GetUsername(), req.Msg.GetParticipantId()
	now := time.Now()
	out := &turnv1.ListAllocationsResponse{}
	for _, a := range s.reg.match("", "", true) {
		if (u != "" && a.username != u) || (p != "" && a.participant != p) {
			continue
		}
		out.Allocations = append(out.Allocations, &turnv1.Allocation{
			Username:          a.username,
			ParticipantId:     a.participant,
			Protocol:          a.protocol,
			ClientAddress:     a.client,
			RelayAddress:      a.relay.String(),
			BytesToClient:     a.bytesTo.Load(),
			BytesFromClient:   a.bytesFrom.Load(),
			PacketsToClient:   a.pktsTo.Load(),
			PacketsFromClient: a.pktsFrom.Load(),
			CreatedAt:         timestamppb.New(a.created),
			Age:               durationpb.New(now.Sub(a.created)),
		})
	}
	return connect.NewResponse(out), nil
}

// CloseAllocations ends the allocations of a username or a participant.
func (s *Service) CloseAllocations(_ context.Context, req *connect.Request[turnv1.CloseAllocationsRequest]) (*connect.Response[turnv1.CloseAllocationsResponse], error) {
	u, p := req.Msg.GetUsername(), req.Msg.GetParticipantId()
	if u == "" && p == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errNoCloseTarget)
	}
	n := s.reg.closeMatching(u, p, reasonAdmin)
	s.log.Info("admin closed allocations", "allocations", n, "participant", p)
	return connect.NewResponse(&turnv1.CloseAllocationsResponse{Closed: uint32(n)}), nil
}

// GetStats reports TURN counters since start.
func (s *Service) GetStats(context.Context, *connect.Request[turnv1.GetStatsRequest]) (*connect.Response[turnv1.GetStatsResponse], error) {
	t := s.reg.totals()
	closed, auth := s.st.snapshot()
	return connect.NewResponse(&turnv1.GetStatsResponse{
		Allocations:        uint32(t.live),
		AllocationsCreated: s.st.created.Load(),
		AllocationsClosed:  closed,
		AuthResults:        auth,
		PeersDenied:        s.st.peersDenied.Load(),
		BytesRelayed:       t.bytesTo + t.bytesFrom,
		PacketsRelayed:     t.pktsTo + t.pktsFrom,
		CredsvcConnected:   s.st.connected.Load(),
	}), nil
}
