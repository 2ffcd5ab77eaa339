package turnsvc

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
)

func adminClient(s *Service, token string, opts ...connect.ClientOption) turnv1connect.TurnAdminServiceClient {
	opts = append(opts, connect.WithInterceptors(platform.NewSendToken(token)))
	return turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), "http://"+s.Addr(), opts...)
}

func listAllocs(t *testing.T, s *Service, participant string) []*turnv1.Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := adminClient(s, s.cfg.AdminToken).ListAllocations(ctx, connect.NewRequest(&turnv1.ListAllocationsRequest{ParticipantId: participant}))
	if err != nil {
		t.Fatalf("ListAllocations: %v", err)
	}
	return res.Msg.GetAllocations()
}

func getStats(t *testing.T, s *Service) *turnv1.GetStatsResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := adminClient(s, s.cfg.AdminToken).GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{}))
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	return res.Msg
}

// TestAllocateAndRelay allocates over UDP and TCP with credsvc-validated credentials and relays
// a datagram to a peer and back; the admin RPCs see the allocation and its traffic.
func TestAllocateAndRelay(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	peer := testnet.UDPEchoPeer(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			participant := "p-" + network
			u, p := cred.issue(participant, time.Hour)
			c := turnClient(t, network, s, u, p)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "hello "+network, 3*time.Second); err != nil {
				t.Fatal(err)
			}
			allocs := listAllocs(t, s, participant)
			if len(allocs) != 1 {
				t.Fatalf("ListAllocations: %d allocations, want 1", len(allocs))
			}
			a := allocs[0]
			if a.GetUsername() != u || a.GetProtocol() != network || a.GetRelayAddress() != relay.LocalAddr().String() {
				t.Errorf("allocation = %+v, want username %s protocol %s relay %s", a, u, network, relay.LocalAddr())
			}
			if a.GetPacketsFromClient() < 1 || a.GetPacketsToClient() < 1 || a.GetBytesToClient() < uint64(len("hello "+network)) {
				t.Errorf("traffic not counted: %+v", a)
			}
			if err := relay.Close(); err != nil {
				t.Fatalf("release: %v", err)
			}
			eventually(t, 2*time.Second, "allocation released", func() bool { return len(listAllocs(t, s, participant)) == 0 })
		})
	}
	st := getStats(t, s)
	if st.GetAllocationsCreated() != 2 || st.GetAllocationsClosed()[reasonEnded] != 2 || st.GetPacketsRelayed() < 4 {
		t.Errorf("stats = %+v", st)
	}
	if !st.GetCredsvcConnected() {
		t.Error("credsvc_connected = false with the feed up")
	}
	if st.GetAuthResults()[resultValid] < 2 || st.GetAuthResults()[resultCached] < 1 {
		t.Errorf("auth results = %v", st.GetAuthResults())
	}
}

// TestRefusedCredentials proves that wrong, expired, forged, malformed, unknown-secret and
// revoked credentials get no allocation.
func TestRefusedCredentials(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	good, _ := cred.issue("alice", time.Hour)
	expired, expiredPw := cred.issue("bob", -time.Minute)
	forgedUser := strings.Replace(good, "alice", "mallory", 1)
	unknown, unknownPw := cred.issue("unknown-secret", time.Hour)
	revoked, revokedPw := cred.issue("carol", time.Hour)
	cred.revokeParticipant("carol")
	cases := []struct {
		name, user, pass, result string
		local                    bool // refused from the username alone, without asking credsvc
	}{
		{"wrong password", good, "not-the-password", "", false},
		{"expired", expired, expiredPw, resultExpired, true},
		{"forged (password of another username)", forgedUser, cred.password(good), "", false},
		{"malformed", "alice", "whatever", resultMalformed, true},
		{"unknown secret", unknown, unknownPw, resultUnknownSecret, false},
		{"revoked", revoked, revokedPw, resultRevoked, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := cred.calls.Load()
			cl := turnClient(t, "udp", s, c.user, c.pass)
			if _, err := cl.Allocate(); err == nil {
				t.Fatal("Allocate succeeded")
			}
			if n := cred.calls.Load() - calls; c.local && n != 0 {
				t.Errorf("%d Validate calls for a username refused locally", n)
			}
			if c.result != "" && getStats(t, s).GetAuthResults()[c.result] == 0 {
				t.Errorf("no %q auth result counted: %v", c.result, getStats(t, s).GetAuthResults())
			}
		})
	}
	if n := len(listAllocs(t, s, "")); n != 0 {
		t.Errorf("%d allocations after refusals", n)
	}
}

// TestRevocationClosesAllocation: a revocation on the feed ends a live allocation within 1 s and
// the relay stops carrying traffic; the credential is refused afterwards.
func TestRevocationClosesAllocation(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	eventually(t, 5*time.Second, "revocation feed connected", func() bool { return getStats(t, s).GetCredsvcConnected() })
	peer := testnet.UDPEchoPeer(t)
	u, p := cred.issue("dave", time.Hour)
	c := turnClient(t, "udp", s, u, p)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "before", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cred.revokeParticipant("dave")
	eventually(t, time.Second, "allocation closed after revocation", func() bool { return len(listAllocs(t, s, "dave")) == 0 })
	t.Logf("allocation gone %v after the revocation", time.Since(start))
	if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "after", 300*time.Millisecond); err == nil {
		t.Error("relay still carries traffic after revocation")
	}
	if got := getStats(t, s).GetAllocationsClosed()[reasonRevoked]; got != 1 {
		t.Errorf("closed by revocation = %d, want 1", got)
	}
	again := turnClient(t, "udp", s, u, p)
	if _, err := again.Allocate(); err == nil {
		t.Error("revoked credential allocated again")
	}
}

// TestPeerDenyList: without the loopback exception, every reserved address and IPv4-in-IPv6
// encoding is refused at CreatePermission; a public address is accepted.
func TestPeerDenyList(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.AllowPeers = ""
	cfg.MaxPermissions = 100
	s, _ := startTurn(t, cfg)
	u, p := cred.issue("erin", time.Hour)
	c := turnClient(t, "udp", s, u, p)
	if _, err := c.Allocate(); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	denied := []string{
		"0.0.0.0", "127.0.0.1", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::",
		"10.1.2.3", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.169.254", "224.0.0.251",
		"239.255.255.250", "::1", "fc00::1", "fd00::1", "fe80::1", "ff02::1",
	}
	for _, ip := range denied {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 9})
		if err == nil {
			t.Errorf("CreatePermission(%s) accepted", ip)
		}
	}
	if got := getStats(t, s).GetPeersDenied(); got != uint64(len(denied)) {
		t.Errorf("peers_denied = %d, want %d", got, len(denied))
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("192.0.3.1"), Port: 9}); err != nil {
		t.Errorf("CreatePermission(public address): %v", err)
	}
}

// TestQuotas: allocations per username, permissions per allocation and total allocations.
func TestQuotas(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.UserQuota = 2
	cfg.MaxPermissions = 2
	cfg.MaxAllocations = 3
	s, _ := startTurn(t, cfg)

	u, p := cred.issue("frank", time.Hour)
	var first *stunClient
	for i := range 2 {
		c := turnClient(t, "udp", s, u, p)
		if _, err := c.Allocate(); err != nil {
			t.Fatalf("Allocate %d: %v", i+1, err)
		}
		if first == nil {
			first = &stunClient{c}
		}
	}
	third := turnClient(t, "udp", s, u, p)
	if _, err := third.Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
		t.Errorf("third Allocate of one username: %v, want 486 (quota)", err)
	}

	// permissions: two peers fine, a third refused, a repeat of the first still fine
	for i, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		if err := first.c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 9}); err != nil {
			t.Fatalf("permission %d: %v", i+1, err)
		}
	}
	if err := first.c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("127.0.0.3"), Port: 9}); err == nil {
		t.Error("third peer permission accepted over TURN_MAX_PERMISSIONS=2")
	}
	if err := first.c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}); err != nil {
		t.Errorf("refreshing an existing permission: %v", err)
	}

	// total: one more allocation for another user fits (3), the next does not
	u2, p2 := cred.issue("grace", time.Hour)
	if _, err := turnClient(t, "udp", s, u2, p2).Allocate(); err != nil {
		t.Fatalf("third allocation in total: %v", err)
	}
	if _, err := turnClient(t, "tcp", s, u2, p2).Allocate(); err == nil {
		t.Error("fourth allocation accepted over TURN_MAX_ALLOCATIONS=3")
	}
	if n := len(listAllocs(t, s, "")); n != 3 {
		t.Errorf("%d live allocations, want 3", n)
	}
}

type stunClient struct {
	c interface{ CreatePermission(...net.Addr) error }
}

// TestRefreshAfterExpiry: an allocation made with a valid credential keeps working after the
// credential expires, while a new Allocate with it is refused.
func TestRefreshAfterExpiry(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	peer := testnet.UDPEchoPeer(t)
	u, p := cred.issue("heidi", 2*time.Second)
	c := turnClient(t, "udp", s, u, p)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	exp, _ := usernameExpiry(u)
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	// CreatePermission is authenticated with the (now expired) credential.
	if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("127.0.0.9"), Port: 9}); err != nil {
		t.Fatalf("CreatePermission on a live allocation after expiry: %v", err)
	}
	if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "still relaying", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := turnClient(t, "udp", s, u, p).Allocate(); err == nil {
		t.Error("new Allocate with an expired credential succeeded")
	}
}

// TestCredsvcDown: with credsvc gone, confirmed credentials keep allocating, never-seen ones are
// refused, and the stats say the feed is down.
func TestCredsvcDown(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, stopCred := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.AuthTimeout = 300 * time.Millisecond
	s, _ := startTurn(t, cfg)
	eventually(t, 5*time.Second, "feed connected", func() bool { return getStats(t, s).GetCredsvcConnected() })
	known, knownPw := cred.issue("ivan", time.Hour)
	if _, err := turnClient(t, "udp", s, known, knownPw).Allocate(); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	stopCred()
	eventually(t, 5*time.Second, "feed reported down", func() bool { return !getStats(t, s).GetCredsvcConnected() })
	if _, err := turnClient(t, "udp", s, known, knownPw).Allocate(); err != nil {
		t.Errorf("confirmed credential refused while credsvc is down: %v", err)
	}
	fresh, freshPw := cred.issue("judy", time.Hour)
	if _, err := turnClient(t, "udp", s, fresh, freshPw).Allocate(); err == nil {
		t.Error("never-confirmed credential accepted while credsvc is down")
	}
	if getStats(t, s).GetAuthResults()[resultUnavailable] == 0 {
		t.Error("unavailable not counted")
	}
}

// TestColdMissBoundedWait: when credsvc is slower than TURN_AUTH_TIMEOUT the first Allocate is
// refused rather than holding the read loop, and the answer, cached when it lands, serves the
// retry without another call.
func TestColdMissBoundedWait(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	cred.delay.Store(int64(400 * time.Millisecond))
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.AuthTimeout = 100 * time.Millisecond
	s, _ := startTurn(t, cfg)
	u, p := cred.issue("ken", time.Hour)
	if _, err := turnClient(t, "udp", s, u, p).Allocate(); err == nil {
		t.Fatal("Allocate succeeded although credsvc answered after the auth timeout")
	}
	time.Sleep(500 * time.Millisecond)
	calls := cred.calls.Load()
	if _, err := turnClient(t, "udp", s, u, p).Allocate(); err != nil {
		t.Fatalf("retry after the answer landed: %v", err)
	}
	if cred.calls.Load() != calls {
		t.Error("the retry asked credsvc again instead of using the cached answer")
	}
}

// TestAdminRPCs calls the admin service with Connect and gRPC clients.
func TestAdminRPCs(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	protocols := map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}}
	for name, opts := range protocols {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			admin := adminClient(s, s.cfg.AdminToken, opts...)
			participant := "admin-" + name
			u, p := cred.issue(participant, time.Hour)
			if _, err := turnClient(t, "udp", s, u, p).Allocate(); err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			list, err := admin.ListAllocations(ctx, connect.NewRequest(&turnv1.ListAllocationsRequest{Username: u}))
			if err != nil || len(list.Msg.GetAllocations()) != 1 || list.Msg.GetAllocations()[0].GetParticipantId() != participant {
				t.Fatalf("ListAllocations = %v, %v", list, err)
			}
			_, err = admin.CloseAllocations(ctx, connect.NewRequest(&turnv1.CloseAllocationsRequest{}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("CloseAllocations with no target: %v, want InvalidArgument", err)
			}
			closed, err := admin.CloseAllocations(ctx, connect.NewRequest(&turnv1.CloseAllocationsRequest{
				Target: &turnv1.CloseAllocationsRequest_ParticipantId{ParticipantId: participant}}))
			if err != nil || closed.Msg.GetClosed() != 1 {
				t.Fatalf("CloseAllocations = %v, %v", closed, err)
			}
			if n := len(listAllocs(t, s, participant)); n != 0 {
				t.Errorf("%d allocations after CloseAllocations", n)
			}
			if _, err := admin.GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{})); err != nil {
				t.Errorf("GetStats: %v", err)
			}
			_, err = adminClient(s, "wrong-token-0123456789", opts...).GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{}))
			if connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("wrong token: %v, want PermissionDenied", err)
			}
			noToken := turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), "http://"+s.Addr(), opts...)
			_, err = noToken.GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("no token: %v, want Unauthenticated", err)
			}
		})
	}
	if got := getStats(t, s).GetAllocationsClosed()[reasonAdmin]; got != 2 {
		t.Errorf("closed by admin = %d, want 2", got)
	}
}

// TestDrain: on shutdown new allocations are refused while live ones keep relaying until the
// drain timeout, then everything is closed and Run returns.
func TestDrain(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.DrainTimeout = 1500 * time.Millisecond
	s, stop := startTurn(t, cfg)
	peer := testnet.UDPEchoPeer(t)
	u, p := cred.issue("leo", time.Hour)
	relay, err := turnClient(t, "udp", s, u, p).Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	pending := turnClient(t, "udp", s, u, p)
	stopped := make(chan struct{})
	start := time.Now()
	go func() { stop(); close(stopped) }()
	eventually(t, time.Second, "draining", func() bool { return s.draining.Load() })
	if _, err := pending.Allocate(); err == nil {
		t.Error("Allocate accepted while draining")
	}
	if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "draining", time.Second); err != nil {
		t.Errorf("live allocation stopped relaying during the drain: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain timeout")
	}
	if d := time.Since(start); d < cfg.DrainTimeout {
		t.Errorf("Run returned after %v, before the drain timeout", d)
	}
	if got := s.st.closed[reasonShutdown]; got != 1 {
		t.Errorf("closed at shutdown = %d, want 1", got)
	}
}
