package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"google.golang.org/protobuf/types/known/durationpb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/turnsvc"
)

// turnStack is a running stack plus what the TURN tests need from it.
type turnStack struct {
	*stack
	cred  credv1connect.CredentialServiceClient
	admin turnv1connect.TurnAdminServiceClient
	udp   string // TURN host:port from the issued turn: URL
}

func startTurnStack(t *testing.T, turnOpt func(*turnsvc.Config)) *turnStack {
	t.Helper()
	s := startStack(t, stackOptions{Turnsvc: turnOpt})
	cred := credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), s.CredsvcURL,
		connect.WithInterceptors(platform.NewSendToken(s.InternalToken)))
	admin := turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), s.TurnsvcURL,
		connect.WithInterceptors(platform.NewSendToken(s.AdminToken)))
	ts := &turnStack{stack: s, cred: cred, admin: admin}
	// the TURN address comes from what credsvc hands out, as a browser would get it
	_, _, urls := ts.issue(t, "probe")
	for _, u := range urls {
		if strings.HasPrefix(u, "turn:") && !strings.Contains(u, "transport=tcp") {
			ts.udp = strings.TrimPrefix(strings.SplitN(u, "?", 2)[0], "turn:")
		}
	}
	if ts.udp == "" {
		t.Fatalf("no turn: UDP URL among %v", urls)
	}
	return ts
}

// issue asks credsvc for a credential for participant.
func (s *turnStack) issue(t *testing.T, participant string) (username, password string, urls []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.cred.Issue(ctx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: participant}))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return res.Msg.GetUsername(), res.Msg.GetPassword(), res.Msg.GetTurnUrls()
}

func (s *turnStack) allocations(t *testing.T, participant string) []*turnv1.Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.admin.ListAllocations(ctx, connect.NewRequest(&turnv1.ListAllocationsRequest{ParticipantId: participant}))
	if err != nil {
		t.Fatalf("ListAllocations: %v", err)
	}
	return res.Msg.GetAllocations()
}

// client is a real pion TURN client over UDP or TCP on loopback.
func (s *turnStack) client(t *testing.T, network, username, password string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.DialTimeout("tcp", s.udp, 5*time.Second) // TCP shares the port
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.udp, TURNServerAddr: s.udp,
		Username: username, Password: password, Realm: "tuturu",
		Conn: conn, RTO: 100 * time.Millisecond, LoggerFactory: quietTURN{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

type quietTURN struct{}

func (quietTURN) NewLogger(scope string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope(scope, logging.LogLevelError, os.Stderr)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestTURNWithIssuedCredentials: credentials from the real credsvc allocate over UDP and TCP and
// relay; wrong, expired, forged and revoked ones are refused; a revocation ends a live
// allocation within 1 s.
func TestTURNWithIssuedCredentials(t *testing.T) {
	t.Parallel()
	s := startTurnStack(t, nil)
	peer := testnet.UDPEchoPeer(t).LocalAddr()
	for _, network := range []string{"udp", "tcp"} {
		t.Run("allocate "+network, func(t *testing.T) {
			participant := "e2e-" + network
			u, p, _ := s.issue(t, participant)
			relay, err := s.client(t, network, u, p).Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if err := testnet.RelayRoundTrip(relay, peer, "through turnsvc", 3*time.Second); err != nil {
				t.Fatalf("relay: %v", err)
			}
			if got := s.allocations(t, participant); len(got) != 1 || got[0].GetProtocol() != network {
				t.Fatalf("ListAllocations = %v", got)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		u, p, _ := s.issue(t, "victim")
		head, rest, _ := strings.Cut(u, ":")
		var expiry int64
		fmt.Sscan(head, &expiry)
		cases := map[string][2]string{
			"wrong password": {u, "bm90IHRoZSBwYXNzd29yZA=="},
			// an attacker moves the expiry forward and keeps the password: the HMAC no longer matches
			"forged expiry": {fmt.Sprintf("%d:%s", expiry+86400, rest), p},
			// an expired username with a correct-looking structure
			"expired":   {fmt.Sprintf("%d:%s", time.Now().Add(-time.Hour).Unix(), rest), p},
			"malformed": {"victim", p},
		}
		for name, c := range cases {
			if _, err := s.client(t, "udp", c[0], c[1]).Allocate(); err == nil {
				t.Errorf("%s: Allocate succeeded", name)
			}
		}
	})

	t.Run("expired, and a live allocation outlives its credential", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.cred.Issue(ctx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: "short", Ttl: durationpb.New(2 * time.Second)}))
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		u, p := res.Msg.GetUsername(), res.Msg.GetPassword()
		live := s.client(t, "udp", u, p)
		relay, err := live.Allocate()
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		time.Sleep(time.Until(res.Msg.GetExpiresAt().AsTime()) + 200*time.Millisecond)
		if _, err := s.client(t, "udp", u, p).Allocate(); err == nil {
			t.Error("expired credential allocated")
		}
		// CreatePermission is authenticated with the expired credential, on the live allocation
		if err := live.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 7), Port: 9}); err != nil {
			t.Errorf("live allocation refused after its credential expired: %v", err)
		}
		if err := testnet.RelayRoundTrip(relay, peer, "after expiry", 3*time.Second); err != nil {
			t.Errorf("relay after expiry: %v", err)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		u, p, _ := s.issue(t, "leaver")
		relay, err := s.client(t, "udp", u, p).Allocate()
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		if err := testnet.RelayRoundTrip(relay, peer, "before", 3*time.Second); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.cred.Revoke(ctx, connect.NewRequest(&credv1.RevokeRequest{
			Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "leaver"}, Reason: "left"})); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		took := waitFor(t, time.Second, "allocation closed after Revoke", func() bool { return len(s.allocations(t, "leaver")) == 0 })
		t.Logf("allocation gone %v after Revoke returned", took)
		if err := testnet.RelayRoundTrip(relay, peer, "after", 300*time.Millisecond); err == nil {
			t.Error("relay still works after revocation")
		}
		if _, err := s.client(t, "udp", u, p).Allocate(); err == nil {
			t.Error("revoked credential allocated again")
		}
	})
}

// TestTURNDenyList: without the test allow-list every reserved address and IPv4-in-IPv6
// encoding is refused at CreatePermission.
func TestTURNDenyList(t *testing.T) {
	t.Parallel()
	s := startTurnStack(t, func(c *turnsvc.Config) { c.AllowPeers = ""; c.MaxPermissions = 100 })
	u, p, _ := s.issue(t, "prober")
	c := s.client(t, "udp", u, p)
	if _, err := c.Allocate(); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	for _, ip := range []string{
		"0.0.0.0", "127.0.0.1", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::",
		"10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.0.1", "192.168.0.1", "100.64.0.1",
		"100.127.0.1", "169.254.169.254", "224.0.0.1", "239.1.2.3", "::1", "fc00::1", "fd00:1::1",
		"fe80::1",
	} {
		if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 80}); err == nil {
			t.Errorf("CreatePermission(%s) accepted", ip)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.admin.GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{}))
	if err != nil || st.Msg.GetPeersDenied() < 20 {
		t.Errorf("GetStats peers_denied = %v, %v", st, err)
	}
}

// TestTURNQuotas: allocations per username and permissions per allocation hold.
func TestTURNQuotas(t *testing.T) {
	t.Parallel()
	s := startTurnStack(t, func(c *turnsvc.Config) { c.UserQuota = 2; c.MaxPermissions = 1 })
	u, p, _ := s.issue(t, "hoarder")
	first := s.client(t, "udp", u, p)
	if _, err := first.Allocate(); err != nil {
		t.Fatalf("Allocate 1: %v", err)
	}
	if _, err := s.client(t, "tcp", u, p).Allocate(); err != nil {
		t.Fatalf("Allocate 2: %v", err)
	}
	if _, err := s.client(t, "udp", u, p).Allocate(); err == nil {
		t.Error("third allocation of one username accepted with TURN_USER_QUOTA=2")
	}
	if err := first.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err != nil {
		t.Fatalf("first permission: %v", err)
	}
	if err := first.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil {
		t.Error("second peer accepted with TURN_MAX_PERMISSIONS=1")
	}
}

// TestGrpcurlAdminRPCs: the pinned grpcurl lists and calls the admin RPCs of credsvc and turnsvc.
func TestGrpcurlAdminRPCs(t *testing.T) {
	t.Parallel()
	s := startTurnStack(t, nil)
	u, p, _ := s.issue(t, "grpcurl-user")
	if _, err := s.client(t, "udp", u, p).Allocate(); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	auth := "authorization: Bearer " + s.AdminToken
	turnHost := mustHost(t, s.TurnsvcURL)
	credHost := mustHost(t, s.CredsvcURL)

	out := grpcurl(t, "-plaintext", turnHost, "list", "tuturu.turn.v1.TurnAdminService")
	for _, rpc := range []string{"ListAllocations", "CloseAllocations", "GetStats"} {
		if !strings.Contains(out, rpc) {
			t.Errorf("grpcurl list turnsvc: %q lacks %s", out, rpc)
		}
	}
	out = grpcurl(t, "-plaintext", "-H", auth, "-d", `{"participant_id":"grpcurl-user"}`, turnHost, "tuturu.turn.v1.TurnAdminService/ListAllocations")
	if !strings.Contains(out, u) || !strings.Contains(out, `"protocol": "udp"`) {
		t.Errorf("grpcurl ListAllocations: %s", out)
	}
	out = grpcurl(t, "-plaintext", "-H", auth, turnHost, "tuturu.turn.v1.TurnAdminService/GetStats")
	if !strings.Contains(out, `"allocations": 1`) || !strings.Contains(out, `"credsvcConnected": true`) {
		t.Errorf("grpcurl GetStats: %s", out)
	}
	out = grpcurl(t, "-plaintext", "-H", auth, "-d", `{"participant_id":"grpcurl-user"}`, turnHost, "tuturu.turn.v1.TurnAdminService/CloseAllocations")
	if !strings.Contains(out, `"closed": 1`) {
		t.Errorf("grpcurl CloseAllocations: %s", out)
	}

	out = grpcurl(t, "-plaintext", credHost, "list", "tuturu.cred.v1.CredentialAdminService")
	for _, rpc := range []string{"RotateSecret", "ListSecrets", "ListRevocations", "RevokeParticipant"} {
		if !strings.Contains(out, rpc) {
			t.Errorf("grpcurl list credsvc: %q lacks %s", out, rpc)
		}
	}
	out = grpcurl(t, "-plaintext", "-H", auth, "-d", `{"participant_id":"grpcurl-user","reason":"admin"}`, credHost, "tuturu.cred.v1.CredentialAdminService/RevokeParticipant")
	if !strings.Contains(out, "grpcurl-user") {
		t.Errorf("grpcurl RevokeParticipant: %s", out)
	}
	out = grpcurl(t, "-plaintext", "-H", auth, credHost, "tuturu.cred.v1.CredentialAdminService/ListRevocations")
	if !strings.Contains(out, "grpcurl-user") {
		t.Errorf("grpcurl ListRevocations: %s", out)
	}
	if _, err := s.client(t, "udp", u, p).Allocate(); err == nil {
		t.Error("credential revoked through grpcurl still allocates")
	}
}

func mustHost(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
