package roomsvc

import (
	"strings"
	"sync"
	"testing"
	"time"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

// Pure tests of the room rules: no network, sessions driven directly.

type goneLog struct {
	mu  sync.Mutex
	ids []string
}

func (g *goneLog) add(id string) {
	g.mu.Lock()
	g.ids = append(g.ids, id)
	g.mu.Unlock()
}

func (g *goneLog) list() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.ids...)
}

func newTestHub(t *testing.T, grace time.Duration) (*hub, *goneLog) {
	t.Helper()
	met, err := newMeters(platform.NoTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	g := &goneLog{}
	return newHub(hubConfig{grace: grace, tokenTTL: time.Hour, queueLimit: 8, gone: g.add, meters: met}), g
}

// conn is one session attached to a member.
type conn struct {
	t    *testing.T
	h    *hub
	m    *member
	sess *session
}

// newSession is a session on a link of its own, whose outbox the test reads.
func newSession() *session {
	sess, _ := newLink(func() {}).open(1)
	return sess
}

// enterAs makes sess a new member with a fresh participant id and no credentials.
func (h *hub) enterAs(e *roomv1.Enter, sess *session) (*member, *rejection) {
	return h.enter(e, sess, newParticipantID(), nil, noCause())
}

// resumeWith checks token and resumes its slot on sess, as a link does.
func (h *hub) resumeWith(token string, sess *session) (*member, *rejection) {
	claims, rej := h.checkResume(token, sess.link.shardTag())
	if rej != nil {
		return nil, rej
	}
	return h.resume(claims, sess, nil, noCause())
}

// ended is the Ended event queued on sess's link, if any.
func ended(sess *session) *roomv1.Ended {
	sess.link.outMu.Lock()
	defer sess.link.outMu.Unlock()
	for _, ev := range sess.link.out {
		if e := ev.GetEnded(); e != nil {
			return e
		}
	}
	return nil
}

func (h *hub) testEnter(t *testing.T, e *roomv1.Enter) *conn {
	t.Helper()
	sess := newSession()
	m, rej := h.enterAs(e, sess)
	if rej != nil {
		t.Fatalf("enter: %v", rej.msg)
	}
	return &conn{t: t, h: h, m: m, sess: sess}
}

func pinEnter(pin string) *roomv1.Enter { return &roomv1.Enter{Room: &roomv1.Enter_Pin{Pin: pin}} }

func lobbyEnter(lobby, peer string) *roomv1.Enter {
	return &roomv1.Enter{Room: &roomv1.Enter_Lobby{Lobby: lobby}, PeerId: peer}
}

// events takes what is queued for the session right now.
func (c *conn) events() []*roomv1.MemberEvent {
	evs, _ := c.sess.link.take(nil)
	return evs
}

func (c *conn) expectNone() {
	c.t.Helper()
	if evs := c.events(); len(evs) != 0 {
		c.t.Fatalf("want no events, got %v", evs)
	}
}

func (c *conn) one() *roomv1.MemberEvent {
	c.t.Helper()
	evs := c.events()
	if len(evs) != 1 {
		c.t.Fatalf("want one event, got %d: %v", len(evs), evs)
	}
	return evs[0]
}

func (c *conn) signal(typ, data, to string) bool {
	return c.h.signal(c.m, c.sess, &roomv1.Signal{Type: typ, Data: []byte(data), To: to}, noCause())
}

func TestHubPINRoles(t *testing.T) {
	h, gone := newTestHub(t, time.Minute)
	a := h.testEnter(t, pinEnter("000001"))
	if j := a.one().GetJoined(); j.Self.Role != roomv1.Role_ROLE_FIRST || j.ResumeToken == "" || j.ResumeGrace.AsDuration() != time.Minute {
		t.Fatalf("joined = %v", j)
	}
	b := h.testEnter(t, pinEnter("000001"))
	if j := b.one().GetJoined(); j.Self.Role != roomv1.Role_ROLE_SECOND || len(j.Peers) != 1 {
		t.Fatalf("joined = %v", j)
	}
	if pj := a.one().GetPeerJoined(); pj == nil || pj.Member.ParticipantId != b.m.id {
		t.Fatalf("first wants peer_joined, got %v", pj)
	}
	b.expectNone() // the second is never told peer_joined

	// Full: refused, and no one is told anything.
	if _, rej := h.enterAs(pinEnter("000001"), newSession()); rej != errRoomFull {
		t.Fatalf("third: %v", rej)
	}
	a.expectNone()
	b.expectNone()

	// Another PIN is another room.
	c := h.testEnter(t, pinEnter("000002"))
	if c.one().GetJoined().RoomId == a.m.room.id {
		t.Fatal("two PINs share a room id")
	}

	// Signals go to the other member only, in order.
	for _, d := range []string{"1", "2", "3"} {
		if !a.signal("ice-candidate", d, "") {
			t.Fatal("signal refused")
		}
	}
	evs := b.events()
	if len(evs) != 3 || string(evs[0].GetSignal().Data) != "1" || string(evs[2].GetSignal().Data) != "3" {
		t.Fatalf("signals = %v", evs)
	}
	a.expectNone()
	c.expectNone()

	// Leave: the other is told once, with the reason; the leaver's session no longer acts.
	if !h.leave(b.m, b.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause()) {
		t.Fatal("leave refused")
	}
	if pl := a.one().GetPeerLeft(); pl == nil || pl.Reason != roomv1.LeaveReason_LEAVE_REASON_HUNG_UP || pl.Member.ParticipantId != b.m.id {
		t.Fatalf("peer_left = %v", pl)
	}
	if h.leave(b.m, b.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause()) {
		t.Fatal("second leave accepted")
	}
	if b.signal("offer", "x", "") {
		t.Fatal("a member who left could still signal")
	}
	a.expectNone()
	if got := gone.list(); len(got) != 1 || got[0] != b.m.id {
		t.Fatalf("gone = %v, want [%s]", got, b.m.id)
	}
	// Alone: a signal has nobody to go to and says so.
	a.signal("offer", "x", "")
	if se := a.one().GetError(); se == nil || se.Code != codeNoPeer {
		t.Fatalf("want NO_PEER, got %v", se)
	}
	// The empty room disappears when its last member leaves.
	h.leave(a.m, a.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
	if _, ok := h.getRoom(a.m.room.id); ok {
		t.Fatal("empty room still listed")
	}
	if st := h.meters.stats(); st.Rooms != 1 || st.Members != 1 || st.Joins != 3 || st.Rejections["room_full"] != 1 {
		t.Fatalf("stats = %v", st)
	}
}

func TestHubRoleAfterFirstLeaves(t *testing.T) {
	h, _ := newTestHub(t, time.Minute)
	a := h.testEnter(t, pinEnter("000003"))
	b := h.testEnter(t, pinEnter("000003"))
	a.events()
	b.events()
	h.leave(a.m, a.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
	b.events()
	// The one who stayed is now first: it is told about the newcomer and makes the offer.
	c := h.testEnter(t, pinEnter("000003"))
	if j := c.one().GetJoined(); j.Self.Role != roomv1.Role_ROLE_SECOND || j.Peers[0].Role != roomv1.Role_ROLE_FIRST {
		t.Fatalf("joined = %v", j)
	}
	if b.one().GetPeerJoined() == nil {
		t.Fatal("remaining member not told about the newcomer")
	}
}

func TestHubValidation(t *testing.T) {
	h, _ := newTestHub(t, time.Minute)
	cases := []struct {
		e    *roomv1.Enter
		want *rejection
	}{
		{pinEnter("12345"), errBadPIN},
		{pinEnter("1234567"), errBadPIN},
		{pinEnter("12345x"), errBadPIN},
		{pinEnter("１２３４５６"), errBadPIN},
		{&roomv1.Enter{}, errNoRoom},
		{lobbyEnter("", "p"), errBadLobby},
		{lobbyEnter(strings.Repeat("l", 65), "p"), errBadLobby},
		{lobbyEnter("bad\nname", "p"), errBadLobby},
		{lobbyEnter("default", ""), errEmptyPeerID},
		{lobbyEnter("default", strings.Repeat("p", 200)), errLongField},
	}
	for _, tc := range cases {
		if _, rej := h.enterAs(tc.e, newSession()); rej != tc.want {
			t.Errorf("enter(%v) = %v, want %v", tc.e, rej, tc.want)
		}
	}
	if st := h.meters.stats(); st.Rooms != 0 || st.Rejections["bad_pin"] != 4 {
		t.Fatalf("stats = %v", st)
	}
}

func TestHubHoldAndResume(t *testing.T) {
	h, gone := newTestHub(t, time.Minute)
	a := h.testEnter(t, pinEnter("000004"))
	b := h.testEnter(t, pinEnter("000004"))
	token := b.one().GetJoined().ResumeToken
	a.events()

	// b's stream drops: a is told nothing; a's signals are queued for b.
	h.detach(b.m, b.sess)
	a.signal("offer", "o", "")
	a.signal("ice-candidate", "c1", "")
	a.expectNone()
	if st := h.meters.stats(); st.HeldMembers != 1 || st.Members != 2 {
		t.Fatalf("stats = %v", st)
	}
	// A third member still cannot take the held slot.
	if _, rej := h.enterAs(pinEnter("000004"), newSession()); rej != errRoomFull {
		t.Fatalf("third: %v", rej)
	}

	// Resume: joined{resumed} first, then the queued signals in order.
	sess := newSession()
	m, rej := h.resumeWith(token, sess)
	if rej != nil || m != b.m {
		t.Fatalf("resume: %v", rej)
	}
	b2 := &conn{t: t, h: h, m: m, sess: sess}
	evs := b2.events()
	if len(evs) != 3 || !evs[0].GetJoined().GetResumed() || evs[1].GetSignal().GetType() != "offer" || string(evs[2].GetSignal().GetData()) != "c1" {
		t.Fatalf("after resume: %v", evs)
	}
	if evs[0].GetJoined().Self.ParticipantId != b.m.id || evs[0].GetJoined().Self.Role != roomv1.Role_ROLE_SECOND {
		t.Fatalf("resumed identity: %v", evs[0].GetJoined())
	}
	newToken := evs[0].GetJoined().ResumeToken
	a.expectNone()
	// The old session is no longer the member.
	if b.signal("answer", "x", "") {
		t.Fatal("old session could still signal")
	}

	// Resuming again while attached ends the current session.
	sess3 := newSession()
	if _, rej := h.resumeWith(newToken, sess3); rej != nil {
		t.Fatalf("second resume: %v", rej)
	}
	if e := ended(sess); e == nil || e.Reason != errResumedElse.outcome {
		t.Fatalf("old session ended with %v, want resumed elsewhere", e)
	}
	a.expectNone()
	if len(gone.list()) != 0 {
		t.Fatalf("gone = %v", gone.list())
	}
	if st := h.meters.stats(); st.HeldMembers != 0 || st.Resumes != 2 {
		t.Fatalf("stats = %v", st)
	}
}

// waitFor polls cond until it holds, within wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock runs afterFunc's calls when the test moves time past them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Duration
	pending []*fakeTimer
}

type fakeTimer struct {
	at      time.Duration
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (c *fakeClock) afterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now + d, f: f}
	c.pending = append(c.pending, t)
	return t
}

// advance moves time by d and runs, outside the lock, what fell due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	keep := c.pending[:0]
	for _, t := range c.pending {
		switch {
		case t.stopped:
		case t.at <= c.now:
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.pending = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func TestHubGraceExpiry(t *testing.T) {
	h, gone := newTestHub(t, 30*time.Second)
	clock := &fakeClock{}
	h.afterFunc = clock.afterFunc
	a := h.testEnter(t, pinEnter("000005"))
	b := h.testEnter(t, pinEnter("000005"))
	token := b.one().GetJoined().ResumeToken
	a.events()
	h.detach(b.m, b.sess)

	clock.advance(29 * time.Second)
	a.expectNone() // still held
	clock.advance(time.Second)
	left := a.events()
	if len(left) != 1 || left[0].GetPeerLeft().GetReason() != roomv1.LeaveReason_LEAVE_REASON_CONNECTION_LOST {
		t.Fatalf("after expiry: %v", left)
	}
	// Told once: nothing more, even after more time.
	clock.advance(time.Minute)
	a.expectNone()
	if _, rej := h.resumeWith(token, newSession()); rej != errSlotGone {
		t.Fatalf("resume after expiry: %v", rej)
	}
	if got := gone.list(); len(got) != 1 || got[0] != b.m.id {
		t.Fatalf("gone = %v", got)
	}
	if st := h.meters.stats(); st.Departures["LEAVE_REASON_CONNECTION_LOST"] != 1 || st.Rejections["slot_gone"] != 1 {
		t.Fatalf("stats = %v", st)
	}
}

func TestHubHeldQueueOverflow(t *testing.T) {
	h, _ := newTestHub(t, time.Minute) // queue limit 8
	a := h.testEnter(t, pinEnter("000006"))
	b := h.testEnter(t, pinEnter("000006"))
	token := b.one().GetJoined().ResumeToken
	a.events()
	h.detach(b.m, b.sess)
	for range 9 {
		a.signal("ice-candidate", "c", "")
	}
	// The ninth overflowed: b is dropped as connection lost instead of losing a signal.
	var evs []*roomv1.MemberEvent
	waitFor(t, "peer_left after overflow", func() bool {
		evs = append(evs, a.events()...)
		return len(evs) > 0
	})
	if pl := evs[0].GetPeerLeft(); pl == nil || pl.Reason != roomv1.LeaveReason_LEAVE_REASON_CONNECTION_LOST {
		t.Fatalf("after overflow: %v", evs)
	}
	if _, rej := h.resumeWith(token, newSession()); rej != errSlotGone {
		t.Fatalf("resume after overflow: %v", rej)
	}
}

func TestHubLinkOverflow(t *testing.T) {
	h, _ := newTestHub(t, time.Minute)
	a := h.testEnter(t, pinEnter("000007"))
	interrupted := 0
	b := h.testEnter(t, pinEnter("000007"))
	b.sess.link.interrupt = func() { interrupted++ }
	a.events()
	b.events()
	// b's link is never written out: past the outbox limit it breaks, and what follows stays
	// with the member for the resume that comes once the link's members are held.
	for range outboxLimit + 2 {
		a.signal("ice-candidate", "c", "")
	}
	if interrupted != 1 {
		t.Fatalf("link interrupted %d times, want 1", interrupted)
	}
	if got := len(b.m.queue); got != 2 {
		t.Fatalf("%d events kept on the member, want 2", got)
	}
}

func TestHubTokens(t *testing.T) {
	h, _ := newTestHub(t, time.Minute)
	b := h.testEnter(t, pinEnter("000008"))
	token := b.one().GetJoined().ResumeToken
	if strings.Contains(token, "000008") {
		t.Fatal("token contains the PIN")
	}
	other, _ := newTestHub(t, time.Minute) // another process: other keys
	tampered := []byte(token)
	tampered[len(tampered)-3] ^= 1
	for name, tok := range map[string]string{
		"empty":     "",
		"garbage":   "hello",
		"prefix":    "v1.",
		"tampered":  string(tampered),
		"too long":  token + strings.Repeat("A", maxTokenLen),
		"truncated": token[:len(token)-10],
	} {
		if _, rej := h.resumeWith(tok, newSession()); rej != errBadToken {
			t.Errorf("%s: %v, want bad token", name, rej)
		}
	}
	if _, rej := other.resumeWith(token, newSession()); rej != errBadToken {
		t.Errorf("foreign token: %v", rej)
	}
	// Expired: sign one in the past with the same keys.
	old := h.keys.signToken(tokenClaims{participantID: b.m.id, roomID: b.m.room.id, expiry: time.Now().Add(-time.Second)})
	if _, rej := h.resumeWith(old, newSession()); rej != errBadToken {
		t.Errorf("expired: %v", rej)
	}
	// Valid signature, wrong room: the slot is not this one.
	wrong := h.keys.signToken(tokenClaims{participantID: b.m.id, roomID: "elsewhere", expiry: time.Now().Add(time.Minute)})
	if _, rej := h.resumeWith(wrong, newSession()); rej != errSlotGone {
		t.Errorf("wrong room: %v", rej)
	}
	if c, err := h.keys.verifyToken(token, "", time.Now()); err != nil || c.participantID != b.m.id || c.roomID != b.m.room.id {
		t.Errorf("verify: %v %v", c, err)
	}
}

func TestHubLobby(t *testing.T) {
	h, gone := newTestHub(t, time.Minute)
	a := h.testEnter(t, lobbyEnter("default", "alice"))
	evs := a.events()
	if len(evs) != 2 || evs[0].GetJoined().Self.Role != roomv1.Role_ROLE_LOBBY_MEMBER || len(evs[1].GetMembersChanged().GetMembers()) != 1 {
		t.Fatalf("alice: %v", evs)
	}
	b := h.testEnter(t, lobbyEnter("default", "bob"))
	if j := b.events(); len(j) != 2 || len(j[0].GetJoined().Peers) != 1 || len(j[1].GetMembersChanged().Members) != 2 {
		t.Fatalf("bob: %v", j)
	}
	if mc := a.one().GetMembersChanged(); len(mc.GetMembers()) != 2 || mc.Members[1].PeerId != "bob" {
		t.Fatalf("alice wants members_changed: %v", mc)
	}
	if _, rej := h.enterAs(lobbyEnter("default", "bob"), newSession()); rej != errPeerIDTaken {
		t.Fatalf("taken peer id: %v", rej)
	}
	// The same peer id in another lobby is fine.
	h.testEnter(t, lobbyEnter("other", "bob"))
	c := h.testEnter(t, lobbyEnter("default", "carol"))
	c.events()
	a.events()
	b.events()

	// Addressed by peer id, with the sender's ids.
	a.signal("offer", "o", "carol")
	if s := c.one().GetSignal(); s.GetFromPeerId() != "alice" || s.FromParticipantId != a.m.id || string(s.Data) != "o" {
		t.Fatalf("carol got %v", s)
	}
	b.expectNone()
	a.signal("offer", "o", "dave")
	if se := a.one().GetError(); se.GetCode() != codeUnknownPeer || se.Request != "offer" {
		t.Fatalf("unknown peer: %v", se)
	}

	// Leave: peer_left then members_changed to each remaining member.
	h.leave(b.m, b.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
	for _, x := range []*conn{a, c} {
		evs := x.events()
		if len(evs) != 2 || evs[0].GetPeerLeft().GetMember().GetPeerId() != "bob" || len(evs[1].GetMembersChanged().Members) != 2 {
			t.Fatalf("after bob left: %v", evs)
		}
	}
	// bob's id is free again.
	h.testEnter(t, lobbyEnter("default", "bob"))
	if got := gone.list(); len(got) != 1 {
		t.Fatalf("gone = %v", got)
	}
}

func TestHubCloseAndShutdown(t *testing.T) {
	h, gone := newTestHub(t, time.Minute)
	a := h.testEnter(t, pinEnter("000009"))
	b := h.testEnter(t, pinEnter("000009"))
	token := b.one().GetJoined().ResumeToken
	h.detach(b.m, b.sess)
	id, _ := h.roomByPIN("000009")
	n, ok := h.closeRoom(id, "maintenance")
	if !ok || n != 2 {
		t.Fatalf("closeRoom = %d, %v", n, ok)
	}
	final := a.events()
	if !a.sess.ended || len(final) < 2 || final[len(final)-1].GetRoomClosed().GetReason() != "maintenance" {
		t.Fatalf("final events %v, ended %v", final, a.sess.ended)
	}
	if _, rej := h.resumeWith(token, newSession()); rej != errSlotGone {
		t.Fatalf("resume after close: %v", rej)
	}
	if _, ok := h.closeRoom(id, ""); ok {
		t.Fatal("closed twice")
	}
	if len(gone.list()) != 2 {
		t.Fatalf("gone = %v", gone.list())
	}

	c := h.testEnter(t, pinEnter("000010"))
	h.shutdown()
	if e := ended(c.sess); e != nil {
		t.Fatalf("shutdown ended a member's session (%v): it must be held for the next process", e)
	}
	if _, rej := h.enterAs(pinEnter("000011"), newSession()); rej != errShuttingDown {
		t.Fatalf("enter after shutdown: %v", rej)
	}
	if len(gone.list()) != 2 {
		t.Fatalf("shutdown revoked members: gone = %v", gone.list())
	}
}

func TestHubListRooms(t *testing.T) {
	h, _ := newTestHub(t, time.Minute)
	h.testEnter(t, pinEnter("123456"))
	h.testEnter(t, lobbyEnter("default", "x"))
	rooms := h.listRooms(roomv1.RoomKind_ROOM_KIND_UNSPECIFIED)
	if len(rooms) != 2 || rooms[0].Hint != "****56" || rooms[1].Hint != "default" || rooms[0].MemberCount != 1 {
		t.Fatalf("rooms = %v", rooms)
	}
	if strings.Contains(rooms[0].String(), "123456") {
		t.Fatal("room summary shows the PIN")
	}
	if rooms := h.listRooms(roomv1.RoomKind_ROOM_KIND_LOBBY); len(rooms) != 1 {
		t.Fatalf("lobbies = %v", rooms)
	}
}

func TestHubLobbyFull(t *testing.T) {
	met, err := newMeters(platform.NoTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(hubConfig{grace: time.Minute, tokenTTL: time.Hour, queueLimit: 8, lobbyMax: 2, gone: func(string) {}, meters: met})
	a := h.testEnter(t, lobbyEnter("default", "alice"))
	b := h.testEnter(t, lobbyEnter("default", "bob"))
	a.events()
	b.events()
	_, rej := h.enterAs(lobbyEnter("default", "carol"), newSession())
	if rej == nil || rej.code != errLobbyFull.code || rej.outcome != "lobby_full" || rej.msg != "lobby default is full (maximum 2 members)" {
		t.Fatalf("third member: %+v, want lobby full", rej)
	}
	// The refusal tells nobody: the list did not change.
	a.expectNone()
	b.expectNone()
	// Another lobby has its own cap.
	h.testEnter(t, lobbyEnter("other", "carol"))
	// A held slot still counts; a member gone for good frees its place.
	h.detach(b.m, b.sess)
	if _, rej := h.enterAs(lobbyEnter("default", "carol"), newSession()); rej == nil || rej.outcome != "lobby_full" {
		t.Fatalf("join while a slot is held: %+v, want lobby full", rej)
	}
	h.leave(a.m, a.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
	h.testEnter(t, lobbyEnter("default", "carol"))
	if st := h.meters.stats(); st.Rejections["lobby_full"] != 2 {
		t.Fatalf("rejections %v, want lobby_full 2", st.Rejections)
	}
}

// newHubAt is a test hub keyed by secret whose clock reads at.
func newHubAt(t *testing.T, secret string, at time.Time) *hub {
	t.Helper()
	met, err := newMeters(platform.NoTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	return newHub(hubConfig{grace: time.Minute, tokenTTL: time.Hour, queueLimit: 8, secret: secret, meters: met,
		now: func() time.Time { return at }})
}

// TestHubRebuildsSlotsAfterARestart: tokens from an earlier process with the same secret
// rebuild their slots (roles kept, nobody told anything), within the room's rules; a token
// this process issued names a slot only while it lives.
func TestHubRebuildsSlotsAfterARestart(t *testing.T) {
	start := time.Now()
	before := newHubAt(t, "shared secret", start)
	a := before.testEnter(t, pinEnter("000021"))
	b := before.testEnter(t, pinEnter("000021"))
	tokA := a.events()[0].GetJoined().ResumeToken
	tokB := b.one().GetJoined().ResumeToken
	x := before.testEnter(t, pinEnter("000022"))
	tokX := x.one().GetJoined().ResumeToken

	after := newHubAt(t, "shared secret", start.Add(time.Minute))
	if _, rej := newHubAt(t, "another secret", start.Add(time.Minute)).resumeWith(tokA, newSession()); rej != errBadToken {
		t.Fatalf("token under another secret: %v", rej)
	}
	sa := newSession()
	ma, rej := after.resumeWith(tokA, sa)
	if rej != nil || ma.id != a.m.id || ma.role != roomv1.Role_ROLE_FIRST || ma.room.id != a.m.room.id {
		t.Fatalf("rebuilt a: %v %+v", rej, ma)
	}
	a2 := &conn{t: t, h: after, m: ma, sess: sa}
	if j := a2.one().GetJoined(); !j.GetResumed() || len(j.GetPeers()) != 0 {
		t.Fatalf("a's joined after the rebuild: %v", j)
	}
	sb := newSession()
	mb, rej := after.resumeWith(tokB, sb)
	if rej != nil || mb.role != roomv1.Role_ROLE_SECOND {
		t.Fatalf("rebuilt b: %v %+v", rej, mb)
	}
	b2 := &conn{t: t, h: after, m: mb, sess: sb}
	b2.one()
	a2.expectNone() // no peer_joined: for a, b never left
	if !a2.signal("offer", "after the restart", "") || string(b2.one().GetSignal().GetData()) != "after the restart" {
		t.Fatal("signal between rebuilt members")
	}

	// A PIN room holds two: a newcomer took x's room first, and then a third resume is refused.
	after.testEnter(t, pinEnter("000022"))
	after.testEnter(t, pinEnter("000022"))
	if _, rej := after.resumeWith(tokX, newSession()); rej != errSlotGone {
		t.Fatalf("resume into a full rebuilt room: %v", rej)
	}
	// This process's own token names a live slot only.
	y := after.testEnter(t, pinEnter("000023"))
	tokY := y.one().GetJoined().ResumeToken
	after.leave(y.m, y.sess, roomv1.LeaveReason_LEAVE_REASON_HUNG_UP, noCause())
	if _, rej := after.resumeWith(tokY, newSession()); rej != errSlotGone {
		t.Fatalf("departed member came back with its token: %v", rej)
	}
}

// TestHubRebuildsOnlyWithinTheGraceAfterItsStart: a token from an earlier process rebuilds its
// slot during the grace period after this process started, not for the token's whole life: a
// member held before a crash who never came back must not return hours later.
func TestHubRebuildsOnlyWithinTheGraceAfterItsStart(t *testing.T) {
	start := time.Now()
	before := newHubAt(t, "shared secret", start)
	a := before.testEnter(t, pinEnter("000031"))
	tok := a.one().GetJoined().ResumeToken

	restarted := start.Add(time.Minute)
	after := newHubAt(t, "shared secret", restarted)
	after.now = func() time.Time { return restarted.Add(after.grace) } // the grace (1 min) has passed
	if _, rej := after.resumeWith(tok, newSession()); rej != errSlotGone {
		t.Fatalf("resume a grace after the restart: %v, want slot gone", rej)
	}
	after.now = func() time.Time { return restarted.Add(after.grace - time.Millisecond) }
	if _, rej := after.resumeWith(tok, newSession()); rej != nil {
		t.Fatalf("resume within the grace after the restart: %v", rej)
	}
}
