package roomsvc

import (
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Membership: members arrive (enter), drop and come back (detach, resume), and go for good
// (leave, expiry, room closed, shutdown).

// enter makes sess the new member id of the room e names, with creds as its TURN credentials.
// The member's first event is Joined; the others are told per the room's kind.
func (h *hub) enter(e *roomv1.Enter, sess *session, id string, creds *credv1.IssueResponse, c cause) (*member, *rejection) {
	kind, roomID, hint, rej := h.target(e)
	if rej != nil {
		h.meters.join(rej.outcome)
		return nil, rej
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.meters.join(errShuttingDown.outcome)
		return nil, errShuttingDown
	}
	r := h.rooms[roomID]
	fresh := r == nil
	if fresh {
		r = &room{id: roomID, kind: kind, hint: hint, createdAt: now}
		if kind == roomv1.RoomKind_ROOM_KIND_LOBBY {
			r.byPeer = map[string]*member{}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	m := &member{room: r, id: id, joinedAt: now, sess: sess, creds: creds}
	switch kind {
	case roomv1.RoomKind_ROOM_KIND_PIN:
		// Held slots count: a member who may resume still owns the place.
		if len(r.members) >= 2 {
			h.meters.join(errRoomFull.outcome)
			return nil, errRoomFull
		}
		m.role = roomv1.Role_ROLE_FIRST
		if len(r.members) == 1 {
			m.role = roomv1.Role_ROLE_SECOND
		}
	case roomv1.RoomKind_ROOM_KIND_LOBBY:
		if r.byPeer[e.PeerId] != nil {
			h.meters.join(errPeerIDTaken.outcome)
			return nil, errPeerIDTaken
		}
		// Held slots count, as in a PIN room: each member costs every other one a list entry
		// on every change.
		if len(r.members) >= h.lobbyMax {
			h.meters.join(errLobbyFull.outcome)
			return nil, lobbyFull(hint, h.lobbyMax)
		}
		m.role = roomv1.Role_ROLE_LOBBY_MEMBER
		m.peerID, m.name, m.userAgent = e.PeerId, e.Name, e.UserAgent
		r.byPeer[m.peerID] = m
	}
	if fresh {
		h.rooms[roomID] = r
		h.meters.rooms(kind, 1)
	}
	h.members[m.id] = m
	r.members = append(r.members, m)
	h.meters.connected.Add(1)
	h.meters.join("ok")

	h.push(m, h.joinedEvent(m, false, c))
	switch kind {
	case roomv1.RoomKind_ROOM_KIND_PIN:
		if len(r.members) == 2 {
			// Only the member who was there first is told: it makes the offer.
			first := r.members[0]
			h.push(first, &roomv1.MemberEvent{TraceContext: c.tc, Event: &roomv1.MemberEvent_PeerJoined{
				PeerJoined: &roomv1.PeerJoined{Member: m.proto()},
			}})
			r.fullAt = now
		}
	case roomv1.RoomKind_ROOM_KIND_LOBBY:
		h.membersChanged(r, c)
	}
	c.span.AddEvent("peer joined", trace.WithAttributes(
		attribute.String("tuturu.participant.id", m.id), attribute.String("tuturu.role", m.role.String())))
	return m, nil
}

// joinedEvent builds the first event of an attachment, with a fresh resume token.
func (h *hub) joinedEvent(m *member, resumed bool, c cause) *roomv1.MemberEvent {
	r := m.room
	peers := make([]*roomv1.Member, 0, len(r.members))
	for _, o := range r.members {
		if o != m {
			peers = append(peers, o.proto())
		}
	}
	now := h.now()
	tok := h.keys.signToken(tokenClaims{participantID: m.id, roomID: r.id, shard: m.sess.link.shardTag(), expiry: now.Add(h.tokenTTL), issued: now,
		kind: r.kind, role: m.role, hint: r.hint, peerID: m.peerID})
	return &roomv1.MemberEvent{TraceContext: c.tc, Event: &roomv1.MemberEvent_Joined{Joined: &roomv1.Joined{
		RoomId:      r.id,
		Kind:        r.kind,
		Self:        m.proto(),
		Peers:       peers,
		ResumeToken: tok,
		ResumeGrace: durationpb.New(h.grace),
		Resumed:     resumed,
		Credentials: m.creds,
	}}}
}

// leave removes m at once, if sess still owns it.
func (h *hub) leave(m *member, sess *session, reason roomv1.LeaveReason, c cause) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.gone || m.sess != sess {
		return false
	}
	h.remove(m, reason, c)
	return true
}

// detach turns m into a held member when its socket or link dropped without a leave: the
// others are told nothing, events are queued, and the grace timer starts.
func (h *hub) detach(m *member, sess *session) {
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.gone || m.sess != sess {
		return
	}
	m.sess = nil
	h.meters.connected.Add(-1)
	h.meters.held.Add(1)
	h.startHold(m, h.grace)
}

// startHold (re)arms m's grace timer. Room lock held.
func (h *hub) startHold(m *member, d time.Duration) {
	m.holdGen++
	gen := m.holdGen
	if m.hold != nil {
		m.hold.Stop()
	}
	m.hold = h.afterFunc(d, func() { h.expire(m, gen) })
}

// expire removes a member whose grace period ended without a resume.
func (h *hub) expire(m *member, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.gone || m.sess != nil || m.holdGen != gen {
		return
	}
	h.remove(m, roomv1.LeaveReason_LEAVE_REASON_CONNECTION_LOST, noCause())
}

// remove takes m out of its room for good and tells the others once. Both locks held.
func (h *hub) remove(m *member, reason roomv1.LeaveReason, c cause) {
	r := m.room
	left := &roomv1.MemberEvent{TraceContext: c.tc, Event: &roomv1.MemberEvent_PeerLeft{
		PeerLeft: &roomv1.PeerLeft{Member: m.proto(), Reason: reason},
	}}
	h.forget(m)
	r.members = slices.DeleteFunc(r.members, func(o *member) bool { return o == m })
	if r.byPeer != nil {
		delete(r.byPeer, m.peerID)
	}
	for _, o := range r.members {
		h.push(o, left)
	}
	switch r.kind {
	case roomv1.RoomKind_ROOM_KIND_PIN:
		r.fullAt = time.Time{}
		if len(r.members) == 1 {
			// The one who stays will be told about the next arrival and make the offer.
			r.members[0].role = roomv1.Role_ROLE_FIRST
		}
	case roomv1.RoomKind_ROOM_KIND_LOBBY:
		if len(r.members) > 0 {
			h.membersChanged(r, c)
		}
	}
	if len(r.members) == 0 {
		h.dropRoom(r)
	}
	h.meters.depart(reason)
	c.span.AddEvent("peer left", trace.WithAttributes(
		attribute.String("tuturu.participant.id", m.id), attribute.String("reason", reason.String())))
}

// forget marks m gone and drops it from the indexes and gauges. Both locks held.
func (h *hub) forget(m *member) {
	if m.sess != nil {
		h.meters.connected.Add(-1)
	} else {
		h.meters.held.Add(-1)
	}
	m.gone = true
	m.sess = nil
	m.queue = nil
	if m.hold != nil {
		m.hold.Stop()
	}
	delete(h.members, m.id)
	if h.gone != nil {
		h.gone(m.id)
	}
}

// dropRoom removes an empty or closed room. Both locks held.
func (h *hub) dropRoom(r *room) {
	r.gone = true
	delete(h.rooms, r.id)
	h.meters.rooms(r.kind, -1)
}

// checkResume verifies a resume token before any work is done for it.
func (h *hub) checkResume(token, shard string) (tokenClaims, *rejection) {
	claims, err := h.keys.verifyToken(token, shard, h.now())
	if err != nil {
		h.meters.resume(errBadToken.outcome)
		h.log.Debug("resume refused", "why", err.Error())
		return tokenClaims{}, errBadToken
	}
	return claims, nil
}

// resume gives a held (or still attached) slot to sess, with Joined{resumed} first and then
// the events queued meanwhile. creds replace the member's TURN credentials.
func (h *hub) resume(claims tokenClaims, sess *session, creds *credv1.IssueResponse, c cause) (*member, *rejection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.meters.resume(errShuttingDown.outcome)
		return nil, errShuttingDown
	}
	m := h.members[claims.participantID]
	// Only within the grace after this process started: a member an earlier process held
	// had at most that long left, and the gateway re-attaches live members at once.
	if m == nil && claims.issued.Before(h.started) && h.now().Before(h.started.Add(h.grace)) {
		m = h.rebuild(claims)
	}
	if m == nil || m.room.id != claims.roomID {
		h.meters.resume(errSlotGone.outcome)
		return nil, errSlotGone
	}
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.dying {
		h.meters.resume(errSlotGone.outcome)
		return nil, errSlotGone
	}
	if m.sess != nil {
		// The old socket has not noticed it is dead (or someone resumed twice): this one wins.
		h.endSession(m.sess, errResumedElse)
	} else {
		h.meters.held.Add(-1)
		h.meters.connected.Add(1)
	}
	if m.hold != nil {
		m.hold.Stop()
		m.hold = nil
	}
	m.holdGen++
	m.sess = sess
	m.creds = creds
	queued := m.queue
	m.queue = nil
	h.push(m, h.joinedEvent(m, true, c))
	for _, ev := range queued {
		h.push(m, ev)
	}
	h.meters.resume("ok")
	c.span.AddEvent("resumed", trace.WithAttributes(
		attribute.String("tuturu.participant.id", m.id), attribute.Int("tuturu.queued", len(queued))))
	return m, nil
}

// rebuild restores, held, the slot a token issued by an earlier roomsvc process names, as far
// as the room's rules allow: a PIN room keeps at most two members and a lobby one member per
// peer id. The others are not told: for them the member never left. A participant who left
// for good is revoked in credsvc, which refuses the resume its credentials. hub.mu held.
func (h *hub) rebuild(c tokenClaims) *member {
	if c.kind != roomv1.RoomKind_ROOM_KIND_PIN && c.kind != roomv1.RoomKind_ROOM_KIND_LOBBY {
		return nil
	}
	now := h.now()
	r := h.rooms[c.roomID]
	fresh := r == nil
	if fresh {
		r = &room{id: c.roomID, kind: c.kind, hint: c.hint, createdAt: now}
		if c.kind == roomv1.RoomKind_ROOM_KIND_LOBBY {
			r.byPeer = map[string]*member{}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kind != c.kind {
		return nil
	}
	m := &member{room: r, id: c.participantID, joinedAt: c.issued, role: c.role, peerID: c.peerID}
	switch r.kind {
	case roomv1.RoomKind_ROOM_KIND_PIN:
		if len(r.members) >= 2 {
			return nil
		}
		if len(r.members) == 1 && r.members[0].role == m.role {
			// Someone took this role since the restart: the returning member takes the other.
			m.role = roomv1.Role_ROLE_SECOND
			if r.members[0].role == roomv1.Role_ROLE_SECOND {
				m.role = roomv1.Role_ROLE_FIRST
			}
		}
	case roomv1.RoomKind_ROOM_KIND_LOBBY:
		if c.peerID == "" || r.byPeer[c.peerID] != nil || len(r.members) >= h.lobbyMax {
			return nil
		}
		r.byPeer[c.peerID] = m
	}
	if fresh {
		h.rooms[r.id] = r
		h.meters.rooms(r.kind, 1)
	}
	h.members[m.id] = m
	r.members = append(r.members, m)
	h.meters.held.Add(1) // resume turns it into a connected member
	if r.kind == roomv1.RoomKind_ROOM_KIND_LOBBY {
		h.membersChanged(r, noCause())
	}
	h.log.Info("rebuilt a member's slot from its resume token", "participant_id", m.id, "room_id", r.id)
	return m
}

// closeRoom ends a room: every connected member gets room_closed after what was queued and
// nobody may resume. It reports how many members were disconnected.
func (h *hub) closeRoom(id, reason string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[id]
	if r == nil {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := &roomv1.MemberEvent{Event: &roomv1.MemberEvent_RoomClosed{RoomClosed: &roomv1.RoomClosed{Reason: reason}}}
	n := len(r.members)
	for _, m := range r.members {
		if m.sess != nil {
			h.push(m, ev)
			h.endSession(m.sess, nil)
		}
		h.forget(m)
		h.meters.depart(roomv1.LeaveReason_LEAVE_REASON_ROOM_CLOSED)
	}
	r.members = nil
	r.byPeer = nil
	h.dropRoom(r)
	return n, true
}

// shutdown refuses new members and leaves the present ones alone: when their streams end
// they are held like the members of a crashed process, so the gateways re-attach them to the
// next process (which rebuilds them from their tokens) and a rollout goes unnoticed. Ending
// them here would count them as departed and revoke the credentials their resume needs.
func (h *hub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
}
