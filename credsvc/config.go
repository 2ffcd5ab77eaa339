package credsvc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tuturu/tuturu/internal/platform"
)

// Config configures the credential service.
type Config struct {
	platform.Base
	// Addr is where the Connect server listens.
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests pass port 0). New owns it
	// from then on and closes it if it fails.
	Listener net.Listener
	// DBPath is the bbolt file; empty means <DataDir>/credsvc.db.
	DBPath string
	// TurnSecret, when set, is the active TURN secret: at start it replaces a different stored
	// active secret, which keeps verifying until its credentials expire.
	TurnSecret string
	// TTL is the default lifetime of issued TURN credentials.
	TTL time.Duration
	// MaxTTL caps requested lifetimes; participant revocations last this long.
	MaxTTL time.Duration
	// STUNServers are handed to clients before the TURN entries.
	STUNServers []string
	// TurnHost is the host (name or IP) put in the TURN URLs handed to clients.
	TurnHost string
	// TurnPort is the TURN UDP/TCP port in those URLs.
	TurnPort int
	// TurnUDPPort, when set, is the port of the UDP URL instead of TurnPort: for a NAT or load
	// balancer that forwards TURN over UDP on another port than TCP.
	TurnUDPPort int
	// TurnsPort adds a turns: (TURN over TLS) URL on that port; 0 leaves it out. It is not
	// turnsvc's TURN_TLS_PORT: TLS may be served by turnsvc (5349) or by the edge (443).
	TurnsPort int
	// TurnsHost is the host name in the turns: URL; empty means TurnHost. Behind the edge it
	// is t.<DOMAIN>, the name its certificate is for.
	TurnsHost string
	// SweepInterval is how often expired revocations are forgotten and old secrets retired.
	SweepInterval time.Duration
	// Etcd, when its Endpoints are set, keeps the keyring and the revocations in etcd instead
	// of DBPath, shared by every replica.
	Etcd EtcdConfig
	// Now is the clock; nil means time.Now. Tests set it to move time forward.
	Now func() time.Time
}

// EtcdConfig says how to reach etcd.
type EtcdConfig struct {
	// Endpoints are the etcd client URLs (http(s)://host:port); none means bbolt.
	Endpoints []string
	// Prefix is put before every key, so that several deployments can share one cluster.
	Prefix string
	// DialTimeout bounds connecting to an endpoint.
	DialTimeout time.Duration
	// CAFile verifies the servers' certificates (https endpoints); empty means the system pool.
	CAFile string
	// CertFile and KeyFile are a client certificate, for clusters that ask for one.
	CertFile, KeyFile string
	// Username and Password authenticate with etcd's own users, when it has auth enabled.
	Username, Password string
}

// Names of the variables, used in validation errors.
const (
	envTurnSecret = "TURN_SECRET (-turn-secret)"
	envTTL        = "TURN_TTL (-turn-ttl)"
	envMaxTTL     = "TURN_MAX_TTL (-turn-max-ttl)"
	envSTUN       = "STUN_SERVERS (-stun-servers)"
	envTurnHost   = "TURN_HOST (-turn-host)"
	envTurnPort   = "TURN_PORT (-turn-port)"
	envTurnsPort  = "TURNS_PORT (-turns-port)"
	envTurnUDPURL = "TURN_UDP_URL_PORT (-turn-udp-url-port)"
	envTurnsHost  = "TURNS_HOST (-turns-host)"
	envSweep      = "CREDSVC_SWEEP_INTERVAL (-credsvc-sweep-interval)"
	envDB         = "CREDSVC_DB (-credsvc-db)"
	envEtcd       = "CREDSVC_ETCD_ENDPOINTS (-credsvc-etcd-endpoints)"
	envEtcdPrefix = "CREDSVC_ETCD_PREFIX (-credsvc-etcd-prefix)"
	envEtcdDial   = "CREDSVC_ETCD_DIAL_TIMEOUT (-credsvc-etcd-dial-timeout)"
	envEtcdCA     = "CREDSVC_ETCD_CA_FILE (-credsvc-etcd-ca-file)"
	envEtcdCert   = "CREDSVC_ETCD_CERT_FILE (-credsvc-etcd-cert-file)"
	envEtcdKey    = "CREDSVC_ETCD_KEY_FILE (-credsvc-etcd-key-file)"
	envEtcdUser   = "CREDSVC_ETCD_USERNAME (-credsvc-etcd-username)"
	envEtcdPass   = "CREDSVC_ETCD_PASSWORD (-credsvc-etcd-password)"
)

// defaultEtcdPrefix is where credsvc keeps its keys in etcd.
const defaultEtcdPrefix = "/tuturu/credsvc/"

// minSecretLen is the shortest TURN_SECRET accepted: shorter ones are guessable offline from
// any issued password.
const minSecretLen = 32

// Bind registers the credential service's flags and environment variables.
func (c *Config) Bind(v *platform.Vars) {
	v.String(&c.Addr, "credsvc-addr", "CREDSVC_ADDR", "127.0.0.1:9102", "credential service listen address")
	v.String(&c.DBPath, "credsvc-db", "CREDSVC_DB", "", "credential database (bbolt) file; <data-dir>/credsvc.db when empty")
	v.String(&c.TurnSecret, "turn-secret", "TURN_SECRET", "", "initial TURN shared secret (>= 32 characters); generated when empty")
	v.Duration(&c.TTL, "turn-ttl", "TURN_TTL", 4*time.Hour, "lifetime of issued TURN credentials")
	// 24 h: a call longer than a day can renew; longer-lived credentials are a liability.
	v.Duration(&c.MaxTTL, "turn-max-ttl", "TURN_MAX_TTL", 24*time.Hour, "longest TURN credential lifetime a caller may ask for")
	v.List(&c.STUNServers, "stun-servers", "STUN_SERVERS", "", "comma-separated STUN URLs handed to clients")
	v.String(&c.TurnHost, "turn-host", "TURN_HOST", "127.0.0.1", "host name or IP in the TURN URLs handed to clients")
	v.Port(&c.TurnPort, "turn-port", "TURN_PORT", 3478, "TURN UDP/TCP port")
	v.Int(&c.TurnUDPPort, "turn-udp-url-port", "TURN_UDP_URL_PORT", 0, "port of the turn: UDP URL handed to clients when UDP is forwarded on another port than TCP; 0 = TURN_PORT")
	// Its own name: turnsvc's TURN_TLS_PORT is where it listens, which clients may not reach.
	v.Int(&c.TurnsPort, "turns-port", "TURNS_PORT", 0, "port of the turns: (TURN over TLS) URL handed to clients, e.g. 5349 or 443; 0 = no turns: URL")
	v.String(&c.TurnsHost, "turns-host", "TURNS_HOST", "", "host name in the turns: URL (the name its certificate is for, e.g. t.<DOMAIN> behind the edge); TURN_HOST when empty")
	// A minute keeps the revocation list short without measurable cost.
	v.Duration(&c.SweepInterval, "credsvc-sweep-interval", "CREDSVC_SWEEP_INTERVAL", time.Minute, "how often expired revocations and secrets are swept")
	v.List(&c.Etcd.Endpoints, "credsvc-etcd-endpoints", "CREDSVC_ETCD_ENDPOINTS", "", "comma-separated etcd client URLs; when set, secrets and revocations live in etcd (shared by every credsvc replica) instead of CREDSVC_DB")
	v.String(&c.Etcd.Prefix, "credsvc-etcd-prefix", "CREDSVC_ETCD_PREFIX", defaultEtcdPrefix, "prefix of credsvc's keys in etcd")
	v.Duration(&c.Etcd.DialTimeout, "credsvc-etcd-dial-timeout", "CREDSVC_ETCD_DIAL_TIMEOUT", 5*time.Second, "how long connecting to an etcd endpoint may take")
	v.String(&c.Etcd.CAFile, "credsvc-etcd-ca-file", "CREDSVC_ETCD_CA_FILE", "", "CA certificate (PEM) that verifies etcd's servers; the system pool when empty")
	v.String(&c.Etcd.CertFile, "credsvc-etcd-cert-file", "CREDSVC_ETCD_CERT_FILE", "", "client certificate (PEM) for etcd; with CREDSVC_ETCD_KEY_FILE")
	v.String(&c.Etcd.KeyFile, "credsvc-etcd-key-file", "CREDSVC_ETCD_KEY_FILE", "", "client key (PEM) for etcd; with CREDSVC_ETCD_CERT_FILE")
	v.String(&c.Etcd.Username, "credsvc-etcd-username", "CREDSVC_ETCD_USERNAME", "", "etcd user, when etcd has authentication enabled")
	v.String(&c.Etcd.Password, "credsvc-etcd-password", "CREDSVC_ETCD_PASSWORD", "", "password of CREDSVC_ETCD_USERNAME")
}

// dbPath is where the database lives.
func (c *Config) dbPath() string {
	if c.DBPath != "" {
		return c.DBPath
	}
	return filepath.Join(c.DataDir, "credsvc.db")
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// check validates the configuration and fills defaults for zero values, so that a Config built
// in code without Bind works. Errors name the variable.
func (c *Config) check() error {
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.TurnSecret != "" && len(c.TurnSecret) < minSecretLen {
		// Never echo the secret, only its length.
		fail(envTurnSecret, "must be at least %d characters (got %d)", minSecretLen, len(c.TurnSecret))
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 24 * time.Hour
	}
	if c.TTL == 0 {
		c.TTL = min(4*time.Hour, c.MaxTTL)
	}
	if c.MaxTTL < time.Minute {
		fail(envMaxTTL, "must be at least 1m (got %s)", c.MaxTTL)
	}
	if c.TTL < time.Minute || c.TTL > c.MaxTTL {
		fail(envTTL, "must be between 1m and TURN_MAX_TTL (%s) (got %s)", c.MaxTTL, c.TTL)
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Minute
	}
	if c.SweepInterval < 0 {
		fail(envSweep, "must be positive (got %s)", c.SweepInterval)
	}
	if strings.TrimSpace(c.TurnHost) == "" || strings.ContainsAny(c.TurnHost, " /?#@") {
		fail(envTurnHost, "must be a host name or IP address (got %q)", c.TurnHost)
	}
	if c.TurnPort < 1 || c.TurnPort > 65535 {
		fail(envTurnPort, "must be a port number 1-65535 (got %d)", c.TurnPort)
	}
	if strings.ContainsAny(c.TurnsHost, " /?#@") {
		fail(envTurnsHost, "must be a host name (got %q)", c.TurnsHost)
	}
	if c.TurnUDPPort < 0 || c.TurnUDPPort > 65535 {
		fail(envTurnUDPURL, "must be a port number 1-65535, or 0 for TURN_PORT (got %d)", c.TurnUDPPort)
	}
	if c.TurnsPort < 0 || c.TurnsPort > 65535 {
		fail(envTurnsPort, "must be a port number 1-65535, or 0 for none (got %d)", c.TurnsPort)
	}
	errs = append(errs, c.Etcd.check(c.DBPath != "")...)
	stun := make([]string, 0, len(c.STUNServers))
	for _, u := range c.STUNServers {
		if u, err := stunURL(u); err != nil {
			fail(envSTUN, "%v", err)
		} else {
			stun = append(stun, u)
		}
	}
	c.STUNServers = stun
	return errors.Join(errs...)
}

// stunURL accepts stun:/stuns: URLs and bare host[:port], to which it adds "stun:".
func stunURL(u string) (string, error) {
	bad := fmt.Errorf("%q is not a STUN URL such as stun:stun.example.org:3478", u)
	if rest, ok := strings.CutPrefix(u, "stun:"); ok {
		if rest == "" {
			return "", bad
		}
		return u, nil
	}
	if rest, ok := strings.CutPrefix(u, "stuns:"); ok {
		if rest == "" {
			return "", bad
		}
		return u, nil
	}
	if strings.ContainsAny(u, "/?#@ ") || strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
		return "", bad
	}
	if _, _, err := net.SplitHostPort(u); err != nil && strings.Contains(u, ":") {
		return "", bad
	}
	return "stun:" + u, nil
}

// check validates the etcd settings and fills defaults; withDB says CREDSVC_DB is set too.
func (e *EtcdConfig) check(withDB bool) []error {
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if len(e.Endpoints) == 0 {
		for _, v := range []struct {
			name string
			set  bool
		}{{envEtcdCA, e.CAFile != ""}, {envEtcdCert, e.CertFile != ""}, {envEtcdKey, e.KeyFile != ""}, {envEtcdUser, e.Username != ""}} {
			if v.set {
				fail(v.name, "is set but CREDSVC_ETCD_ENDPOINTS is not: set both, or neither to use bbolt")
			}
		}
		return errs
	}
	if withDB {
		fail(envDB, "is set together with CREDSVC_ETCD_ENDPOINTS: the store is either bbolt (CREDSVC_DB) or etcd, unset one")
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			fail(envEtcd, "%q is not an etcd client URL such as http://etcd-0.etcd:2379", ep)
		}
	}
	if e.Prefix == "" {
		e.Prefix = defaultEtcdPrefix
	}
	if strings.ContainsAny(e.Prefix, " \t\n") {
		fail(envEtcdPrefix, "must not contain spaces (got %q)", e.Prefix)
	}
	if e.DialTimeout == 0 {
		e.DialTimeout = 5 * time.Second
	}
	if e.DialTimeout < 0 {
		fail(envEtcdDial, "must be positive (got %s)", e.DialTimeout)
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		fail(envEtcdCert, "and CREDSVC_ETCD_KEY_FILE go together: set both or neither")
	}
	if e.Password != "" && e.Username == "" {
		fail(envEtcdPass, "is set without CREDSVC_ETCD_USERNAME")
	}
	return errs
}

// clientConfig is the etcd client configuration, with the TLS files read. Errors name the
// variable.
func (e *EtcdConfig) clientConfig() (clientv3.Config, error) {
	cfg := clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: e.DialTimeout,
		Username:    e.Username,
		Password:    e.Password,
	}
	if e.CAFile == "" && e.CertFile == "" {
		return cfg, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", envEtcdCA, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("%s: %s holds no PEM certificate", envEtcdCA, e.CAFile)
		}
	}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return cfg, fmt.Errorf("%s, %s: %w", envEtcdCert, envEtcdKey, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	cfg.TLS = tc
	return cfg, nil
}

// openStore opens the configured store: etcd when endpoints are set, else the bbolt file.
func (c *Config) openStore(log *slog.Logger) (store, error) {
	if len(c.Etcd.Endpoints) == 0 {
		return openStore(c.dbPath())
	}
	ec, err := c.Etcd.clientConfig()
	if err != nil {
		return nil, err
	}
	return openEtcdStore(ec, c.Etcd.Prefix, log)
}
