package roomsvc

import (
	"time"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Events: what members are told. An attached member's events go straight to its link's
// outbox; a held member's are kept on the member, bounded, and replayed on resume.

// push delivers ev to m. Room lock held. ev may be shared between recipients: each gets its
// own wrapper carrying its session id. A held member whose queue reaches the limit is away too
// long or stuck: it is dropped as connection lost, rather than silently losing events.
func (h *hub) push(m *member, ev *roomv1.MemberEvent) {
	if m.gone || m.dying {
		return
	}
	if s := m.sess; s != nil && !s.ended && s.link.deliver(s.id, ev) {
		return
	}
	if len(m.queue) >= h.queueLimit {
		h.log.Warn("held member's event queue overflowed; dropping the member", "participant_id", m.id)
		m.dying = true
		m.queue = nil
		h.startHold(m, 0)
		return
	}
	m.queue = append(m.queue, ev)
}

// endSession ends sess from the hub's side: its link tells the gateway (Ended, when rej is set)
// and forgets it. Room lock held.
func (h *hub) endSession(sess *session, rej *rejection) {
	if sess.ended {
		return
	}
	sess.ended = true
	sess.link.end(sess.id, rej)
}

// membersChanged sends a lobby's full member list to every member. Room lock held.
func (h *hub) membersChanged(r *room, c cause) {
	list := make([]*roomv1.Member, len(r.members))
	for i, o := range r.members {
		list[i] = o.proto()
	}
	ev := &roomv1.MemberEvent{TraceContext: c.tc, Event: &roomv1.MemberEvent_MembersChanged{
		MembersChanged: &roomv1.MembersChanged{Members: list},
	}}
	for _, o := range r.members {
		h.push(o, ev)
	}
}

// signal routes a member's signal. It reports false when sess no longer owns a membership.
// A signal with nobody to receive it is answered with an error event.
func (h *hub) signal(m *member, sess *session, sig *roomv1.Signal, c cause) bool {
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.gone || m.sess != sess {
		return false
	}
	var to *member
	switch r.kind {
	case roomv1.RoomKind_ROOM_KIND_PIN:
		for _, o := range r.members {
			if o != m {
				to = o
			}
		}
		if to == nil {
			h.push(m, signalError(sig.Type, codeNoPeer, "no other member in the room to receive it", c))
			return true
		}
	case roomv1.RoomKind_ROOM_KIND_LOBBY:
		if to = r.byPeer[sig.To]; to == nil {
			h.push(m, signalError(sig.Type, codeUnknownPeer, "no member with that peer id in this lobby", c))
			return true
		}
	}
	h.push(to, &roomv1.MemberEvent{TraceContext: c.tc, Event: &roomv1.MemberEvent_Signal{Signal: &roomv1.SignalReceived{
		FromParticipantId: m.id,
		FromPeerId:        m.peerID,
		Type:              sig.Type,
		Data:              sig.Data,
	}}})
	h.meters.signals.Add(1)
	if sig.Type == "answer" && !r.fullAt.IsZero() {
		h.meters.callSetUp(h.now().Sub(r.fullAt))
		r.fullAt = time.Time{}
	}
	return true
}

func signalError(request, code, reason string, c cause) *roomv1.MemberEvent {
	return &roomv1.MemberEvent{TraceContext: c.tc, Event: &roomv1.MemberEvent_Error{Error: &roomv1.SignalError{
		Request: request, Code: code, Reason: reason,
	}}}
}
