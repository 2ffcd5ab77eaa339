package gateway

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/tuturu/tuturu/gateway/edge"
	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the gateway.
type Config struct {
	platform.Base
	// Addr is where the public HTTP server listens.
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests pass port 0).
	Listener net.Listener
	// RoomsvcURL and CredsvcURL are the internal services' base URLs; RoomsvcURL may be a
	// comma-separated list of roomsvc shards (shards.go).
	RoomsvcURL, CredsvcURL string
	// ForceRelay makes clients use TURN only (iceTransportPolicy "relay").
	ForceRelay bool
	// Limits bound what one client may ask of the gateway.
	Limits Limits
	// AllowedOrigins lists the Origins (scheme://host[:port]) allowed to open /ws, besides the
	// request's own host. "*" allows any Origin.
	AllowedOrigins []string
	// PingInterval is how often the server pings an idle socket; PingTimeout how long it waits
	// for the pong. Together they bound how long a dead socket holds a session.
	PingInterval, PingTimeout time.Duration
	// RPCTimeout bounds a join or resume, credentials included.
	RPCTimeout time.Duration
	// JoinTimeout is how long a socket may stay open without a join (join-pin, resume or
	// new): pings alone would keep it forever. It is then closed with JOIN_TIMEOUT and 1008.
	JoinTimeout time.Duration
	// SocketQueue bounds the events waiting to be written to one socket (SLOW_CONSUMER past
	// it); 0 means 1024. Not a setting: tests lower it to reach the bound quickly.
	SocketQueue int
	// Flutter configures the Flutter dialect's lobby and /api/turn (flutter_config.go).
	Flutter FlutterConfig
	// Edge serves HTTPS on 443 (SNI-routed: app, TURN over TLS, cover page) when its DOMAIN
	// is set; its Base and App are filled by New.
	Edge edge.Config
}

// Limits are the per-client limits of the browser dialect. Zero values mean the defaults.
type Limits struct {
	// MaxMessageBytes is the largest WebSocket message accepted (close 1009 beyond it).
	MaxMessageBytes int
	// MessagesPerSecond and MessageBurst shape a token bucket per connection.
	MessagesPerSecond float64
	MessageBurst      int
	// JoinsPerMinute and JoinBurst shape a token bucket of joins (and resumes) per client address.
	JoinsPerMinute float64
	JoinBurst      int
	// JoinBackoffMax caps the penalty that grows with each refused join from one address.
	JoinBackoffMax time.Duration
	// MaxSocketsPerAddress caps the /ws sockets one client address holds open at once, joined
	// or not; the next socket gets error TOO_MANY_SOCKETS and close 1013 (socket_cap.go).
	MaxSocketsPerAddress int
	// MaxSockets caps the gateway's open /ws sockets; 0 means what its open-file limit allows
	// after a reserve (capacity.go). The next socket gets SERVER_FULL and close 1013.
	MaxSockets int
}

// Defaults for the limits. A call set-up is about 15 messages from each side, most of them ICE
// candidates sent in a burst, so the burst must hold a whole set-up; steady traffic after that
// is a ping every few seconds.
const (
	defaultMaxMessageBytes   = 64 << 10
	defaultMessagesPerSecond = 20
	defaultMessageBurst      = 60
	// A person retrying a mistyped PIN joins a few times a minute; a PIN scanner needs many.
	defaultJoinsPerMinute = 20
	defaultJoinBurst      = 10
	defaultJoinBackoffMax = 5 * time.Minute
	// Clients that connect first and join after the camera prompt (the original web client
	// does) take as long as the person takes: minutes. Unjoined sockets are bounded per address
	// by MaxSocketsPerAddress, so a generous timeout costs little.
	defaultJoinTimeout = 10 * time.Minute
	// A 1:1 call holds two sockets; 64 lets 32 calls (or 64 people, each in a call with
	// someone outside) run at once from one public address, which is more than a large office
	// behind one NAT holds, while one address can pin at most ~5 MiB of socket state.
	defaultMaxSocketsPerAddress = 64
)

// Bind registers the gateway's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "gateway-addr", "GATEWAY_ADDR", ":8080", "public HTTP listen address")
	v.String(&c.RoomsvcURL, "roomsvc-url", "ROOMSVC_URL", "http://127.0.0.1:9101", "room service base URL, or a comma-separated list of shards that rooms are spread over by PIN and lobby name (every gateway must list the same ones)")
	v.String(&c.CredsvcURL, "credsvc-url", "CREDSVC_URL", "http://127.0.0.1:9102", "credential service base URL")
	v.Bool(&c.ForceRelay, "force-relay", "FORCE_RELAY", false, "make clients relay all media through TURN")
	v.Func("allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated Origins (https://example.com) allowed to open /ws besides the site's own host; * allows any", func(s string) error {
		origins := platform.SplitList(s)
		for _, o := range origins {
			if err := validOrigin(o); err != nil {
				return err
			}
		}
		c.AllowedOrigins = origins
		return nil
	})
	v.PositiveInt(&c.Limits.MaxMessageBytes, "ws-max-message-bytes", "WS_MAX_MESSAGE_BYTES", defaultMaxMessageBytes, "largest WebSocket message accepted; larger ones close the socket with 1009")
	v.Func("ws-messages-per-second", "WS_MESSAGES_PER_SECOND", fmt.Sprint(defaultMessagesPerSecond), "sustained messages per second per connection", parsePositiveFloat(&c.Limits.MessagesPerSecond))
	v.PositiveInt(&c.Limits.MessageBurst, "ws-message-burst", "WS_MESSAGE_BURST", defaultMessageBurst, "messages a connection may send at once before the per-second rate applies")
	v.Func("ws-joins-per-minute", "WS_JOINS_PER_MINUTE", fmt.Sprint(defaultJoinsPerMinute), "sustained joins and resumes per minute per client address", parsePositiveFloat(&c.Limits.JoinsPerMinute))
	v.PositiveInt(&c.Limits.JoinBurst, "ws-join-burst", "WS_JOIN_BURST", defaultJoinBurst, "joins one address may make at once before the per-minute rate applies")
	v.Duration(&c.Limits.JoinBackoffMax, "ws-join-backoff-max", "WS_JOIN_BACKOFF_MAX", defaultJoinBackoffMax, "longest wait imposed on an address that keeps joining too fast")
	v.PositiveInt(&c.Limits.MaxSocketsPerAddress, "ws-max-sockets-per-address", "WS_MAX_SOCKETS_PER_ADDRESS", defaultMaxSocketsPerAddress, "open /ws sockets one client address may hold at once, joined or not; more get error TOO_MANY_SOCKETS and close 1013")
	v.Func("ws-max-sockets", "WS_MAX_SOCKETS", "0", "open /ws sockets this gateway holds at once; 0 means its open-file limit less a reserve (max(100, limit/20)); more get error SERVER_FULL and close 1013", func(s string) error {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 0 {
			return fmt.Errorf("%q is not a number of sockets (0 for the open-file limit)", s)
		}
		c.Limits.MaxSockets = n
		return nil
	})
	// 20 s keeps NAT and proxy mappings alive; 10 s for the pong finds a dead socket within 30 s.
	v.Duration(&c.PingInterval, "ws-ping-interval", "WS_PING_INTERVAL", 20*time.Second, "interval of WebSocket pings on idle sockets")
	v.Duration(&c.PingTimeout, "ws-ping-timeout", "WS_PING_TIMEOUT", 10*time.Second, "how long to wait for a pong before dropping the socket")
	v.Func("ws-join-timeout", "WS_JOIN_TIMEOUT", defaultJoinTimeout.String(), "how long a /ws socket may stay open before it joins (join-pin, resume or new); then it is closed with 1008", parsePositiveDuration(&c.JoinTimeout))
	v.Duration(&c.RPCTimeout, "gateway-rpc-timeout", "GATEWAY_RPC_TIMEOUT", 10*time.Second, "bound on a join or resume, TURN credentials included")
	c.Flutter.Bind(v)
	c.Edge.Bind(v)
}

func parsePositiveFloat(p *float64) func(string) error {
	return func(s string) error {
		var f float64
		if _, err := fmt.Sscan(strings.TrimSpace(s), &f); err != nil || f <= 0 {
			return fmt.Errorf("%q is not a positive number", s)
		}
		*p = f
		return nil
	}
}

func parsePositiveDuration(p *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 30s", s)
		}
		*p = d
		return nil
	}
}

// validOrigin accepts "*" or scheme://host[:port] with nothing after it.
func validOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not an origin such as https://example.com or http://localhost:8080", o)
	}
	return nil
}

// withDefaults fills unset values, so a Config built in code (tests) behaves like a bound one.
func (c Config) withDefaults() Config {
	l := &c.Limits
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = defaultMaxMessageBytes
	}
	if l.MessagesPerSecond <= 0 {
		l.MessagesPerSecond = defaultMessagesPerSecond
	}
	if l.MessageBurst <= 0 {
		l.MessageBurst = defaultMessageBurst
	}
	if l.JoinsPerMinute <= 0 {
		l.JoinsPerMinute = defaultJoinsPerMinute
	}
	if l.JoinBurst <= 0 {
		l.JoinBurst = defaultJoinBurst
	}
	if l.JoinBackoffMax <= 0 {
		l.JoinBackoffMax = defaultJoinBackoffMax
	}
	if l.MaxSocketsPerAddress <= 0 {
		l.MaxSocketsPerAddress = defaultMaxSocketsPerAddress
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = defaultJoinTimeout
	}
	if c.SocketQueue <= 0 {
		c.SocketQueue = defaultSocketQueue
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 10 * time.Second
	}
	c.Flutter = c.Flutter.withDefaults()
	return c
}
