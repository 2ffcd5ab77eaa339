package turnsvc

import (
	"net"

	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the TURN service.
type Config struct {
	platform.Base
	// Addr is where the admin Connect server listens.
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests pass port 0).
	Listener net.Listener
	// CredsvcURL is the credential service's base URL.
	CredsvcURL string
	// ListenHost is the IP the TURN listeners bind.
	ListenHost string
	// Port is the TURN UDP/TCP port.
	Port int
	// ExternalIP is the relay address advertised to clients.
	ExternalIP string
	// MinPort and MaxPort bound the relay port range.
	MinPort, MaxPort int
	// Realm is the TURN realm.
	Realm string
}

// Bind registers the TURN service's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "turnsvc-addr", "TURNSVC_ADDR", "127.0.0.1:9103", "TURN admin service listen address")
	v.String(&c.CredsvcURL, "credsvc-url", "CREDSVC_URL", "http://127.0.0.1:9102", "credential service base URL")
	v.String(&c.ListenHost, "turn-listen-host", "TURN_LISTEN_HOST", "0.0.0.0", "IP the TURN listeners bind")
	v.Port(&c.Port, "turn-port", "TURN_PORT", 3478, "TURN UDP/TCP port")
	v.String(&c.ExternalIP, "external-ip", "EXTERNAL_IP", "127.0.0.1", "public IP advertised as the relay address")
	v.Port(&c.MinPort, "turn-min-port", "TURN_MIN_PORT", 49152, "lowest relay port")
	v.Port(&c.MaxPort, "turn-max-port", "TURN_MAX_PORT", 65535, "highest relay port")
	v.String(&c.Realm, "turn-realm", "TURN_REALM", "tuturu", "TURN realm")
}
