package roomsvc

import (
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/roompin"
)

// Operator queries: what the admin RPCs read.

// roomByPIN is the id of the PIN room for pin.
func (h *hub) roomByPIN(pin string) (string, *rejection) {
	if !roompin.Valid(pin) {
		return "", errBadPIN
	}
	return h.keys.roomID(roomv1.RoomKind_ROOM_KIND_PIN, pin), nil
}

func (r *room) summary() *roomv1.RoomSummary {
	return &roomv1.RoomSummary{
		RoomId:      r.id,
		Kind:        r.kind,
		Hint:        r.hint,
		MemberCount: uint32(len(r.members)),
		CreatedAt:   timestamppb.New(r.createdAt),
	}
}

// listRooms describes the live rooms of kind (all when unspecified), oldest first.
func (h *hub) listRooms(kind roomv1.RoomKind) []*roomv1.RoomSummary {
	h.mu.Lock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		if kind == roomv1.RoomKind_ROOM_KIND_UNSPECIFIED || r.kind == kind {
			rooms = append(rooms, r)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(rooms, func(a, b *room) int { return a.createdAt.Compare(b.createdAt) })
	out := make([]*roomv1.RoomSummary, 0, len(rooms))
	for _, r := range rooms {
		r.mu.Lock()
		if !r.gone {
			out = append(out, r.summary())
		}
		r.mu.Unlock()
	}
	return out
}

// getRoom describes one room and its members.
func (h *hub) getRoom(id string) (*roomv1.GetRoomResponse, bool) {
	h.mu.Lock()
	r := h.rooms[id]
	h.mu.Unlock()
	if r == nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return nil, false
	}
	resp := &roomv1.GetRoomResponse{Room: r.summary()}
	for _, m := range r.members {
		resp.Members = append(resp.Members, m.proto())
	}
	return resp, true
}
