package credsvc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tuturu/tuturu/credsvc"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := n.internal(t, p.opts)
			mine, other := "mallory-"+p.name, "niaj-"+p.name
			a1 := issue(t, c, mine)
			e.clock.Advance(time.Second) // the same participant in the same second gets the same username
			a2, b := issue(t, c, mine), issue(t, c, other)

			// By username: only that credential.
			res, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_Username{Username: a1.GetUsername()}, Reason: "left"}))
			if err != nil {
				t.Fatalf("Revoke username: %v", err)
			}
			if got := res.Msg.GetRevocation(); got.GetUsername() != a1.GetUsername() || !got.GetExpiresAt().AsTime().Equal(a1.GetExpiresAt().AsTime()) || got.GetReason() != "left" {
				t.Errorf("revocation = %v, want the username until its own expiry", got)
			}
			if v := validateVerdict(t, c, a1.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
				t.Errorf("revoked username: %v, want REVOKED", v.GetVerdict())
			}
			if v := validateVerdict(t, c, a2.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
				t.Errorf("the participant's other credential: %v, want VALID", v.GetVerdict())
			}

			// By participant: every credential of it, until MaxTTL from now; no new ones.
			res, err = c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: mine}}))
			if err != nil {
				t.Fatalf("Revoke participant: %v", err)
			}
			if got := res.Msg.GetRevocation(); got.GetParticipantId() != mine || got.GetExpiresAt().AsTime().Before(e.clock.Now().Add(24*time.Hour)) {
				t.Errorf("revocation = %v, want participant %s for at least MaxTTL", got, mine)
			}
			if v := validateVerdict(t, c, a2.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
				t.Errorf("revoked participant: %v, want REVOKED", v.GetVerdict())
			}
			if v := validateVerdict(t, c, b.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
				t.Errorf("another participant: %v, want VALID", v.GetVerdict())
			}
			if _, err := c.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: mine})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Errorf("Issue to a revoked participant: %v, want FailedPrecondition", err)
			}

			for _, bad := range []*credv1.RevokeRequest{
				{},
				{Target: &credv1.RevokeRequest_Username{Username: ""}},
				{Target: &credv1.RevokeRequest_Username{Username: "not-a-turn-username"}},
				{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: ""}},
				{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "ok"}, Reason: string(make([]byte, 201))},
			} {
				if _, err := c.Revoke(ctx(t), connect.NewRequest(bad)); connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Errorf("Revoke(%v): %v, want InvalidArgument", bad, err)
				}
			}
		})
	}
}

func TestAdminRevocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c, admin := n.internal(t, p.opts), n.admin(t, p.opts)
			cred := issue(t, c, "olivia-"+p.name)
			res, err := admin.RevokeParticipant(ctx(t), connect.NewRequest(&credv1.RevokeParticipantRequest{ParticipantId: "olivia-" + p.name}))
			if err != nil {
				t.Fatalf("RevokeParticipant: %v", err)
			}
			if res.Msg.GetRevocation().GetReason() != "admin" {
				t.Errorf("reason = %q, want the default admin", res.Msg.GetRevocation().GetReason())
			}
			if v := validateVerdict(t, c, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
				t.Errorf("after RevokeParticipant: %v, want REVOKED", v.GetVerdict())
			}
			if _, err := admin.RevokeParticipant(ctx(t), connect.NewRequest(&credv1.RevokeParticipantRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("RevokeParticipant without id: %v, want InvalidArgument", err)
			}
			list, err := admin.ListRevocations(ctx(t), connect.NewRequest(&credv1.ListRevocationsRequest{}))
			if err != nil {
				t.Fatalf("ListRevocations: %v", err)
			}
			found := false
			for _, r := range list.Msg.GetRevocations() {
				found = found || r.GetParticipantId() == "olivia-"+p.name
			}
			if !found {
				t.Errorf("ListRevocations = %v, want olivia-%s", list.Msg.GetRevocations(), p.name)
			}
		})
	}
}

func TestSweepForgetsExpiredRevocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.SweepInterval = 5 * time.Millisecond })
	c, admin := n.internal(t, nil), n.admin(t, nil)
	short, err := c.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: "pat", Ttl: durationpb.New(time.Hour)}))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	revoke := func(r *credv1.RevokeRequest) {
		if _, err := c.Revoke(ctx(t), connect.NewRequest(r)); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
	}
	revoke(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_Username{Username: short.Msg.GetUsername()}})
	revoke(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "quinn"}})
	count := func() int {
		res, err := admin.ListRevocations(ctx(t), connect.NewRequest(&credv1.ListRevocationsRequest{}))
		if err != nil {
			t.Fatalf("ListRevocations: %v", err)
		}
		return len(res.Msg.GetRevocations())
	}
	if got := count(); got != 2 {
		t.Fatalf("%d revocations, want 2", got)
	}
	e.clock.Advance(time.Hour) // the username's credential has expired; the participant's not
	waitFor(t, "the username revocation to be swept", func() bool { return count() == 1 })
	e.clock.Advance(23 * time.Hour)
	waitFor(t, "the participant revocation to be swept", func() bool { return count() == 0 })
	// Swept from the file too: a restart does not bring them back.
	n.stop()
	n = e.start(nil)
	res, err := n.admin(t, nil).ListRevocations(ctx(t), connect.NewRequest(&credv1.ListRevocationsRequest{}))
	if err != nil || len(res.Msg.GetRevocations()) != 0 {
		t.Fatalf("after restart: %v %v, want no revocations", res, err)
	}
	// The participant may be issued credentials again.
	issue(t, n.internal(t, nil), "quinn")
}

func TestWatchRevocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c, admin := n.internal(t, p.opts), n.admin(t, p.opts)
			before := "rupert-" + p.name
			if _, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: before}})); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := c.WatchRevocations(wctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
			if err != nil {
				t.Fatalf("WatchRevocations: %v", err)
			}
			defer stream.Close()
			if !stream.Receive() {
				t.Fatalf("no snapshot: %v", stream.Err())
			}
			snap := stream.Msg()
			if !snap.GetSnapshot() || !hasParticipant(snap.GetRevocations(), before) {
				t.Fatalf("snapshot = %v, want snapshot=true with %s", snap, before)
			}

			cred := issue(t, c, "sybil-"+p.name)
			if _, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_Username{Username: cred.GetUsername()}, Reason: "left"})); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if !stream.Receive() {
				t.Fatalf("no live revocation: %v", stream.Err())
			}
			if live := stream.Msg(); live.GetSnapshot() || len(live.GetRevocations()) != 1 || live.GetRevocations()[0].GetUsername() != cred.GetUsername() {
				t.Fatalf("live message = %v, want the username revocation alone", live)
			}
			// The admin's revocation reaches watchers too.
			if _, err := admin.RevokeParticipant(ctx(t), connect.NewRequest(&credv1.RevokeParticipantRequest{ParticipantId: "trent-" + p.name})); err != nil {
				t.Fatalf("RevokeParticipant: %v", err)
			}
			if !stream.Receive() {
				t.Fatalf("no admin revocation: %v", stream.Err())
			}
			if live := stream.Msg(); !hasParticipant(live.GetRevocations(), "trent-"+p.name) {
				t.Fatalf("live message = %v, want trent-%s", live, p.name)
			}
		})
	}
}

func TestWatchEndsUnavailableOnStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	var streams []*connect.ServerStreamForClient[credv1.WatchRevocationsResponse]
	for _, p := range protocols {
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := n.internal(t, p.opts).WatchRevocations(wctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
		if err != nil {
			t.Fatalf("%s: WatchRevocations: %v", p.name, err)
		}
		defer stream.Close()
		if !stream.Receive() || !stream.Msg().GetSnapshot() {
			t.Fatalf("%s: no snapshot: %v", p.name, stream.Err())
		}
		streams = append(streams, stream)
	}
	stopped := make(chan struct{})
	go func() { n.stop(); close(stopped) }()
	for i, stream := range streams {
		if stream.Receive() {
			t.Fatalf("%s: unexpected message %v", protocols[i].name, stream.Msg())
		}
		if code := connect.CodeOf(stream.Err()); code != connect.CodeUnavailable {
			t.Errorf("%s: stream ended with %v, want Unavailable", protocols[i].name, stream.Err())
		}
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("credsvc did not stop within 5s with watchers connected")
	}
}

func hasParticipant(revs []*credv1.Revocation, id string) bool {
	for _, r := range revs {
		if r.GetParticipantId() == id {
			return true
		}
	}
	return false
}

// Concurrent revocations all reach a watcher: none falls between snapshot and feed or between
// two writers.
func TestWatchSeesConcurrentRevocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	c := n.internal(t, protocols[1].opts)
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const total = 60
	errs := make(chan error, total)
	revoke := func(i int) {
		_, err := c.Revoke(wctx, connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: fmt.Sprintf("p%d", i)}}))
		errs <- err
	}
	// A third before the watch starts, the rest while it runs.
	for i := range total / 3 {
		go revoke(i)
	}
	stream, err := c.WatchRevocations(wctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
	if err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	defer stream.Close()
	for i := total / 3; i < total; i++ {
		go revoke(i)
	}
	seen := map[string]bool{}
	for len(seen) < total && stream.Receive() {
		for _, r := range stream.Msg().GetRevocations() {
			seen[r.GetParticipantId()] = true
		}
	}
	if len(seen) < total {
		t.Fatalf("watcher saw %d of %d revocations: %v", len(seen), total, stream.Err())
	}
	for range total {
		if err := <-errs; err != nil {
			t.Errorf("Revoke: %v", err)
		}
	}
}
