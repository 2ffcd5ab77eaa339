package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/webrtc/v4"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testetcd"
	"github.com/tuturu/tuturu/internal/testnet"
)

// revocationCutBound is a correctness bound, not a performance figure: the issue asks for a
// relay cut within 1 s of a revocation on any replica; the test logs the measured time and
// fails only past several times that, so a loaded 2-CPU machine does not make it flaky.
const revocationCutBound = 5 * time.Second

// TestClusterOnLoopback: every service a process of its own, on loopback. An embedded etcd;
// two credsvc replicas on it; two turnsvc (127.0.0.1 and 127.0.0.3), each following one
// replica; two roomsvc shards; two gateways listing both shards in different orders.
//
// Wiring: credsvc replica i hands out turnsvc i's address as its TURN host (in Kubernetes every
// replica would hand out the same TURN name; on loopback the difference shows which replica
// issued a credential). Shard i and turnsvc i reach credsvc through a failover proxy that stands
// for the Kubernetes Service (loopback has no load balancer) and prefers replica i: while both
// replicas live, shard i's members are relayed by turnsvc i, and turnsvc i follows replica i's
// revocations; once replica i is dead, both reach the other replica.
//
// It proves, with relay-only pion peers whose two members join through different gateways:
//  1. calls meet on the shard the PIN hashes to, are relayed by that shard's turnsvc, and carry
//     data-channel messages;
//  2. a member whose socket dropped resumes through the other gateway, and an ICE restart's offer
//     and answer go through, with no peer-left;
//  3. revoking a participant through replica 0 cuts its relay on turnsvc 1 (which follows replica
//     1: the revocation goes through etcd) within revocationCutBound, and nothing flows after;
//  4. roomsvc shard 1 killed (SIGKILL): the gateways report it down, and the call on shard 0
//     still signals (an ICE restart) and carries messages;
//  5. credsvc replica 0 killed (SIGKILL): a new call on shard 0 joins and relays (its turnsvc
//     validates the fresh credentials through the Service, replica 1 now), turnsvc 0's
//     revocation feed comes back through replica 1, and shard 0's first call renews its
//     credentials (issued by replica 1, naming turnsvc 1) and moves to turnsvc 1 by an ICE restart.
func TestClusterOnLoopback(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := startCluster(t)
	pins := c.pinsByShard(2)
	t.Logf("set-up: etcd and 8 service processes serving, PINs placed, %v after the start", time.Since(start).Round(time.Millisecond))

	// 1. One call per shard, alice on gateway 0 and bob on gateway 1.
	var calls [2]*chaosCall
	for s := range 2 {
		calls[s] = newChaosCall(t, "shard-"+strconv.Itoa(s), true, pins[s][0], c.gws[0], c.gws[1])
		c.expectOn(calls[s], s, s)
		exchange(t, calls[s].aDC, calls[s].bDC, "across gateways", 5)
	}
	t.Logf("1: a relayed call on each shard, %v after the start", time.Since(start).Round(time.Millisecond))

	// 2. Bob (gateway 1) drops his socket and resumes through gateway 0.
	call := calls[0]
	call.b.dropSocket()
	waitFor(t, 5*time.Second, "bob held on shard 0", func() bool {
		return memberStateOn(t, c.shardURL[0], c.admin, call.pin, call.b.info.ParticipantID) == roomv1.MemberState_MEMBER_STATE_HELD
	})
	call.b.s = c.gws[0] // where its resume dials
	call.resume(t, call.b)
	c.restartAndExchange(call, "the resume through the other gateway")
	noPeerLeft(t, call)
	t.Logf("2: resumed through the other gateway, %v after the start", time.Since(start).Round(time.Millisecond))

	// 3. Revoked through replica 0; the relay is on turnsvc 1, which follows replica 1.
	victim := calls[1].a.info.ParticipantID
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	revokedAt := time.Now()
	_, err := c.credAdm[0].RevokeParticipant(ctx, connect.NewRequest(&credv1.RevokeParticipantRequest{ParticipantId: victim, Reason: "cluster test"}))
	cancel()
	if err != nil {
		t.Fatalf("RevokeParticipant on replica 0: %v", err)
	}
	waitFor(t, revocationCutBound, "turnsvc 1 to close the revoked member's relay", func() bool {
		return len(c.turns[1].allocations(t, victim)) == 0
	})
	t.Logf("3: revoked through credsvc replica 0, the relay on turnsvc 1 closed %v later (bound %v)",
		time.Since(revokedAt).Round(time.Millisecond), revocationCutBound)
	expectNothingFlows(t, calls[1], time.Second)

	// 4. Shard 1 crashes; shard 0's call signals on.
	c.shards[1].kill()
	c.shardDown[1] = true
	for _, g := range c.gws {
		waitFor(t, 10*time.Second, "readyz to name shard 1 down", func() bool {
			code, body := httpGet(t, g.GatewayURL+"/readyz")
			return code == http.StatusOK && strings.Contains(body, "roomsvc "+c.shards[1].addr+" down\n")
		})
	}
	c.restartAndExchange(call, "roomsvc shard 1 killed")
	noPeerLeft(t, call)
	t.Logf("4: shard 1 killed, shard 0's call restarted ICE, %v after the start", time.Since(start).Round(time.Millisecond))

	// 5. Replica 0 crashes. An enter may take credentials roomsvc issued ahead (its pool), from
	// either replica: whichever turnsvc they name validates them through its Service, replica 1
	// now. A renewal (a resume) is issued by replica 1 and names turnsvc 1.
	c.creds[0].kill()
	after := newChaosCall(t, "after-replica-0", true, pins[0][1], c.gws[1], c.gws[0])
	relay := c.relayOf(after.a)
	c.expectOn(after, 0, relay)
	exchange(t, after.aDC, after.bDC, "replica 0 down", 5)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, 15*time.Second, "turnsvc 0's revocation feed back through replica 1", func() bool { return c.turns[0].feedConnected(ctx, t) })
	t.Logf("5: credsvc replica 0 killed, a new call on shard 0 relayed by turnsvc %d, %v after the start", relay, time.Since(start).Round(time.Millisecond))
	call.resume(t, call.b)
	call.resume(t, call.a)
	c.restartAndExchange(call, "renewals with replica 0 down")
	c.expectRelayedBy(call, 1)
	noPeerLeft(t, call)
	t.Logf("5: shard 0's call renewed its credentials through replica 1 and moved to turnsvc 1; the whole test took %v", time.Since(start).Round(time.Millisecond))
}

// cluster is the processes of TestClusterOnLoopback; index i of each pair goes with i of the
// others (replica i, turnsvc i, shard i preferring replica i).
type cluster struct {
	t               *testing.T
	admin, internal string
	creds           [2]*proc
	credAdm         [2]credv1connect.CredentialAdminServiceClient
	turns           [2]*turnStack
	shards          [2]*proc
	shardURL        [2]string
	shardDown       [2]bool
	gws             [2]*stack
	all             []*proc
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	tuturuBinary(t) // built before anything runs
	c := &cluster{t: t, admin: platform.RandomToken(24), internal: platform.RandomToken(24)}
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, c.all)
		}
	})
	endpoint := testetcd.Start(t).Endpoint
	adminOpt := connect.WithInterceptors(platform.NewSendToken(c.admin))
	// 127.0.0.2 is the UDP echo peer's (internal/testnet).
	turnIPs := [2]string{"127.0.0.1", "127.0.0.3"}
	var ports [2]string
	for i, ip := range turnIPs {
		ports[i] = strconv.Itoa(testnet.FreeTURNPort(t))
		env := credsvcEtcdEnv(t, endpoint, c.internal, c.admin)
		env["TURN_HOST"], env["TURN_PORT"] = ip, ports[i]
		c.creds[i] = c.start("credsvc", env)
		c.credAdm[i] = credv1connect.NewCredentialAdminServiceClient(platform.NewH2CClient(), "http://"+c.creds[i].addr, adminOpt)
	}
	var services [2]string
	for i, ip := range turnIPs {
		services[i] = "http://" + startFailover(t, c.creds[i].addr, c.creds[1-i].addr)
		// Relays on loopback reach each other only with loopback peers allowed; the
		// own-address guard lets a relay reach its own turnsvc's relay ports on ip.
		ts := c.start("turnsvc", map[string]string{
			"TURNSVC_ADDR": "127.0.0.1:0", "TURN_LISTEN_HOST": ip, "EXTERNAL_IP": ip, "TURN_PORT": ports[i],
			"TURN_ALLOW_PEERS": "127.0.0.0/8", "TURN_DRAIN_TIMEOUT": "1s", "CREDSVC_URL": services[i],
			"INTERNAL_TOKEN": c.internal, "ADMIN_TOKEN": c.admin, "DATA_DIR": t.TempDir(), "LOG_LEVEL": "debug",
		})
		c.turns[i] = &turnStack{udp: ip + ":" + ports[i],
			admin: turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), "http://"+ts.addr, adminOpt)}
		env := roomsvcEnv(t, &stack{CredsvcURL: services[i], InternalToken: c.internal, AdminToken: c.admin}, "127.0.0.1:0")
		c.shards[i] = c.start("roomsvc", env)
		c.shardURL[i] = "http://" + c.shards[i].addr
	}
	lists := [2]string{c.shardURL[0] + "," + c.shardURL[1], c.shardURL[1] + "," + c.shardURL[0]}
	for i, list := range lists {
		env := gatewayEnv(t, &stack{RoomsvcURL: list, CredsvcURL: services[i], InternalToken: c.internal, AdminToken: c.admin})
		// Every join of this test comes from 127.0.0.1.
		env["WS_JOINS_PER_MINUTE"], env["WS_JOIN_BURST"], env["LOG_LEVEL"] = "1000", "1000", "info"
		g := c.start("gateway", env)
		c.gws[i] = &stack{GatewayURL: "http://" + g.addr, AdminToken: c.admin, InternalToken: c.internal}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, ts := range c.turns {
		waitFor(t, 10*time.Second, "turnsvc "+strconv.Itoa(i)+"'s revocation feed connected", func() bool { return ts.feedConnected(ctx, t) })
	}
	return c
}

func (c *cluster) start(service string, env map[string]string) *proc {
	c.t.Helper()
	p := startProc(c.t, service, "", env)
	c.all = append(c.all, p)
	return p
}

// pinsByShard finds n PINs for each shard: each PIN is joined once through gateway 0, the shard
// that holds its room noted, and the room left. A PIN lands on a given shard with probability
// 1/2: 60 tries without n=2 on each is below 2^-50.
func (c *cluster) pinsByShard(n int) [2][]string {
	t := c.t
	t.Helper()
	var pins [2][]string
	for i := 0; i < 60 && (len(pins[0]) < n || len(pins[1]) < n); i++ {
		pin := nextPIN()
		w := dialWS(t, c.gws[0], "probe", nil)
		w.join(pin)
		shard := -1
		for s, u := range c.shardURL {
			if pinRoom(t, u, c.admin, pin) != nil {
				shard = s
			}
		}
		if shard < 0 {
			t.Fatalf("PIN %s: no shard holds the room", pin)
		}
		w.send(`{"type":"leave"}`)
		waitFor(t, 5*time.Second, "the probe's room gone", func() bool { return pinRoom(t, c.shardURL[shard], c.admin, pin) == nil })
		_ = w.c.CloseNow()
		if len(pins[shard]) < n {
			pins[shard] = append(pins[shard], pin)
		}
	}
	if len(pins[0]) < n || len(pins[1]) < n {
		t.Fatalf("60 PINs did not give %d on each shard: %v", n, pins)
	}
	return pins
}

// expectOn checks that call's room is on shard with both members, on no other live shard, and
// that both members are configured with turnsvc turn and hold a relay there.
func (c *cluster) expectOn(call *chaosCall, shard, turn int) {
	t := c.t
	t.Helper()
	for s, u := range c.shardURL {
		if c.shardDown[s] {
			continue
		}
		room := pinRoom(t, u, c.admin, call.pin)
		if s == shard && (room == nil || len(room.GetMembers()) != 2) {
			t.Fatalf("%s: shard %d does not hold the room with both members: %v", call.name, s, room)
		}
		if s != shard && room != nil {
			t.Fatalf("%s: shard %d holds a room for PIN %s too", call.name, s, call.pin)
		}
	}
	c.expectRelayedBy(call, turn)
}

// expectRelayedBy checks that both members are configured with turnsvc turn (the TURN host
// their credentials came with) and hold a relay there.
func (c *cluster) expectRelayedBy(call *chaosCall, turn int) {
	t := c.t
	t.Helper()
	for _, p := range []*callPeer{call.a, call.b} {
		if got := c.relayOf(p); got != turn {
			t.Fatalf("%s: configured with turnsvc %d, want %d", p.name, got, turn)
		}
		if len(c.turns[turn].allocations(t, p.info.ParticipantID)) == 0 {
			t.Fatalf("%s: no relay on turnsvc %d", p.name, turn)
		}
	}
}

// relayOf is the turnsvc p's peer connection is configured with: the credsvc replica that
// issued its latest credentials hands out that turnsvc's address.
func (c *cluster) relayOf(p *callPeer) int {
	c.t.Helper()
	for _, s := range p.pc.GetConfiguration().ICEServers {
		for _, u := range s.URLs {
			host, ok := strings.CutPrefix(strings.SplitN(u, "?", 2)[0], "turn:")
			for i, ts := range c.turns {
				if ok && host == ts.udp {
					return i
				}
			}
		}
	}
	c.t.Fatalf("%s: no turn: URL of either turnsvc in %+v", p.name, p.pc.GetConfiguration().ICEServers)
	return -1
}

// restartAndExchange has the call restart ICE through the gateways and checks that messages
// flow on the new path.
func (c *cluster) restartAndExchange(call *chaosCall, after string) {
	c.t.Helper()
	call.restartICE(c.t, 10*time.Second, after)
	waitFor(c.t, 10*time.Second, call.name+": ICE connected after the restart", func() bool {
		return iceUp(call.a.pc) && iceUp(call.b.pc)
	})
	call.expectPath(c.t)
	exchange(c.t, call.aDC, call.bDC, "after "+after, 5)
}

func noPeerLeft(t *testing.T, call *chaosCall) {
	t.Helper()
	for _, p := range []*callPeer{call.a, call.b} {
		select {
		case err := <-p.errs:
			t.Fatal(err)
		case <-p.peerLeft:
			t.Fatalf("%s was told peer-left", p.name)
		default:
		}
	}
}

// expectNothingFlows sends a message each way and fails if one arrives within d.
func expectNothingFlows(t *testing.T, call *chaosCall, d time.Duration) {
	t.Helper()
	got := make(chan string, 2)
	for _, dc := range []*webrtc.DataChannel{call.aDC, call.bDC} {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case got <- string(m.Data):
			default:
			}
		})
		_ = dc.SendText("after the revocation") // may fail once SCTP gives up; either way nothing may arrive
	}
	select {
	case m := <-got:
		t.Fatalf("%s: %q arrived after the revocation", call.name, m)
	case <-time.After(d):
	}
}

// startFailover runs a TCP proxy standing for the Kubernetes Service in front of the credsvc
// replicas (loopback has no load balancer): each connection goes to the first of backends that
// accepts it, so a client's connections move to the other replica once its first is dead. It
// returns the proxy's address and stops it when the test ends.
func startFailover(t *testing.T, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failover proxy: %v", err)
	}
	f := &failover{backends: backends, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(in)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		f.closed = true
		for c := range f.conns {
			_ = c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return ln.Addr().String()
}

type failover struct {
	backends []string
	wg       sync.WaitGroup
	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{}
}

// track registers c to be closed when the proxy stops; false (c closed) once it has.
func (f *failover) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		_ = c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *failover) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	_ = c.Close()
}

// serve pipes in to the first backend that accepts, until either side ends.
func (f *failover) serve(in net.Conn) {
	if !f.track(in) {
		return
	}
	defer f.untrack(in)
	var out net.Conn
	for _, b := range f.backends {
		if c, err := net.DialTimeout("tcp", b, time.Second); err == nil {
			out = c
			break
		}
	}
	if out == nil || !f.track(out) {
		return
	}
	defer f.untrack(out)
	done := make(chan struct{}, 2)
	for _, p := range [][2]net.Conn{{out, in}, {in, out}} {
		go func() {
			_, _ = io.Copy(p[0], p[1])
			done <- struct{}{}
		}()
	}
	<-done // closing both ends the other copy
}
