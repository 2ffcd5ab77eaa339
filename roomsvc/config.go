package roomsvc

import (
	"net"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the room service.
type Config struct {
	platform.Base
	// Addr is where the Connect server listens.
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests pass port 0).
	Listener net.Listener
	// CredsvcURL is the credential service's base URL, told when a member is gone for good.
	CredsvcURL string
	// ResumeGrace is how long a dropped member's slot is held for a resume.
	ResumeGrace time.Duration
	// ResumeTokenTTL bounds how long after a Joined its resume token may be used. A token
	// works only while its slot exists (connected, or held within ResumeGrace), so this is an
	// outer bound for leaked tokens; it must exceed the longest call that should survive a
	// dropped connection, since tokens are only renewed on (re)join.
	ResumeTokenTTL time.Duration
	// QueueLimit bounds the events queued for one member (while held or slow); overflow ends
	// the member as connection lost instead of dropping events silently. 0 means 256.
	QueueLimit int
	// LobbyMaxMembers caps a lobby's members (held slots count): every change sends the whole
	// list to every member, so a lobby's cost grows with the square of its size. 0 means
	// DefaultLobbyMaxMembers; a negative value is refused by New.
	LobbyMaxMembers int
}

// DefaultLobbyMaxMembers is LOBBY_MAX_MEMBERS's default.
const DefaultLobbyMaxMembers = 50

// Bind registers the room service's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "roomsvc-addr", "ROOMSVC_ADDR", "127.0.0.1:9101", "room service listen address")
	v.String(&c.CredsvcURL, "credsvc-url", "CREDSVC_URL", "http://127.0.0.1:9102", "credential service base URL")
	v.Duration(&c.ResumeGrace, "resume-grace", "RESUME_GRACE", 30*time.Second, "how long a dropped member's slot is held for a resume")
	v.PositiveInt(&c.LobbyMaxMembers, "lobby-max-members", "LOBBY_MAX_MEMBERS", DefaultLobbyMaxMembers, "most members one lobby may hold; a join beyond it is refused as full")
	v.Duration(&c.ResumeTokenTTL, "resume-token-ttl", "RESUME_TOKEN_TTL", 12*time.Hour, "how long a resume token stays usable after it is issued (it also needs a live slot)")
}
