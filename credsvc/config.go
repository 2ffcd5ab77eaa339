package credsvc

import (
	"net"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the credential service.
type Config struct {
	platform.Base
	// Addr is where the Connect server listens.
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests pass port 0).
	Listener net.Listener
	// TurnSecret, when set, is the initial TURN secret instead of a generated one.
	TurnSecret string
	// TTL is the lifetime of issued TURN credentials.
	TTL time.Duration
	// STUNServers are handed to clients before the TURN entries.
	STUNServers []string
	// TurnHost is the host (name or IP) put in the TURN URLs handed to clients.
	TurnHost string
	// TurnPort is the TURN UDP/TCP port in those URLs.
	TurnPort int
}

// Bind registers the credential service's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "credsvc-addr", "CREDSVC_ADDR", "127.0.0.1:9102", "credential service listen address")
	v.String(&c.TurnSecret, "turn-secret", "TURN_SECRET", "", "initial TURN shared secret (>= 32 characters); generated when empty")
	v.Duration(&c.TTL, "turn-ttl", "TURN_TTL", 4*time.Hour, "lifetime of issued TURN credentials")
	v.List(&c.STUNServers, "stun-servers", "STUN_SERVERS", "", "comma-separated STUN URLs handed to clients")
	v.String(&c.TurnHost, "turn-host", "TURN_HOST", "127.0.0.1", "host name or IP in the TURN URLs handed to clients")
	v.Port(&c.TurnPort, "turn-port", "TURN_PORT", 3478, "TURN UDP/TCP port")
}
