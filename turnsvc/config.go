package turnsvc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/turnsvc/peerpolicy"
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
	// ListenHost is the IP the TURN listeners and relay sockets bind.
	ListenHost string
	// Port is the TURN UDP/TCP port; 0 picks a free one (tests), the same for UDP and TCP.
	Port int
	// TLSPort is the TURN-over-TLS port, used when TLSCertFile and TLSKeyFile are set; 0 picks
	// a free one.
	TLSPort int
	// TLSCertFile and TLSKeyFile are a PEM certificate chain and key for TURN over TLS.
	TLSCertFile, TLSKeyFile string
	// ExternalIP is the relay address advertised to clients.
	ExternalIP string
	// MinPort and MaxPort bound the relay port range.
	MinPort, MaxPort int
	// Realm is the TURN realm.
	Realm string
	// DenyPeers and AllowPeers are comma-separated CIDR lists added to the built-in deny-list
	// and excepted from it.
	DenyPeers, AllowPeers string
	// UserQuota caps live allocations per username.
	UserQuota int
	// MaxAllocations caps live allocations in total.
	MaxAllocations int
	// MaxPermissions caps the peer addresses one allocation may hold permissions for.
	MaxPermissions int
	// MaxBitrate caps the relayed traffic of one allocation, both directions together, in
	// kbit/s; 0 means no cap.
	MaxBitrate int
	// DrainTimeout is how long live allocations may keep relaying after shutdown begins.
	DrainTimeout time.Duration
	// AuthTimeout bounds how long a credential check that must ask credsvc may hold the read
	// loop of the socket it arrived on.
	AuthTimeout time.Duration
	// UDPSockets is the number of SO_REUSEPORT UDP sockets; 0 means one per CPU.
	UDPSockets int
	// SocketBuffer is the SO_RCVBUF/SO_SNDBUF size requested for the TURN UDP sockets, bytes.
	SocketBuffer int
	// ProxyProtocolAddr is a loopback TURN-over-TCP listener whose connections start with a
	// PROXY protocol header (the edge relays TURN over TLS there); empty means none.
	// ProxyProtocolListener, when set, is used instead (tests).
	ProxyProtocolAddr     string
	ProxyProtocolListener net.Listener
}

// Bind registers the TURN service's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "turnsvc-addr", "TURNSVC_ADDR", "127.0.0.1:9103", "TURN admin service listen address")
	v.String(&c.CredsvcURL, "credsvc-url", "CREDSVC_URL", "http://127.0.0.1:9102", "credential service base URL")
	v.String(&c.ListenHost, "turn-listen-host", "TURN_LISTEN_HOST", "0.0.0.0", "IP the TURN listeners bind")
	v.Port(&c.Port, "turn-port", "TURN_PORT", 3478, "TURN UDP/TCP port")
	v.Port(&c.TLSPort, "turn-tls-port", "TURN_TLS_PORT", 5349, "TURN over TLS port (used when a certificate is configured)")
	v.String(&c.TLSCertFile, "turn-tls-cert", "TURN_TLS_CERT", "", "PEM certificate chain for TURN over TLS")
	v.String(&c.TLSKeyFile, "turn-tls-key", "TURN_TLS_KEY", "", "PEM private key for TURN over TLS")
	v.String(&c.ExternalIP, "external-ip", "EXTERNAL_IP", "127.0.0.1", "public IP advertised as the relay address")
	v.Port(&c.MinPort, "turn-min-port", "TURN_MIN_PORT", 49152, "lowest relay port")
	v.Port(&c.MaxPort, "turn-max-port", "TURN_MAX_PORT", 65535, "highest relay port")
	v.String(&c.Realm, "turn-realm", "TURN_REALM", "tuturu", "TURN realm")
	v.String(&c.DenyPeers, "turn-deny-peers", "TURN_DENY_PEERS", "", "comma-separated CIDRs refused as peers, in addition to the built-in private/reserved ranges")
	v.String(&c.AllowPeers, "turn-allow-peers", "TURN_ALLOW_PEERS", "", "comma-separated CIDRs allowed as peers despite the deny-list (e.g. 127.0.0.0/8,::1/128 for local demos)")
	// A browser gathers one relay candidate per TURN URL (udp, tcp, tls) and again on each ICE
	// restart; 10 leaves room for that and still stops one credential from hoarding ports.
	v.Int(&c.UserQuota, "turn-user-quota", "TURN_USER_QUOTA", 10, "live allocations per TURN username")
	v.Int(&c.MaxAllocations, "turn-max-allocations", "TURN_MAX_ALLOCATIONS", 10000, "live allocations in total")
	// A peer permission per remote candidate IP; a call needs a handful.
	v.Int(&c.MaxPermissions, "turn-max-permissions", "TURN_MAX_PERMISSIONS", 32, "peer addresses with a permission per allocation")
	v.Int(&c.MaxBitrate, "turn-max-bitrate", "TURN_MAX_BITRATE", 0, "relayed kbit/s per allocation, both directions together; 0 = no cap")
	v.Duration(&c.DrainTimeout, "turn-drain-timeout", "TURN_DRAIN_TIMEOUT", 30*time.Second, "on shutdown, how long live allocations may keep relaying")
	// credsvc answers in about a millisecond on a LAN; a quarter second covers a slow moment
	// without letting one cold credential hold the other clients of its socket for long.
	v.Duration(&c.AuthTimeout, "turn-auth-timeout", "TURN_AUTH_TIMEOUT", 250*time.Millisecond, "longest wait for credsvc when a TURN username is not cached")
	v.Int(&c.UDPSockets, "turn-udp-sockets", "TURN_UDP_SOCKETS", 0, "SO_REUSEPORT UDP sockets on the TURN port; 0 = one per CPU")
	// 4 MiB absorbs bursts of a few hundred video packets per socket while a read loop is busy.
	v.Int(&c.SocketBuffer, "turn-socket-buffer", "TURN_SOCKET_BUFFER", 4<<20, "SO_RCVBUF/SO_SNDBUF bytes for TURN UDP sockets")
	v.String(&c.ProxyProtocolAddr, "turn-proxy-protocol-addr", "TURN_PROXY_PROTOCOL_ADDR", "", "loopback address of turnsvc's TURN-over-TCP listener that reads PROXY protocol headers; the edge relays TURN over TLS there")
}

// settings is the validated form of Config.
type settings struct {
	listenIP   net.IP
	externalIP net.IP
	policy     *peerpolicy.Policy
	tls        *tls.Config
}

// validate checks the configuration and names the variable of each problem.
func (c *Config) validate() (settings, error) {
	var s settings
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if s.listenIP = net.ParseIP(c.ListenHost); s.listenIP == nil {
		bad("TURN_LISTEN_HOST", "%q is not an IP address", c.ListenHost)
	} else if s.listenIP.To4() == nil {
		// pion v4 opens IPv4 relays (udp4) on this address.
		bad("TURN_LISTEN_HOST", "%q is not an IPv4 address (relays are IPv4; use 0.0.0.0 for every interface)", c.ListenHost)
	}
	if s.externalIP = net.ParseIP(c.ExternalIP); s.externalIP == nil {
		bad("EXTERNAL_IP", "%q is not an IP address", c.ExternalIP)
	} else if s.externalIP.To4() == nil {
		bad("EXTERNAL_IP", "%q is not an IPv4 address (relays are IPv4)", c.ExternalIP)
	} else if s.externalIP.IsUnspecified() {
		bad("EXTERNAL_IP", "%q cannot be advertised to clients", c.ExternalIP)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("TURN_PORT", "%d is not a port number", c.Port)
	}
	if c.MinPort < 1 || c.MinPort > 65535 {
		bad("TURN_MIN_PORT", "%d is not a port number (1-65535)", c.MinPort)
	}
	if c.MaxPort < 1 || c.MaxPort > 65535 {
		bad("TURN_MAX_PORT", "%d is not a port number (1-65535)", c.MaxPort)
	}
	if c.MinPort > c.MaxPort {
		bad("TURN_MIN_PORT", "%d is above TURN_MAX_PORT %d", c.MinPort, c.MaxPort)
	}
	if c.Realm == "" {
		bad("TURN_REALM", "must not be empty")
	}
	deny, err := peerpolicy.ParseList(c.DenyPeers)
	if err != nil {
		bad("TURN_DENY_PEERS", "%v", err)
	}
	allow, err := peerpolicy.ParseList(c.AllowPeers)
	if err != nil {
		bad("TURN_ALLOW_PEERS", "%v", err)
	}
	s.policy = peerpolicy.New(deny, allow)
	positive := map[string]int{
		"TURN_USER_QUOTA":      c.UserQuota,
		"TURN_MAX_ALLOCATIONS": c.MaxAllocations,
		"TURN_MAX_PERMISSIONS": c.MaxPermissions,
	}
	for _, name := range []string{"TURN_USER_QUOTA", "TURN_MAX_ALLOCATIONS", "TURN_MAX_PERMISSIONS"} {
		if positive[name] < 1 {
			bad(name, "%d must be at least 1", positive[name])
		}
	}
	if c.MaxBitrate < 0 {
		bad("TURN_MAX_BITRATE", "%d must be 0 (no cap) or more", c.MaxBitrate)
	}
	if c.UDPSockets < 0 || c.UDPSockets > 256 {
		bad("TURN_UDP_SOCKETS", "%d must be between 0 (one per CPU) and 256", c.UDPSockets)
	}
	if c.SocketBuffer < 0 {
		bad("TURN_SOCKET_BUFFER", "%d must not be negative", c.SocketBuffer)
	}
	if c.AuthTimeout <= 0 {
		bad("TURN_AUTH_TIMEOUT", "must be positive")
	}
	if c.CredsvcURL == "" {
		bad("CREDSVC_URL", "must not be empty")
	}
	if err := checkProxyAddr(c.ProxyProtocolAddr); err != nil {
		bad("TURN_PROXY_PROTOCOL_ADDR", "%v", err)
	}
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile == "":
	case c.TLSCertFile == "" || c.TLSKeyFile == "":
		bad("TURN_TLS_CERT", "TURN_TLS_CERT and TURN_TLS_KEY must be set together")
	default:
		if c.TLSPort < 0 || c.TLSPort > 65535 {
			bad("TURN_TLS_PORT", "%d is not a port number", c.TLSPort)
		}
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			bad("TURN_TLS_CERT", "cannot load the certificate and key: %v", err)
		} else {
			s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	}
	return s, errors.Join(errs...)
}

// ownRelayIP reports whether ip is the address relays are advertised or bound on, so that two
// callers relayed by this server reach each other even when that address is private. Loopback
// is the exception: it is never another caller's relay outside a local demo, and those opt in
// with TURN_ALLOW_PEERS like any loopback peer.
func (s settings) ownRelayIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return false
	}
	ext, _ := netip.AddrFromSlice(s.externalIP)
	lis, _ := netip.AddrFromSlice(s.listenIP)
	return ip == ext.Unmap() || (ip == lis.Unmap() && !lis.IsUnspecified())
}
