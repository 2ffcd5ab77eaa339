package e2e

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/testnet"
)

// shardedCall is a PIN call whose members joined through different gateways.
type shardedCall struct {
	pin   string
	shard string // base URL of the roomsvc that holds the room
	a, b  *wsClient
	bInfo joinInfo
}

// shardTokenForm is a resume token that names its shard in clear.
var shardTokenForm = regexp.MustCompile(`^[0-9a-f]{8}\.v2\.`)

// TestShardedRoomsAcrossGateways: three roomsvc shards (the stack's and two more) behind two
// gateways that list them in different orders. Calls whose members join through different
// gateways meet in one room on one shard and signal; a member whose socket dropped resumes
// through the other gateway; one shard stopped (gracefully: its members are held, not ended)
// ends only its calls, with SERVICE_UNAVAILABLE once the re-attach window has passed,
// while a call on another shard keeps relaying and /readyz stays ready, naming the shard down;
// the shard started again takes its PINs back.
func TestShardedRoomsAcrossGateways(t *testing.T) {
	t.Parallel() // mostly waits out the gateways' 25 s re-attach window; its own servers and ports
	s := startStack(t, stackOptions{})
	r2, r2URL := startExtraRoomsvc(t, s, "127.0.0.1:0")
	r3, r3URL := startExtraRoomsvc(t, s, "127.0.0.1:0")
	shards := []string{s.RoomsvcURL, r2URL, r3URL}
	stoppable := map[string]*background{r2URL: r2, r3URL: r3}
	// Calls are opened until the test has two on different shards, one of them stoppable:
	// joins past the default burst must not be refused.
	tweak := func(c *gateway.Config) { c.Limits.JoinBurst = 100 }
	gwA := startGatewayFor(t, s, strings.Join(shards, ","), tweak)
	gwB := startGatewayFor(t, s, r3URL+", "+r2URL+" ,"+s.RoomsvcURL+"/", tweak)

	victim, survivor := shardedCalls(t, s, shards, gwA, gwB, func(shard string) bool { return stoppable[shard] != nil })

	// bob's socket drops; he resumes through the other gateway.
	_ = survivor.b.c.CloseNow()
	waitFor(t, 5*time.Second, "bob held", func() bool {
		return memberStateOn(t, survivor.shard, s.AdminToken, survivor.pin, survivor.bInfo.ParticipantID) == roomv1.MemberState_MEMBER_STATE_HELD
	})
	bob := dialWS(t, gwA.stack, "bob again", nil)
	bob.send(`{"type":"resume","token":"` + survivor.bInfo.ResumeToken + `"}`)
	if again := bob.joinAnswer("resumed"); again.ParticipantID != survivor.bInfo.ParticipantID || !shardTokenForm.MatchString(again.ResumeToken) {
		t.Fatalf("resumed as %+v", again)
	}
	survivor.b = bob
	relay(survivor, "after the resume")

	stoppable[victim.shard].stop()
	if err := stoppable[victim.shard].wait(); err != nil {
		t.Fatalf("stopping a shard: %v", err)
	}
	relay(survivor, "while a shard is down")
	victimHost := hostOf(t, victim.shard)
	for _, g := range []*stack{gwA.stack, gwB.stack} {
		waitFor(t, 10*time.Second, "readyz to name the shard down", func() bool {
			code, body := httpGet(t, g.GatewayURL+"/readyz")
			return code == 200 && strings.HasPrefix(body, "ready\n") && strings.Contains(body, "roomsvc "+victimHost+" down\n")
		})
	}
	// Held by its gateway for the re-attach window, then told to reconnect.
	for _, w := range []*wsClient{victim.a, victim.b} {
		expectErrorWithin(w, "SERVICE_UNAVAILABLE", 40*time.Second)
		w.expectClose(websocket.StatusServiceRestart)
	}
	relay(survivor, "after the other shard's calls ended")

	// The shard is back (as Kubernetes restarts a pod): its PINs work again.
	startExtraRoomsvc(t, s, victimHost)
	a := dialWS(t, gwA.stack, "alice back", nil)
	b := dialWS(t, gwB.stack, "bob back", nil)
	waitFor(t, 10*time.Second, "the shard back", func() bool {
		_, body := httpGet(t, gwB.GatewayURL+"/readyz")
		return strings.Contains(body, "roomsvc "+victimHost+" up\n")
	})
	a.join(victim.pin)
	b.join(victim.pin)
	a.expect("peer-joined")
	relay(&shardedCall{a: a, b: b}, "on the shard that came back")
	relay(survivor, "at the end")
}

// shardedCalls opens calls across gwA and gwB until it has one on a shard victimOK accepts and
// one on another shard. Each call lands on a given shard with probability 1/n: 30 calls
// without both is below 2^-17 for 2 or 3 shards. The gateways' join burst must allow 30.
func shardedCalls(t *testing.T, s *stack, shards []string, gwA, gwB *extraGateway, victimOK func(string) bool) (victim, survivor *shardedCall) {
	t.Helper()
	var others []*shardedCall
	for i := 0; i < 30 && survivor == nil; i++ {
		c := openShardedCall(t, s, shards, gwA.stack, gwB.stack)
		if victim == nil && victimOK(c.shard) {
			victim = c
		} else {
			others = append(others, c)
		}
		for _, o := range others {
			if victim != nil && o.shard != victim.shard {
				survivor = o
			}
		}
	}
	if survivor == nil {
		t.Fatal("30 calls did not reach two shards")
	}
	return victim, survivor
}

// openShardedCall joins a fresh PIN, alice through gwA and bob through gwB, exchanges an offer
// and an answer, and finds the one shard whose roomsvc holds the room with both.
func openShardedCall(t *testing.T, s *stack, shards []string, gwA, gwB *stack) *shardedCall {
	t.Helper()
	c := &shardedCall{pin: nextPIN(), a: dialWS(t, gwA, "alice", nil), b: dialWS(t, gwB, "bob", nil)}
	if info := c.a.join(c.pin); !shardTokenForm.MatchString(info.ResumeToken) {
		t.Fatalf("token %q does not name its shard", info.ResumeToken)
	}
	c.bInfo = c.b.join(c.pin)
	c.a.expect("peer-joined")
	c.a.send(`{"type":"offer","data":{"type":"offer","sdp":"v=0 ` + c.pin + `"}}`)
	if m := c.b.expect("offer"); !strings.Contains(string(m.Data), c.pin) {
		t.Fatalf("bob got %s", m.raw)
	}
	c.b.send(`{"type":"answer","data":{"type":"answer","sdp":"v=0"}}`)
	c.a.expect("answer")
	for _, u := range shards {
		room := pinRoom(t, u, s.AdminToken, c.pin)
		if room == nil {
			continue
		}
		if c.shard != "" || len(room.GetMembers()) != 2 {
			t.Fatalf("PIN %s: a room on %s with %d members, and on %q", c.pin, u, len(room.GetMembers()), c.shard)
		}
		c.shard = u
	}
	if c.shard == "" {
		t.Fatalf("PIN %s: no shard holds the room", c.pin)
	}
	return c
}

// relay sends a candidate each way and checks it arrives.
func relay(c *shardedCall, what string) {
	c.a.send(`{"type":"ice-candidate","data":{"candidate":"a ` + what + `"}}`)
	if m := c.b.expect("ice-candidate"); !strings.Contains(string(m.Data), "a "+what) {
		c.b.t.Fatalf("%s: got %s", c.b.name, m.raw)
	}
	c.b.send(`{"type":"ice-candidate","data":{"candidate":"b ` + what + `"}}`)
	if m := c.a.expect("ice-candidate"); !strings.Contains(string(m.Data), "b "+what) {
		c.a.t.Fatalf("%s: got %s", c.a.name, m.raw)
	}
}

// expectErrorWithin reads messages until an error with code, within d.
func expectErrorWithin(w *wsClient, code string, d time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		m, err := w.tryRecv(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("%s: no %s error within %v: %v", w.name, code, d, err)
		}
		if m.Type == "error" {
			if m.Code != code {
				w.t.Fatalf("%s: got error %s, want %s", w.name, m.raw, code)
			}
			return
		}
	}
}

func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestShardKilledOnlyItsCallsWait: of two roomsvc shards, one runs as a process and is killed
// (SIGKILL: a crash). Its call's members are held while a call on the other shard keeps
// relaying; started again within the re-attach window on the same address, it rebuilds its
// members from their tokens (which name it) and a signal sent meanwhile arrives. Killed a
// second time and left down, only its members get SERVICE_UNAVAILABLE after the window.
func TestShardKilledOnlyItsCallsWait(t *testing.T) {
	t.Parallel() // mostly waits out the gateway's 25 s re-attach window; its own processes and ports
	s := startStack(t, stackOptions{})
	addr := testnet.FreeAddr(t)
	env := roomsvcEnv(t, s, addr)
	shard := startProc(t, "roomsvc", "", env)
	shards := []string{s.RoomsvcURL, "http://" + addr}
	tweak := func(c *gateway.Config) { c.Limits.JoinBurst = 100 }
	gwA := startGatewayFor(t, s, shards[0]+","+shards[1], tweak)
	gwB := startGatewayFor(t, s, shards[1]+","+shards[0], tweak)
	victim, survivor := shardedCalls(t, s, shards, gwA, gwB, func(u string) bool { return u == shards[1] })

	shard.kill()
	waitFor(t, 10*time.Second, "readyz to name the shard down", func() bool {
		code, body := httpGet(t, gwA.GatewayURL+"/readyz")
		return code == 200 && strings.Contains(body, "roomsvc "+addr+" down\n")
	})
	relay(survivor, "while a shard is down")
	victim.a.send(`{"type":"ice-candidate","data":{"candidate":"while the shard was down"}}`)
	again := startProc(t, "roomsvc", "", env)
	if m := victim.b.expect("ice-candidate"); !strings.Contains(string(m.Data), "while the shard was down") {
		t.Fatalf("bob got %s", m.raw)
	}
	relay(victim, "after the shard came back")
	victim.a.expectQuiet()
	victim.b.expectQuiet()

	again.kill()
	for _, w := range []*wsClient{victim.a, victim.b} {
		expectErrorWithin(w, "SERVICE_UNAVAILABLE", 40*time.Second)
		w.expectClose(websocket.StatusServiceRestart)
	}
	relay(survivor, "after the other shard's calls ended")
	survivor.a.expectQuiet()
	survivor.b.expectQuiet()
}
