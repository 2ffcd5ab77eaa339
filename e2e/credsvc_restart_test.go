package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"flag"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/gateway"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/roomsvc"
	"github.com/tuturu/tuturu/turnsvc"
)

// TestCredsvcKilledLosesNothing: credsvc runs as a process of its own on a fixed address with
// its bbolt file in DATA_DIR; turnsvc, roomsvc and the gateway run in-process in front of it.
// credsvc is killed with SIGKILL in the middle of calls and started again on the same address
// and data directory. It proves:
//
//  1. no secret is lost: ListSecrets is the same before and after, and credentials issued
//     before the kill (to members who joined through the gateway and hold a live allocation)
//     are VALID with the same long-term key and allocate on a turnsvc started after the
//     restart (empty cache, so credsvc itself is asked);
//  2. a revocation stored before the kill is in force after it: ListRevocations still has it
//     and its credential allocates neither on the turnsvc that lived through the outage nor on
//     the fresh one;
//  3. members who leave while credsvc is down (through the gateway, and through a Sessions
//     stream) are revoked once it is back: roomsvc's queue delivers them, and turnsvc closes
//     the allocations the departed still held;
//  4. while credsvc is down, turnsvc keeps serving what it had confirmed: a live allocation
//     relays, takes a new permission, and the same credential allocates again; a credential
//     it never saw is refused until credsvc is back;
//  5. a join during the outage takes credentials from roomsvc's pool (issued before the kill)
//     and succeeds; once the pool is used up, a join fails at once with the error frame
//     SERVICE_UNAVAILABLE and close 1011 (credential issues are not queued across an outage:
//     two attempts, then a clear error); joins work again after the restart.
func TestCredsvcKilledLosesNothing(t *testing.T) {
	t.Parallel()
	tuturuBinary(t) // built before anything runs, so the first credsvc start is quick
	adminToken, internalToken := platform.RandomToken(24), platform.RandomToken(24)
	credAddr := testnet.FreeAddr(t)
	credURL := "http://" + credAddr
	credDir := t.TempDir()
	svcs := &inProcServices{t: t}
	t.Cleanup(svcs.stopAll) // if the first credsvc never starts

	// turnsvc first: credsvc's TURN URLs need its port. It starts with credsvc absent and
	// connects its revocation feed when credsvc comes up.
	turn := newTurnsvcAt(t, credURL, internalToken, adminToken, "turnsvc")
	ts, err := turnsvc.New(turn)
	if err != nil {
		t.Fatalf("turnsvc: %v", err)
	}
	svcs.start("turnsvc", ts.Run)
	credEnv := map[string]string{
		"CREDSVC_ADDR":   credAddr,
		"DATA_DIR":       credDir,
		"INTERNAL_TOKEN": internalToken,
		"ADMIN_TOKEN":    adminToken,
		// What turnsvc actually listens on, as bindTurn does for the in-process stack.
		"TURN_HOST": ts.TURNAddr().IP.String(),
		"TURN_PORT": strconv.Itoa(ts.TURNAddr().Port),
	}
	cred := startProc(t, "credsvc", "", credEnv)
	// Stop the in-process services before the credsvc process is killed by its cleanup, so
	// roomsvc's last revocations still have somewhere to go.
	t.Cleanup(svcs.stopAll)

	gw, room := defaultGatewayRoomsvc(t)
	roomLn, roomURL := loopbackListener(t)
	room.Listener, room.CredsvcURL = roomLn, credURL
	room.Base = platform.Base{DataDir: t.TempDir(), AdminToken: adminToken, InternalToken: internalToken,
		Log: platform.NewLogger(testWriter{t, "roomsvc"}, logLevel())}
	rs, err := roomsvc.New(room)
	if err != nil {
		t.Fatalf("roomsvc: %v", err)
	}
	svcs.start("roomsvc", rs.Run)
	gwLn, gwURL := loopbackListener(t)
	gw.Listener, gw.RoomsvcURL, gw.CredsvcURL = gwLn, roomURL, credURL
	gw.Base = platform.Base{DataDir: t.TempDir(), AdminToken: adminToken, InternalToken: internalToken,
		Log: platform.NewLogger(testWriter{t, "gateway"}, logLevel())}
	gw.Limits.JoinBurst, gw.Limits.JoinsPerMinute = 100, 1000 // every join of this test is from 127.0.0.1
	g, err := gateway.New(gw)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	svcs.start("gateway", g.Run)
	s := &stack{GatewayURL: gwURL, RoomsvcURL: roomURL, CredsvcURL: credURL, TurnsvcURL: "http://" + ts.Addr(),
		AdminToken: adminToken, InternalToken: internalToken, DataDir: credDir}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	admin := connect.WithInterceptors(platform.NewSendToken(adminToken))
	internal := connect.WithInterceptors(platform.NewSendToken(internalToken))
	credAdmin := credv1connect.NewCredentialAdminServiceClient(platform.NewH2CClient(), credURL, admin)
	credInternal := credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), credURL, internal)
	roomAdmin := roomv1connect.NewRoomAdminServiceClient(platform.NewH2CClient(), roomURL, admin)
	turn1 := &turnStack{stack: s, cred: credInternal, udp: ts.TURNAddr().String(),
		admin: turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), s.TurnsvcURL, admin)}
	feed := func(ts *turnStack) bool { return ts.feedConnected(ctx, t) }
	waitFor(t, 10*time.Second, "turnsvc's revocation feed connected to credsvc", func() bool { return feed(turn1) })
	peer := testnet.UDPEchoPeer(t).LocalAddr()
	// Sockets still open when the gateway stops would hold its stop for a close handshake
	// nobody answers; the clients close them first.
	var sockets []*wsClient
	defer func() {
		for _, w := range sockets {
			_ = w.c.CloseNow()
		}
	}()

	// ---- Before the kill ----
	secretsBefore := listSecrets(ctx, t, credAdmin)

	// alice and bob stay in their call through the outage, each with a live relay.
	alice, bob, aliceInfo, bobInfo := pairWithInfo(t, s, nextPIN())
	sockets = append(sockets, alice, bob)
	aliceU, aliceP := turnCredential(t, turn1, aliceInfo)
	aliceClient := turn1.client(t, "udp", aliceU, aliceP)
	aliceRelay := allocateAndEcho(t, aliceClient, peer, "alice before the kill")
	bobU, bobP := turnCredential(t, turn1, bobInfo)
	allocateAndEcho(t, turn1.client(t, "udp", bobU, bobP), peer, "bob before the kill")

	// carol and dave hold relays and will leave while credsvc is down.
	carol, dave, carolInfo, daveInfo := pairWithInfo(t, s, nextPIN())
	sockets = append(sockets, carol, dave)
	carolU, carolP := turnCredential(t, turn1, carolInfo)
	carolRelay := allocateAndEcho(t, turn1.client(t, "udp", carolU, carolP), peer, "carol before the kill")
	daveU, daveP := turnCredential(t, turn1, daveInfo)
	daveRelay := allocateAndEcho(t, turn1.client(t, "udp", daveU, daveP), peer, "dave before the kill")

	// eve leaves before the kill: her revocation is stored, and her relay closed.
	eve := dialWS(t, s, "eve", nil)
	sockets = append(sockets, eve)
	eveInfo := eve.join(nextPIN())
	eveU, eveP := turnCredential(t, turn1, eveInfo)
	allocateAndEcho(t, turn1.client(t, "udp", eveU, eveP), peer, "eve before leaving")
	eve.send(`{"type":"leave"}`)
	took := waitFor(t, 10*time.Second, "eve revoked in credsvc", func() bool {
		return revoked(ctx, t, credAdmin)[eveInfo.ParticipantID]
	})
	waitFor(t, 5*time.Second, "turnsvc closed eve's relay", func() bool { return len(turn1.allocations(t, eveInfo.ParticipantID)) == 0 })
	t.Logf("before the kill: eve's departure stored in credsvc within %v", took)

	// ---- credsvc killed ----
	departuresBefore := departures(ctx, t, roomAdmin)
	killed := time.Now()
	cred.kill()
	lost := waitFor(t, 5*time.Second, "turnsvc to notice credsvc gone", func() bool { return !feed(turn1) })
	t.Logf("credsvc SIGKILLed; turnsvc's revocation feed reported lost after %v", lost)

	// (4) turnsvc keeps serving what it had confirmed.
	if err := testnet.RelayRoundTrip(aliceRelay, peer, "alice while credsvc is down", 3*time.Second); err != nil {
		t.Fatalf("alice's confirmed allocation stopped relaying while credsvc is down: %v", err)
	}
	if err := aliceClient.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: 9}); err != nil {
		t.Errorf("a new permission on alice's confirmed allocation was refused while credsvc is down: %v", err)
	}
	allocateAndEcho(t, turn1.client(t, "udp", aliceU, aliceP), peer, "alice's second allocation while credsvc is down")

	// (3) carol and dave leave while credsvc is down; roomsvc takes both departures (dave
	// hears of carol's) and queues their revocations.
	carol.send(`{"type":"leave"}`)
	dave.expect("peer-left")
	dave.send(`{"type":"leave"}`)

	// (5) frank joins during the outage: roomsvc's pool, issued before the kill, serves him.
	frank := dialWS(t, s, "frank", nil)
	sockets = append(sockets, frank)
	joinStart := time.Now()
	frankInfo := frank.join(nextPIN())
	t.Logf("join during the outage answered from roomsvc's credential pool in %v", time.Since(joinStart))
	frankU, frankP := turnCredential(t, turn1, frankInfo)
	if _, err := turn1.client(t, "udp", frankU, frankP).Allocate(); err == nil {
		t.Error("turnsvc allocated for a credential it never confirmed while credsvc was down")
	}

	// Use up the pool through roomsvc's Sessions stream, as a gateway would: enter many
	// members at once; those with pooled credentials leave again at once (more departures
	// while credsvc is down), the others are refused.
	pooled, refusedEnters, closeDrain := drainPool(ctx, t, roomURL, internalToken, 96)
	if len(pooled) == 0 || refusedEnters == 0 {
		t.Fatalf("enters during the outage: %d with pooled credentials, %d refused; want some of each", len(pooled), refusedEnters)
	}
	t.Logf("the pool covered %d more enters during the outage; %d were refused as credentials_unavailable", len(pooled), refusedEnters)

	// With the pool used up, a join through the gateway fails at once, and says why.
	grace := dialWS(t, s, "grace", nil)
	joinStart = time.Now()
	grace.send(`{"type":"join-pin","pin":"` + nextPIN() + `"}`)
	grace.expectError("Could not get connection details (TURN credentials): please try again shortly", "SERVICE_UNAVAILABLE")
	grace.expectClose(websocket.StatusInternalError)
	t.Logf("join with the pool used up refused with SERVICE_UNAVAILABLE after %v", time.Since(joinStart))

	// Every departure is taken by roomsvc before credsvc comes back; nothing reached credsvc.
	wantDepartures := departuresBefore + 2 + len(pooled)
	waitFor(t, 5*time.Second, "roomsvc to take every departure made during the outage", func() bool {
		return departures(ctx, t, roomAdmin) >= wantDepartures
	})
	closeDrain()
	for _, p := range []string{carolInfo.ParticipantID, daveInfo.ParticipantID} {
		if len(turn1.allocations(t, p)) != 1 {
			t.Fatalf("%s's relay changed while credsvc was down: %v", p, turn1.allocations(t, p))
		}
	}

	// ---- credsvc restarted on the same address and data ----
	restart := time.Now()
	again := startProc(t, "credsvc", "", credEnv)
	t.Cleanup(svcs.stopAll) // before the new process is killed
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("credsvc before the kill:\n%s\ncredsvc after:\n%s", cred.log(), again.log())
		}
	})
	t.Logf("credsvc was down %v; the new process served %v after it was started",
		restart.Sub(killed).Round(time.Millisecond), time.Since(restart).Round(time.Millisecond))

	// (1) the same secrets, the same credentials.
	if after := listSecrets(ctx, t, credAdmin); after != secretsBefore {
		t.Errorf("ListSecrets changed across the restart:\nbefore %s\nafter  %s", secretsBefore, after)
	}
	for _, c := range [][2]string{{aliceU, aliceP}, {bobU, bobP}, {frankU, frankP}} {
		res, err := credInternal.Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: c[0], Realm: "tuturu"}))
		if err != nil {
			t.Fatalf("Validate after the restart: %v", err)
		}
		key := md5.Sum([]byte(c[0] + ":tuturu:" + c[1]))
		if res.Msg.GetVerdict() != credv1.Verdict_VERDICT_VALID || !bytes.Equal(res.Msg.GetKey(), key[:]) {
			t.Errorf("credential issued before the kill after the restart: %v (key matches: %v)",
				res.Msg.GetVerdict(), bytes.Equal(res.Msg.GetKey(), key[:]))
		}
	}
	// A turnsvc started now has nothing cached: it must ask the restarted credsvc.
	fresh := newTurnsvcAt(t, credURL, internalToken, adminToken, "turnsvc-fresh")
	ts2, err := turnsvc.New(fresh)
	if err != nil {
		t.Fatalf("fresh turnsvc: %v", err)
	}
	svcs.start("turnsvc-fresh", ts2.Run)
	turn2 := &turnStack{stack: s, cred: credInternal, udp: ts2.TURNAddr().String(),
		admin: turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), "http://"+ts2.Addr(), admin)}
	waitFor(t, 10*time.Second, "the fresh turnsvc's revocation feed connected", func() bool { return feed(turn2) })
	allocateAndEcho(t, turn2.client(t, "udp", aliceU, aliceP), peer, "alice's pre-kill credential on a fresh turnsvc")
	allocateAndEcho(t, turn1.client(t, "udp", bobU, bobP), peer, "bob's pre-kill credential after the restart")

	// (2) eve's revocation survived and is in force everywhere.
	if !revoked(ctx, t, credAdmin)[eveInfo.ParticipantID] {
		t.Error("a revocation stored before the kill is missing from ListRevocations after the restart")
	}
	waitFor(t, 15*time.Second, "turnsvc's revocation feed back", func() bool { return feed(turn1) })
	back := time.Since(restart)
	for name, ts := range map[string]*turnStack{"turnsvc": turn1, "fresh turnsvc": turn2} {
		if _, err := ts.client(t, "udp", eveU, eveP).Allocate(); err == nil {
			t.Errorf("%s: eve's revoked credential allocates after the restart", name)
		}
	}

	// (3) the departures of the outage are revoked and their relays closed.
	waitFor(t, 15*time.Second, "departures made during the outage revoked in credsvc", func() bool {
		rev := revoked(ctx, t, credAdmin)
		for _, p := range append([]string{carolInfo.ParticipantID, daveInfo.ParticipantID}, pooled...) {
			if !rev[p] {
				return false
			}
		}
		return true
	})
	t.Logf("after the restart: turnsvc's revocation feed back within %v; the %d departures of the outage in ListRevocations within %v",
		back.Round(time.Millisecond), 2+len(pooled), time.Since(restart).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "turnsvc closed carol's and dave's relays", func() bool {
		return len(turn1.allocations(t, carolInfo.ParticipantID)) == 0 && len(turn1.allocations(t, daveInfo.ParticipantID)) == 0
	})
	t.Logf("turnsvc closed their relays %v after the restart", time.Since(restart).Round(time.Millisecond))
	for name, relay := range map[string]net.PacketConn{"carol": carolRelay, "dave": daveRelay} {
		if err := testnet.RelayRoundTrip(relay, peer, name+" after her revocation", 300*time.Millisecond); err == nil {
			t.Errorf("%s's relay still works after her departure was revoked", name)
		}
	}
	if _, err := turn2.client(t, "udp", carolU, carolP).Allocate(); err == nil {
		t.Error("carol's credential allocates after the revocation was delivered")
	}

	// (4) alice's relay lived through all of it; her call's signaling too.
	if err := testnet.RelayRoundTrip(aliceRelay, peer, "alice after the restart", 3*time.Second); err != nil {
		t.Errorf("alice's relay after the restart: %v", err)
	}
	alice.send(`{"type":"ice-candidate","data":{"candidate":"after credsvc came back"}}`)
	if m := bob.expect("ice-candidate"); !strings.Contains(string(m.Data), "after credsvc came back") {
		t.Errorf("bob got %s", m.raw)
	}
	alice.expectQuiet()
	bob.expectQuiet()

	// (5) frank's pooled credential allocates now that credsvc can confirm it, and joins work.
	waitFor(t, 5*time.Second, "frank's pooled credential allocates after the restart", func() bool {
		_, err := turn1.client(t, "udp", frankU, frankP).Allocate()
		return err == nil
	})
	// turnsvc remembers "credsvc did not answer" for a second (the refused attempt above), so
	// this can take up to that long after the restart.
	t.Logf("frank's pooled credential allocated %v after the restart", time.Since(restart).Round(time.Millisecond))
	joinStart = time.Now()
	heidi, ivan, heidiInfo, _ := pairWithInfo(t, s, nextPIN())
	sockets = append(sockets, heidi, ivan)
	t.Logf("a pair joined %v after the restart (both joins in %v)", time.Since(restart).Round(time.Millisecond), time.Since(joinStart).Round(time.Millisecond))
	heidiU, heidiP := turnCredential(t, turn1, heidiInfo)
	allocateAndEcho(t, turn1.client(t, "udp", heidiU, heidiP), peer, "heidi after the restart")
}

// feedConnected reports whether turnsvc's revocation feed from credsvc is connected.
func (s *turnStack) feedConnected(ctx context.Context, t *testing.T) bool {
	t.Helper()
	res, err := s.admin.GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{}))
	if err != nil {
		t.Fatalf("turnsvc GetStats: %v", err)
	}
	return res.Msg.GetCredsvcConnected()
}

// inProcServices runs services in this process and stops them, newest first, once.
type inProcServices struct {
	t    *testing.T
	mu   sync.Mutex
	list []inProcService
	once sync.Once
}

type inProcService struct {
	name   string
	cancel context.CancelFunc
	done   chan error
}

func (s *inProcServices) start(name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	svc := inProcService{name: name, cancel: cancel, done: make(chan error, 1)}
	go func() { svc.done <- run(ctx) }()
	s.mu.Lock()
	s.list = append(s.list, svc)
	s.mu.Unlock()
}

func (s *inProcServices) stopAll() {
	s.once.Do(func() {
		s.mu.Lock()
		list := s.list
		s.mu.Unlock()
		for i := len(list) - 1; i >= 0; i-- {
			list[i].cancel()
			select {
			case err := <-list[i].done:
				if err != nil {
					s.t.Errorf("%s stopped with error: %v", list[i].name, err)
				}
			case <-time.After(15 * time.Second):
				s.t.Errorf("%s did not stop within 15s", list[i].name)
			}
		}
	})
}

// defaultGatewayRoomsvc are the gateway's and roomsvc's configurations with no flags or
// environment set.
func defaultGatewayRoomsvc(t *testing.T) (gateway.Config, roomsvc.Config) {
	t.Helper()
	var (
		gw   gateway.Config
		room roomsvc.Config
	)
	v := platform.NewVars(flag.NewFlagSet("e2e", flag.ContinueOnError), func(string) string { return "" })
	gw.Bind(v)
	room.Bind(v)
	if err := v.Resolve(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	return gw, room
}

// newTurnsvcAt is the configuration of an in-process turnsvc that asks credsvc at credURL,
// with the stack's test defaults (loopback TURN on ephemeral ports, loopback peers allowed).
func newTurnsvcAt(t *testing.T, credURL, internalToken, adminToken, name string) turnsvc.Config {
	t.Helper()
	var (
		gw   gateway.Config
		room roomsvc.Config
		cred credsvc.Config
		turn turnsvc.Config
	)
	v := platform.NewVars(flag.NewFlagSet("e2e", flag.ContinueOnError), func(string) string { return "" })
	turn.Bind(v)
	if err := v.Resolve(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	applyStackDefaults(&gw, &room, &cred, &turn)
	turn.Listener, _ = loopbackListener(t)
	turn.CredsvcURL = credURL
	turn.Base = platform.Base{DataDir: t.TempDir(), AdminToken: adminToken, InternalToken: internalToken,
		Log: platform.NewLogger(testWriter{t, name}, logLevel())}
	return turn
}

func loopbackListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln, "http://" + ln.Addr().String()
}

// turnCredential is the member's TURN username and password from its join answer, whose
// turn: URL must name the turnsvc the test runs.
func turnCredential(t *testing.T, ts *turnStack, info joinInfo) (username, password string) {
	t.Helper()
	for _, s := range info.ICEServers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") && !strings.Contains(u, "transport=tcp") {
				if host := strings.TrimPrefix(strings.SplitN(u, "?", 2)[0], "turn:"); host != ts.udp {
					t.Fatalf("turn URL %s does not name turnsvc at %s", u, ts.udp)
				}
				if s.Username == "" || s.Credential == "" {
					t.Fatalf("turn URL %s without a credential", u)
				}
				return s.Username, s.Credential
			}
		}
	}
	t.Fatalf("no turn: UDP URL in the join answer of %s", info.ParticipantID)
	return "", ""
}

// pairWithInfo is joinedPair that also returns both join answers.
func pairWithInfo(t *testing.T, s *stack, pin string) (a, b *wsClient, ai, bi joinInfo) {
	t.Helper()
	a = dialWS(t, s, "a", nil)
	ai = a.join(pin)
	b = dialWS(t, s, "b", nil)
	bi = b.join(pin)
	a.expect("peer-joined")
	return a, b, ai, bi
}

// allocateAndEcho allocates a relay with c and proves it relays to peer.
func allocateAndEcho(t *testing.T, c interface {
	Allocate() (net.PacketConn, error)
}, peer net.Addr, what string) net.PacketConn {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("%s: Allocate: %v", what, err)
	}
	if err := testnet.RelayRoundTrip(relay, peer, what, 3*time.Second); err != nil {
		t.Fatalf("%s: relay: %v", what, err)
	}
	return relay
}

// listSecrets is credsvc's keyring as one comparable string: ids, states and creation times.
func listSecrets(ctx context.Context, t *testing.T, c credv1connect.CredentialAdminServiceClient) string {
	t.Helper()
	res, err := c.ListSecrets(ctx, connect.NewRequest(&credv1.ListSecretsRequest{}))
	if err != nil {
		t.Fatalf("ListSecrets: %v", err)
	}
	if len(res.Msg.GetSecrets()) == 0 {
		t.Fatal("ListSecrets: no secret")
	}
	var b strings.Builder
	for _, s := range res.Msg.GetSecrets() {
		b.WriteString(s.GetId() + " " + s.GetState().String() + " " + s.GetCreatedAt().AsTime().Format(time.RFC3339Nano) + "; ")
	}
	return b.String()
}

// revoked is the set of participants credsvc lists as revoked.
func revoked(ctx context.Context, t *testing.T, c credv1connect.CredentialAdminServiceClient) map[string]bool {
	t.Helper()
	res, err := c.ListRevocations(ctx, connect.NewRequest(&credv1.ListRevocationsRequest{}))
	if err != nil {
		t.Fatalf("ListRevocations: %v", err)
	}
	out := map[string]bool{}
	for _, r := range res.Msg.GetRevocations() {
		out[r.GetParticipantId()] = true
	}
	return out
}

// departures is how many members roomsvc has seen leave for good since it started.
func departures(ctx context.Context, t *testing.T, c roomv1connect.RoomAdminServiceClient) int {
	t.Helper()
	res, err := c.GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{}))
	if err != nil {
		t.Fatalf("roomsvc GetStats: %v", err)
	}
	n := 0
	for _, v := range res.Msg.GetDepartures() {
		n += int(v)
	}
	return n
}

// drainPool enters n members on a Sessions stream of its own, each in a room of its own.
// Those who join (with pooled credentials: credsvc is down) leave again at once; the others
// must be refused as credentials_unavailable. It returns the participant ids of those who
// joined and how many were refused.
// The stream stays open (closing it would detach members whose leave is still in flight) until
// the returned func, or the test's end.
func drainPool(ctx context.Context, t *testing.T, roomURL, internalToken string, n int) (left []string, refused int, closeStream func()) {
	t.Helper()
	rooms := roomv1connect.NewRoomServiceClient(platform.NewH2CClient(), roomURL,
		connect.WithInterceptors(platform.NewSendToken(internalToken)))
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	stream := rooms.Sessions(sctx)
	var once sync.Once
	closeStream = func() { once.Do(func() { _ = stream.CloseRequest(); cancel() }) }
	t.Cleanup(closeStream)
	enter := &roomv1.SessionsRequest{}
	for i := range n {
		enter.Requests = append(enter.Requests, &roomv1.MemberRequest{SessionId: uint64(i + 1),
			Msg: &roomv1.MemberRequest_Enter{Enter: &roomv1.Enter{Room: &roomv1.Enter_Pin{Pin: nextPIN()}}}})
	}
	if err := stream.Send(enter); err != nil {
		t.Fatalf("send enters: %v", err)
	}
	leave := &roomv1.SessionsRequest{}
	for answered := 0; answered < n; {
		res, err := stream.Receive()
		if err != nil {
			t.Fatalf("Sessions: receive after %d answers: %v", answered, err)
		}
		for _, ev := range res.GetEvents() {
			switch {
			case ev.GetJoined() != nil:
				answered++
				left = append(left, ev.GetJoined().GetSelf().GetParticipantId())
				leave.Requests = append(leave.Requests, &roomv1.MemberRequest{SessionId: ev.GetSessionId(),
					Msg: &roomv1.MemberRequest_Leave{Leave: &roomv1.Leave{Reason: roomv1.LeaveReason_LEAVE_REASON_HUNG_UP}}})
			case ev.GetEnded() != nil:
				answered++
				refused++
				if e := ev.GetEnded(); e.GetReason() != "credentials_unavailable" || connect.Code(e.GetCode()) != connect.CodeUnavailable {
					t.Fatalf("enter during the outage refused with %v, want unavailable/credentials_unavailable", e)
				}
			}
		}
	}
	if len(leave.Requests) > 0 {
		if err := stream.Send(leave); err != nil {
			t.Fatalf("send leaves: %v", err)
		}
	}
	return left, refused, closeStream
}
