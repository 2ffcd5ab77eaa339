package gateway

import (
	"net"

	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the gateway.
type Config struct {
	platform.Base
	// Addr is where the public HTTP server listens.
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests pass port 0).
	Listener net.Listener
	// RoomsvcURL and CredsvcURL are the internal services' base URLs.
	RoomsvcURL, CredsvcURL string
	// ForceRelay makes clients use TURN only (iceTransportPolicy "relay").
	ForceRelay bool
}

// Bind registers the gateway's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "gateway-addr", "GATEWAY_ADDR", ":8080", "public HTTP listen address")
	v.String(&c.RoomsvcURL, "roomsvc-url", "ROOMSVC_URL", "http://127.0.0.1:9101", "room service base URL")
	v.String(&c.CredsvcURL, "credsvc-url", "CREDSVC_URL", "http://127.0.0.1:9102", "credential service base URL")
	v.Bool(&c.ForceRelay, "force-relay", "FORCE_RELAY", false, "make clients relay all media through TURN")
}
