package roomsvc

import (
	"context"
	"log/slog"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/roompin"
)

// The room rules live here and in membership.go, events.go and queries.go, apart from the
// network, so they can be tested directly.
//
// Locking: hub.mu guards the room and member indexes and is taken only when membership
// changes (enter, resume, leave, expiry, close). Each room has its own mutex, which guards its
// members, their queues and their sessions; the signal path takes only that. A link's outbox
// lock is taken last, to hand it events. Order: link.mu, hub.mu, room.mu, link.outMu; never the
// other way.

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
	codeNotJoined   = "NOT_JOINED"
)

// session is one member session of a gateway link: the gateway's socket, known by the id the
// gateway gave it. Once entered it owns a member; the hub delivers the member's events to its
// link. When the hub ends a session (room closed, resumed elsewhere, shutdown) the link is told
// and no event follows for it.
type session struct {
	id   uint64
	link *link

	// Guarded by the member's room lock:
	ended bool

	// Guarded by link.mu:
	m       *member                 // the member, once entered or resumed
	pending bool                    // entering or resuming: later requests are held
	held    []*roomv1.MemberRequest // requests that came while pending, applied once settled
	quit    *roomv1.MemberRequest   // a leave or detach that arrived while pending
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
	queueLimit int    // events kept for one held member
	lobbyMax   int    // members one lobby may hold; 0 means DefaultLobbyMaxMembers
	secret     string // keys room ids and resume tokens; empty means random keys
	now        func() time.Time
	// afterFunc runs f after d (the grace timers); tests move time with a fake one.
	afterFunc func(d time.Duration, f func()) timer
	// gone is called (under locks: it must not block) when a member is gone for good.
	gone   func(participantID string)
	meters *meters
	log    *slog.Logger
}

// timer is a pending call of afterFunc.
type timer interface{ Stop() bool }

// hub holds every room.
type hub struct {
	hubConfig
	keys keys
	// started is when this hub began: a token issued earlier may name a slot an earlier
	// process held, which a resume rebuilds.
	started time.Time

	mu      sync.Mutex
	rooms   map[string]*room   // by room id
	members map[string]*member // by participant id, for resume
	closed  bool
}

func newHub(cfg hubConfig) *hub {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.afterFunc == nil {
		cfg.afterFunc = func(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }
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
	return &hub{hubConfig: cfg, keys: newKeys(cfg.secret), started: cfg.now().Truncate(time.Millisecond),
		rooms: map[string]*room{}, members: map[string]*member{}}
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
	creds   *credv1.IssueResponse // the TURN credentials of the current attachment
	sess    *session              // nil while held
	queue   []*roomv1.MemberEvent // events kept while held, replayed on resume
	hold    timer
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
