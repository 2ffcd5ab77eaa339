package turnsvc

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

const testRealm = "tuturu"

// testCredsvc is a small, real CredentialService over Connect: coturn REST credentials signed
// with one secret, revocations streamed to watchers. It lets turnsvc be tested without
// importing credsvc.
type testCredsvc struct {
	credv1connect.UnimplementedCredentialServiceHandler
	secret []byte
	delay  atomic.Int64 // nanoseconds added to each Validate (settable while serving)
	calls  atomic.Int64

	mu       sync.Mutex
	revUser  map[string]bool
	revPart  map[string]bool
	watchers map[chan *credv1.Revocation]struct{}
}

func newTestCredsvc() *testCredsvc {
	return &testCredsvc{
		secret:   []byte("a test secret of more than thirty-two characters"),
		revUser:  map[string]bool{},
		revPart:  map[string]bool{},
		watchers: map[chan *credv1.Revocation]struct{}{},
	}
}

// testKeyID is the key id in the usernames testCredsvc issues (credsvc's format,
// `<expiry>:<participant>:<key id>`).
const testKeyID = "0a1b2c3d"

// issue returns a username and password for participant valid for ttl (negative: expired).
func (c *testCredsvc) issue(participant string, ttl time.Duration) (string, string) {
	u := fmt.Sprintf("%d:%s:%s", time.Now().Add(ttl).Unix(), participant, testKeyID)
	return u, c.password(u)
}

func (c *testCredsvc) password(username string) string {
	m := hmac.New(sha1.New, c.secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (c *testCredsvc) Validate(ctx context.Context, req *connect.Request[credv1.ValidateRequest]) (*connect.Response[credv1.ValidateResponse], error) {
	c.calls.Add(1)
	if d := time.Duration(c.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	u := req.Msg.GetUsername()
	head, rest, ok := strings.Cut(u, ":")
	participant, kid, ok2 := cutLast(rest, ":")
	ok = ok && ok2 && kid == testKeyID
	secs, err := strconv.ParseInt(head, 10, 64)
	res := &credv1.ValidateResponse{}
	switch {
	case !ok || err != nil:
		res.Verdict = credv1.Verdict_VERDICT_MALFORMED
	case time.Now().After(time.Unix(secs, 0)):
		res.Verdict = credv1.Verdict_VERDICT_EXPIRED
	case strings.HasPrefix(participant, "unknown-secret"):
		res.Verdict = credv1.Verdict_VERDICT_UNKNOWN_SECRET
	default:
		c.mu.Lock()
		revoked := c.revUser[u] || c.revPart[participant]
		c.mu.Unlock()
		res.ParticipantId = participant
		res.ExpiresAt = timestamppb.New(time.Unix(secs, 0))
		if revoked {
			res.Verdict = credv1.Verdict_VERDICT_REVOKED
		} else {
			res.Verdict = credv1.Verdict_VERDICT_VALID
			res.Key = turn.GenerateAuthKey(u, req.Msg.GetRealm(), c.password(u))
		}
	}
	return connect.NewResponse(res), nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func (c *testCredsvc) WatchRevocations(ctx context.Context, _ *connect.Request[credv1.WatchRevocationsRequest], stream *connect.ServerStream[credv1.WatchRevocationsResponse]) error {
	ch := make(chan *credv1.Revocation, 64)
	c.mu.Lock()
	var snap []*credv1.Revocation
	for u := range c.revUser {
		snap = append(snap, &credv1.Revocation{Target: &credv1.Revocation_Username{Username: u}})
	}
	for p := range c.revPart {
		snap = append(snap, &credv1.Revocation{Target: &credv1.Revocation_ParticipantId{ParticipantId: p}})
	}
	c.watchers[ch] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.watchers, ch)
		c.mu.Unlock()
	}()
	if err := stream.Send(&credv1.WatchRevocationsResponse{Revocations: snap, Snapshot: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-ch:
			if err := stream.Send(&credv1.WatchRevocationsResponse{Revocations: []*credv1.Revocation{r}}); err != nil {
				return err
			}
		}
	}
}

// revokeParticipant revokes every credential of participant and tells the watchers.
func (c *testCredsvc) revokeParticipant(participant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revPart[participant] = true
	r := &credv1.Revocation{Target: &credv1.Revocation_ParticipantId{ParticipantId: participant}, Reason: "test"}
	for ch := range c.watchers {
		ch <- r
	}
}

func (c *testCredsvc) watcherCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watchers)
}

// startCredsvc serves c over real Connect on loopback and returns its base URL and a stop func.
func startCredsvc(t testing.TB, c *testCredsvc, token string) (string, func()) {
	t.Helper()
	srv, err := platform.NewServer("testcredsvc", "127.0.0.1:0", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := platform.HandlerOptions(platform.Telemetry{}, token)
	if err != nil {
		t.Fatal(err)
	}
	path, h := credv1connect.NewCredentialServiceHandler(c, opts...)
	srv.Register(credv1connect.CredentialServiceName, path, h)
	srv.StopTimeout = time.Second
	// turnsvc's client may leave a connection the stop never sees idle; the default grace of a
	// second before closing it would be most of a short test's time.
	srv.StopIdleGrace = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("test credsvc did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return "http://" + srv.Addr().String(), stop
}

// testConfig is turnsvc's default configuration adjusted for loopback tests.
func testConfig(t testing.TB, credsvcURL string) Config {
	t.Helper()
	var cfg Config
	v := platform.NewVars(flag.NewFlagSet("test", flag.ContinueOnError), func(string) string { return "" })
	cfg.Bind(v)
	if err := v.Resolve(); err != nil {
		t.Fatal(err)
	}
	level := slog.LevelInfo
	if os.Getenv("TUTURU_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg.Base = platform.Base{
		AdminToken:    "admin-token-for-tests-0123456789",
		InternalToken: "internal-token-for-tests-0123456789",
		Log:           platform.NewLogger(testWriter{t}, level),
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.CredsvcURL = credsvcURL
	cfg.ListenHost = "127.0.0.1"
	cfg.ExternalIP = "127.0.0.1"
	cfg.Port = 0
	cfg.TLSPort = 0
	cfg.AllowPeers = "127.0.0.0/8,::1/128"
	cfg.UDPSockets = 2
	cfg.SocketBuffer = 1 << 20
	// Most tests end with an allocation still live, so each stop waits this out; TestDrain
	// sets its own.
	cfg.DrainTimeout = 200 * time.Millisecond
	cfg.AuthTimeout = time.Second
	return cfg
}

// startTurn builds and runs turnsvc; the returned stop cancels Run and waits for it.
func startTurn(t testing.TB, cfg Config) (*Service, func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(cfg.DrainTimeout + 10*time.Second):
				t.Error("turnsvc did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

// turnClient is a real pion TURN client over UDP or TCP on loopback.
func turnClient(t testing.TB, network string, s *Service, username, password string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	var addr string
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, addr = c, s.TURNAddr().String()
	case "tcp":
		c, err := net.DialTimeout("tcp", s.TURNTCPAddr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn, addr = turn.NewSTUNConn(c), s.TURNTCPAddr().String()
	case "tls":
		pem, err := os.ReadFile(s.cfg.TLSCertFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
		c, err := d.DialContext(context.Background(), "tcp", s.TURNTLSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, addr = turn.NewSTUNConn(c), s.TURNTLSAddr().String()
	default:
		t.Fatalf("network %q", network)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr,
		TURNServerAddr: addr,
		Username:       username,
		Password:       password,
		Realm:          testRealm,
		Conn:           conn,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  quietPion{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

// eventually polls cond every 20ms until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// quietPion keeps the TURN client's own logs out of the test output.
type quietPion struct{}

func (quietPion) NewLogger(string) logging.LeveledLogger {
	l := logging.NewDefaultLeveledLoggerForScope("turnc", logging.LogLevelError, os.Stderr)
	return l
}
