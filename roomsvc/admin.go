package roomsvc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// defaultCloseReason is shown to members when the operator gave none.
const defaultCloseReason = "closed by an operator"

var errRoomNotFound = errors.New("no such room")

// ListRooms implements RoomAdminService.ListRooms.
func (s *Service) ListRooms(_ context.Context, req *connect.Request[roomv1.ListRoomsRequest]) (*connect.Response[roomv1.ListRoomsResponse], error) {
	return connect.NewResponse(&roomv1.ListRoomsResponse{Rooms: s.hub.listRooms(req.Msg.GetKind())}), nil
}

// GetRoom implements RoomAdminService.GetRoom.
func (s *Service) GetRoom(_ context.Context, req *connect.Request[roomv1.GetRoomRequest]) (*connect.Response[roomv1.GetRoomResponse], error) {
	id, err := s.roomID(req.Msg.GetRoomId(), req.Msg.GetPin(), req.Msg.GetRoom() != nil)
	if err != nil {
		return nil, err
	}
	resp, ok := s.hub.getRoom(id)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errRoomNotFound)
	}
	return connect.NewResponse(resp), nil
}

// CloseRoom implements RoomAdminService.CloseRoom.
func (s *Service) CloseRoom(_ context.Context, req *connect.Request[roomv1.CloseRoomRequest]) (*connect.Response[roomv1.CloseRoomResponse], error) {
	id, err := s.roomID(req.Msg.GetRoomId(), req.Msg.GetPin(), req.Msg.GetRoom() != nil)
	if err != nil {
		return nil, err
	}
	reason := req.Msg.GetReason()
	if reason == "" {
		reason = defaultCloseReason
	}
	n, ok := s.hub.closeRoom(id, reason)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errRoomNotFound)
	}
	s.cfg.Logger().Info("room closed by an operator", "room_id", id, "members_disconnected", n)
	return connect.NewResponse(&roomv1.CloseRoomResponse{MembersDisconnected: uint32(n)}), nil
}

// GetStats implements RoomAdminService.GetStats.
func (s *Service) GetStats(context.Context, *connect.Request[roomv1.GetStatsRequest]) (*connect.Response[roomv1.GetStatsResponse], error) {
	return connect.NewResponse(s.meters.stats()), nil
}

// roomID resolves an admin request's room (by id or PIN).
func (s *Service) roomID(id, pin string, set bool) (string, error) {
	switch {
	case !set:
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("name the room by room_id or pin"))
	case id != "":
		return id, nil
	case pin != "":
		id, rej := s.hub.roomByPIN(pin)
		if rej != nil {
			return "", rej.connectErr()
		}
		return id, nil
	}
	return "", connect.NewError(connect.CodeInvalidArgument, errors.New("room_id or pin must not be empty"))
}
