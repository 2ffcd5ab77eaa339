package credsvc_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

const (
	adminToken    = "admin-token-for-credsvc-tests"
	internalToken = "internal-token-for-credsvc-tests"
)

// clock is a settable clock, so that expiry and sweeping are tested without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// node is one running credsvc.
type node struct {
	svc  *credsvc.Service
	url  string
	http *http.Client // shared by the node's clients; its idle connections close before a stop
	stop func()       // stops it and waits; safe to call twice
}

// env is a data directory and clock shared by the credsvc instances a test starts on it.
type env struct {
	t     testing.TB
	dir   string
	clock *clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return &env{t: t, dir: t.TempDir(), clock: newClock()}
}

// config is the configuration a test starts from, listening on 127.0.0.1:0.
func (e *env) config() credsvc.Config {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatalf("listen: %v", err)
	}
	e.t.Cleanup(func() { ln.Close() })
	return credsvc.Config{
		Base: platform.Base{
			DataDir:       e.dir,
			AdminToken:    adminToken,
			InternalToken: internalToken,
			Log:           platform.NewLogger(testWriter{e.t}, -4),
		},
		Listener: ln,
		TTL:      4 * time.Hour,
		MaxTTL:   24 * time.Hour,
		TurnHost: "127.0.0.1",
		TurnPort: 3478,
		Now:      e.clock.Now,
	}
}

// start starts credsvc with the test configuration adjusted by mod.
func (e *env) start(mod func(*credsvc.Config)) *node {
	e.t.Helper()
	cfg := e.config()
	if mod != nil {
		mod(&cfg)
	}
	svc, err := credsvc.New(cfg)
	if err != nil {
		e.t.Fatalf("credsvc.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	// The transport is kept at hand: the client's own CloseIdleConnections does not reach it
	// through the WholeMessages wrapper.
	tr := platform.NewH2CTransport()
	hc := &http.Client{Transport: platform.WholeMessages(tr)}
	stop := func() {
		once.Do(func() {
			// An idle HTTP/2 connection would hold the graceful stop for its idle grace (1 s).
			tr.CloseIdleConnections()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("credsvc stopped with: %v", err)
				}
			case <-time.After(15 * time.Second):
				e.t.Errorf("credsvc did not stop within 15s")
			}
		})
	}
	e.t.Cleanup(stop)
	return &node{svc: svc, url: "http://" + svc.Addr(), http: hc, stop: stop}
}

func (e *env) dbPath() string { return filepath.Join(e.dir, "credsvc.db") }

// protocols are the wire protocols every RPC test runs with.
var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
}

func clientOptions(t testing.TB, token string, extra []connect.ClientOption) []connect.ClientOption {
	t.Helper()
	opts, err := platform.ClientOptions(platform.NoTelemetry(), token)
	if err != nil {
		t.Fatalf("client options: %v", err)
	}
	return append(opts, extra...)
}

func (n *node) internal(t testing.TB, proto []connect.ClientOption) credv1connect.CredentialServiceClient {
	return credv1connect.NewCredentialServiceClient(n.http, n.url, clientOptions(t, internalToken, proto)...)
}

func (n *node) admin(t testing.TB, proto []connect.ClientOption) credv1connect.CredentialAdminServiceClient {
	return credv1connect.NewCredentialAdminServiceClient(n.http, n.url, clientOptions(t, adminToken, proto)...)
}

// ctx is a context bounded by a deadline, so no RPC in a test can hang.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// newInternalClient builds a client that sends token, or no token at all when it is empty.
func (n *node) internalWithToken(token string, proto []connect.ClientOption) credv1connect.CredentialServiceClient {
	return credv1connect.NewCredentialServiceClient(n.http, n.url, rawOptions(token, proto)...)
}

func (n *node) adminWithToken(token string, proto []connect.ClientOption) credv1connect.CredentialAdminServiceClient {
	return credv1connect.NewCredentialAdminServiceClient(n.http, n.url, rawOptions(token, proto)...)
}

func rawOptions(token string, proto []connect.ClientOption) []connect.ClientOption {
	opts := slices.Clone(proto)
	if token != "" {
		opts = append(opts, connect.WithInterceptors(platform.NewSendToken(token)))
	}
	return opts
}
