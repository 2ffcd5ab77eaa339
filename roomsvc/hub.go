package roomsvc

import (
	"context"
	"github.com/tuturu/tuturu/internal/roompin"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// The room rules live here, apart from the network, so they can be tested directly.
//
// Locking: hub.mu guards the room and member indexes and is taken only when membership
// changes (enter, resume, leave, expiry, close). Each room has its own mutex, which guards its
// members, their queues and their sessions; the signal path takes only that. Order: hub.mu
// before room.mu, never the other way.

// Limits on what a client may send; the gateway enforces tighter ones for browsers.
const (
	maxLobbyName  = 64
	maxPeerID     = 128
	maxName       = 256
	maxUserAgent  = 512
	maxSignalData = 256 << 10
)

// Signal error codes sent in SignalError.code.
const (
	codeNoPeer      = "NO_PEER"
	codeUnknownPeer = "UNKNOWN_PEER"
)

// session is one Join stream's attachment to a member. The hub queues events on the member
// and wakes the session: its pump (a goroutine that exists only while there is something to
// send) takes and sends them. When the hub ends a session (room closed, resumed elsewhere,
// shutdown, slow reader) it sets final/err, closes done and interrupts the stream's read.
type session struct {
	done chan struct{}
	// pump, when set, sends queued events; the hub starts it (go pump()) when events arrive
	// and none is running. interrupt makes the stream's pending Receive return. Both are set
	// before the session is handed to the hub; unit tests leave them nil and take events
	// themselves.
	pump      func()
	interrupt func()
	// pumps counts running pumps; the stream waits for it before it ends.
	pumps sync.WaitGroup

	// Guarded by the member's room lock:
	m       *member // the member this session was attached to
	pumping bool
	ended   bool
	// Set before done is closed, read after.
	final []*roomv1.JoinResponse
	err   *rejection
}

func newSession() *session {
	return &session{done: make(chan struct{})}
}

// cause is the client message being handled: events it produces carry its trace context, and
// span events are added to its span.
type cause struct {
	tc   map[string]string
	span trace.Span
}

// noCause is for work no client message caused (grace expiry, admin, overflow).
func noCause() cause { return cause{span: trace.SpanFromContext(context.Background())} }

// hubConfig is what the hub needs from the service.
type hubConfig struct {
	grace      time.Duration
	tokenTTL   time.Duration
	queueLimit int
	lobbyMax   int // members one lobby may hold; 0 means DefaultLobbyMaxMembers
	now        func() time.Time
	// gone is called (under locks: it must not block) when a member is gone for good.
	gone   func(participantID string)
	meters *meters
	log    *slog.Logger
}

// hub holds every room.
type hub struct {
	hubConfig
	keys keys

	mu      sync.Mutex
	rooms   map[string]*room   // by room id
	members map[string]*member // by participant id, for resume
	closed  bool
}

func newHub(cfg hubConfig) *hub {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.queueLimit <= 0 {
		cfg.queueLimit = 256
	}
	if cfg.lobbyMax <= 0 {
		cfg.lobbyMax = DefaultLobbyMaxMembers
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	return &hub{hubConfig: cfg, keys: newKeys(), rooms: map[string]*room{}, members: map[string]*member{}}
}

// room is a PIN room (two members) or a lobby (many, addressed by peer id).
type room struct {
	id        string
	kind      roomv1.RoomKind
	hint      string // "****56" or the lobby name: what an operator may see
	createdAt time.Time

	mu      sync.Mutex
	members []*member          // in arrival order
	byPeer  map[string]*member // lobby: by peer id
	fullAt  time.Time          // PIN: when the second member arrived, until the first answer
	gone    bool
}

// member is one participant. Fields below mu are guarded by room.mu.
type member struct {
	room      *room
	id        string
	peerID    string
	name      string
	userAgent string
	joinedAt  time.Time

	role    roomv1.Role
	sess    *session // nil while held
	queue   []*roomv1.JoinResponse
	hold    *time.Timer
	holdGen uint64
	dying   bool // queue overflowed while held: removal is scheduled
	gone    bool
}

func (m *member) proto() *roomv1.Member {
	state := roomv1.MemberState_MEMBER_STATE_CONNECTED
	if m.sess == nil {
		state = roomv1.MemberState_MEMBER_STATE_HELD
	}
	return &roomv1.Member{
		ParticipantId: m.id,
		Role:          m.role,
		PeerId:        m.peerID,
		Name:          m.name,
		UserAgent:     m.userAgent,
		State:         state,
		JoinedAt:      timestamppb.New(m.joinedAt),
	}
}

// printable is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// target says which room an Enter names, after validation.
func (h *hub) target(e *roomv1.Enter) (kind roomv1.RoomKind, id, hint string, err *rejection) {
	switch r := e.GetRoom().(type) {
	case *roomv1.Enter_Pin:
		if !roompin.Valid(r.Pin) {
			return 0, "", "", errBadPIN
		}
		return roomv1.RoomKind_ROOM_KIND_PIN, h.keys.roomID(roomv1.RoomKind_ROOM_KIND_PIN, r.Pin), "****" + r.Pin[4:], nil
	case *roomv1.Enter_Lobby:
		if r.Lobby == "" || len(r.Lobby) > maxLobbyName || !printable(r.Lobby) {
			return 0, "", "", errBadLobby
		}
		switch {
		case e.PeerId == "":
			return 0, "", "", errEmptyPeerID
		case len(e.PeerId) > maxPeerID || len(e.Name) > maxName || len(e.UserAgent) > maxUserAgent:
			return 0, "", "", errLongField
		case !printable(e.PeerId) || !utf8.ValidString(e.Name) || !utf8.ValidString(e.UserAgent):
			return 0, "", "", errLongField
		}
		return roomv1.RoomKind_ROOM_KIND_LOBBY, h.keys.roomID(roomv1.RoomKind_ROOM_KIND_LOBBY, r.Lobby), r.Lobby, nil
	default:
		return 0, "", "", errNoRoom
	}
}

// enter makes sess a new member of the room e names. The member's first queued event is
// Joined; the others are told per the room's kind.
func (h *hub) enter(e *roomv1.Enter, sess *session, c cause) (*member, *rejection) {
	kind, id, hint, rej := h.target(e)
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
	r := h.rooms[id]
	fresh := r == nil
	if fresh {
		r = &room{id: id, kind: kind, hint: hint, createdAt: now}
		if kind == roomv1.RoomKind_ROOM_KIND_LOBBY {
			r.byPeer = map[string]*member{}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	m := &member{room: r, id: newParticipantID(), joinedAt: now, sess: sess}
	sess.m = m
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
		h.rooms[id] = r
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
			h.push(first, &roomv1.JoinResponse{TraceContext: c.tc, Event: &roomv1.JoinResponse_PeerJoined{
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

// joinedEvent builds the first event of a stream, with a fresh resume token.
func (h *hub) joinedEvent(m *member, resumed bool, c cause) *roomv1.JoinResponse {
	r := m.room
	peers := make([]*roomv1.Member, 0, len(r.members))
	for _, o := range r.members {
		if o != m {
			peers = append(peers, o.proto())
		}
	}
	tok := h.keys.signToken(tokenClaims{participantID: m.id, roomID: r.id, expiry: h.now().Add(h.tokenTTL)})
	return &roomv1.JoinResponse{TraceContext: c.tc, Event: &roomv1.JoinResponse_Joined{Joined: &roomv1.Joined{
		RoomId:      r.id,
		Kind:        r.kind,
		Self:        m.proto(),
		Peers:       peers,
		ResumeToken: tok,
		ResumeGrace: durationpb.New(h.grace),
		Resumed:     resumed,
	}}}
}

// membersChanged sends a lobby's full member list to every member. Room lock held.
func (h *hub) membersChanged(r *room, c cause) {
	list := make([]*roomv1.Member, len(r.members))
	for i, o := range r.members {
		list[i] = o.proto()
	}
	ev := &roomv1.JoinResponse{TraceContext: c.tc, Event: &roomv1.JoinResponse_MembersChanged{
		MembersChanged: &roomv1.MembersChanged{Members: list},
	}}
	for _, o := range r.members {
		h.push(o, ev)
	}
}

// push queues ev for m and wakes its stream. Room lock held. A queue that reaches the limit
// means the reader is stuck or away too long: the member is dropped as connection lost,
// rather than silently losing events.
func (h *hub) push(m *member, ev *roomv1.JoinResponse) {
	if m.gone || m.dying {
		return
	}
	if len(m.queue) >= h.queueLimit {
		h.log.Warn("member's event queue overflowed; dropping the member", "participant_id", m.id)
		if m.sess != nil {
			h.endSession(m.sess, nil, errSlowReader)
			m.sess = nil
			h.meters.connected.Add(-1)
			h.meters.held.Add(1)
		}
		m.dying = true
		h.startHold(m, 0)
		return
	}
	m.queue = append(m.queue, ev)
	if s := m.sess; s != nil && s.pump != nil && !s.pumping && !s.ended {
		s.pumping = true
		s.pumps.Add(1)
		go s.pump()
	}
}

// endSession ends a stream from the hub's side. Room lock held.
func (h *hub) endSession(s *session, final []*roomv1.JoinResponse, err *rejection) {
	if s.ended {
		return
	}
	s.ended, s.final, s.err = true, final, err
	close(s.done)
	if s.interrupt != nil {
		s.interrupt()
	}
}

// startHold (re)arms m's grace timer. Room lock held.
func (h *hub) startHold(m *member, d time.Duration) {
	m.holdGen++
	gen := m.holdGen
	if m.hold != nil {
		m.hold.Stop()
	}
	m.hold = time.AfterFunc(d, func() { h.expire(m, gen) })
}

// take hands the queued events to sess's pump. When there are none (or sess no longer owns
// m) it returns an empty batch and the pump must stop: the next event starts a new one. The
// pump gives back its previous batch (emptied) as spare to avoid allocating.
func (h *hub) take(m *member, sess *session, spare []*roomv1.JoinResponse) []*roomv1.JoinResponse {
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.sess != sess || len(m.queue) == 0 {
		sess.pumping = false
		return spare[:0]
	}
	q := m.queue
	m.queue = spare[:0]
	return q
}

// signal routes a member's signal. It reports false when sess no longer owns a membership
// (the stream is ending). A signal with nobody to receive it is answered with an error event.
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
	h.push(to, &roomv1.JoinResponse{TraceContext: c.tc, Event: &roomv1.JoinResponse_Signal{Signal: &roomv1.SignalReceived{
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

func signalError(request, code, reason string, c cause) *roomv1.JoinResponse {
	return &roomv1.JoinResponse{TraceContext: c.tc, Event: &roomv1.JoinResponse_Error{Error: &roomv1.SignalError{
		Request: request, Code: code, Reason: reason,
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

// detach turns m into a held member when its stream ended without a leave: the others are
// told nothing, events are queued, and the grace timer starts.
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
	left := &roomv1.JoinResponse{TraceContext: c.tc, Event: &roomv1.JoinResponse_PeerLeft{
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

// resume gives a held (or still attached) slot to sess, with Joined{resumed} first and then
// the events queued meanwhile.
func (h *hub) resume(token string, sess *session, c cause) (*member, *rejection) {
	claims, err := h.keys.verifyToken(token, h.now())
	if err != nil {
		h.meters.resume(errBadToken.outcome)
		h.log.Debug("resume refused", "why", err.Error())
		return nil, errBadToken
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.meters.resume(errShuttingDown.outcome)
		return nil, errShuttingDown
	}
	m := h.members[claims.participantID]
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
		// The old stream has not noticed it is dead (or someone resumed twice): this one wins.
		h.endSession(m.sess, nil, errResumedElse)
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
	sess.m = m
	queued := m.queue
	m.queue = make([]*roomv1.JoinResponse, 0, len(queued)+1)
	h.push(m, h.joinedEvent(m, true, c))
	m.queue = append(m.queue, queued...)
	h.meters.resume("ok")
	c.span.AddEvent("resumed", trace.WithAttributes(
		attribute.String("tuturu.participant.id", m.id), attribute.Int("tuturu.queued", len(queued))))
	return m, nil
}

// closeRoom ends a room: every connected member gets room_closed after what was queued, then
// its stream ends; nobody may resume. It reports how many members were disconnected.
func (h *hub) closeRoom(id, reason string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[id]
	if r == nil {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := &roomv1.JoinResponse{Event: &roomv1.JoinResponse_RoomClosed{RoomClosed: &roomv1.RoomClosed{Reason: reason}}}
	n := len(r.members)
	for _, m := range r.members {
		if m.sess != nil {
			h.endSession(m.sess, append(m.queue, ev), nil)
		}
		h.forget(m)
		h.meters.depart(roomv1.LeaveReason_LEAVE_REASON_ROOM_CLOSED)
	}
	r.members = nil
	r.byPeer = nil
	h.dropRoom(r)
	return n, true
}

// shutdown ends every stream with Unavailable and refuses new joins.
func (h *hub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.gone = nil // credsvc is going away too; its credentials expire on their own
	for _, r := range h.rooms {
		r.mu.Lock()
		for _, m := range r.members {
			if m.sess != nil {
				h.endSession(m.sess, nil, errShuttingDown)
			}
			h.forget(m)
			h.meters.depart(roomv1.LeaveReason_LEAVE_REASON_SHUTDOWN)
		}
		r.members = nil
		h.dropRoom(r)
		r.mu.Unlock()
	}
}

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
