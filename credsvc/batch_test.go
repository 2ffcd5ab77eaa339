package credsvc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

// issueBatch sends one IssueBatch and checks it answers every item.
func issueBatch(t *testing.T, c credv1connect.CredentialServiceClient, items []*credv1.IssueRequest) []*credv1.IssueResult {
	t.Helper()
	res, err := c.IssueBatch(ctx(t), connect.NewRequest(&credv1.IssueBatchRequest{Requests: items}))
	if err != nil {
		t.Fatalf("IssueBatch of %d: %v", len(items), err)
	}
	if got := len(res.Msg.GetResults()); got != len(items) {
		t.Fatalf("IssueBatch of %d: %d results", len(items), got)
	}
	return res.Msg.GetResults()
}

// revokeBatch sends one RevokeBatch and checks it answers every item.
func revokeBatch(t *testing.T, c credv1connect.CredentialServiceClient, items []*credv1.RevokeRequest) []*credv1.RevokeResult {
	t.Helper()
	res, err := c.RevokeBatch(ctx(t), connect.NewRequest(&credv1.RevokeBatchRequest{Requests: items}))
	if err != nil {
		t.Fatalf("RevokeBatch of %d: %v", len(items), err)
	}
	if got := len(res.Msg.GetResults()); got != len(items) {
		t.Fatalf("RevokeBatch of %d: %d results", len(items), got)
	}
	return res.Msg.GetResults()
}

func listRevocations(t *testing.T, n *node) []*credv1.Revocation {
	t.Helper()
	res, err := n.admin(t, nil).ListRevocations(ctx(t), connect.NewRequest(&credv1.ListRevocationsRequest{}))
	if err != nil {
		t.Fatalf("ListRevocations: %v", err)
	}
	return res.Msg.GetRevocations()
}

func byParticipant(id string) *credv1.RevokeRequest {
	return &credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: id}}
}

func byUsername(u, reason string) *credv1.RevokeRequest {
	return &credv1.RevokeRequest{Target: &credv1.RevokeRequest_Username{Username: u}, Reason: reason}
}

// target names what a revocation covers, "p:<id>" or "u:<username>".
func target(r interface {
	GetParticipantId() string
	GetUsername() string
}) string {
	if id := r.GetParticipantId(); id != "" {
		return "p:" + id
	}
	return "u:" + r.GetUsername()
}

// Each item gets what Issue would return for it, in order; a bad or revoked item gets its own
// error and leaves the others alone.
func TestIssueBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := n.internal(t, p.opts)
			revoked := "revoked-" + p.name
			if _, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: revoked}})); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			items := []*credv1.IssueRequest{
				{ParticipantId: "amy-" + p.name},
				{ParticipantId: ""},
				{ParticipantId: "ben-" + p.name, Ttl: durationpb.New(10 * time.Minute)},
				{ParticipantId: revoked},
				{ParticipantId: "cat-" + p.name, Ttl: durationpb.New(time.Millisecond)},
				{ParticipantId: "has space"},
				{ParticipantId: "dan-" + p.name, Ttl: durationpb.New(48 * time.Hour)},
			}
			wantCode := []connect.Code{0, connect.CodeInvalidArgument, 0, connect.CodeFailedPrecondition, connect.CodeInvalidArgument, connect.CodeInvalidArgument, 0}
			results := issueBatch(t, c, items)
			for i, r := range results {
				// Issue at the same instant (the clock stands still) for the same item.
				single, err := c.Issue(ctx(t), connect.NewRequest(items[i]))
				if wantCode[i] == 0 {
					if err != nil {
						t.Fatalf("item %d: Issue: %v", i, err)
					}
					if !proto.Equal(r.GetCredentials(), single.Msg) {
						t.Errorf("item %d = %v, want what Issue returns: %v", i, r, single.Msg)
					}
					if v := validateVerdict(t, c, r.GetCredentials().GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID || !equalKey(v.GetKey(), r.GetCredentials()) {
						t.Errorf("item %d: Validate = %v, want VALID with its key", i, v.GetVerdict())
					}
					continue
				}
				ie := r.GetError()
				if ie == nil || connect.Code(ie.GetCode()) != wantCode[i] || ie.GetMessage() == "" {
					t.Errorf("item %d (%v) = %v, want an error with code %d (%v)", i, items[i], r, wantCode[i], wantCode[i])
				}
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != wantCode[i] || ce.Message() != ie.GetMessage() {
					t.Errorf("item %d: batch error %v, Issue error %v: want the same", i, ie, err)
				}
			}
			if got := results[6].GetCredentials().GetTtl().AsDuration(); got != 24*time.Hour {
				t.Errorf("48h asked in a batch: ttl %v, want the 24h cap", got)
			}
			if got := issueBatch(t, c, nil); len(got) != 0 {
				t.Errorf("empty batch: %v", got)
			}
		})
	}
}

// A batch is bounded: one more than the limit is refused as a whole, the limit is served.
func TestBatchSizeLimit(t *testing.T) {
	t.Parallel()
	n := newEnv(t).start(nil)
	c := n.internal(t, nil)
	const limit = 1024
	issues := make([]*credv1.IssueRequest, limit+1)
	revokes := make([]*credv1.RevokeRequest, limit+1)
	for i := range issues {
		issues[i] = &credv1.IssueRequest{ParticipantId: fmt.Sprintf("m%d", i)}
		revokes[i] = &credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: fmt.Sprintf("m%d", i)}}
	}
	_, err := c.IssueBatch(ctx(t), connect.NewRequest(&credv1.IssueBatchRequest{Requests: issues}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "at most 1024") {
		t.Errorf("IssueBatch of %d: %v, want InvalidArgument naming the limit", len(issues), err)
	}
	_, err = c.RevokeBatch(ctx(t), connect.NewRequest(&credv1.RevokeBatchRequest{Requests: revokes}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "at most 1024") {
		t.Errorf("RevokeBatch of %d: %v, want InvalidArgument naming the limit", len(revokes), err)
	}
	if got := len(listRevocations(t, n)); got != 0 {
		t.Errorf("a refused RevokeBatch stored %d revocations", got)
	}
	for i, r := range issueBatch(t, c, issues[:limit]) {
		if r.GetCredentials() == nil {
			t.Fatalf("item %d of a full batch: %v", i, r)
		}
	}
	for i, r := range revokeBatch(t, c, revokes[:limit]) {
		if r.GetRevocation() == nil {
			t.Fatalf("item %d of a full batch: %v", i, r)
		}
	}
}

// The batch RPCs are internal: no token → Unauthenticated, the admin token → PermissionDenied.
func TestBatchTokens(t *testing.T) {
	t.Parallel()
	n := newEnv(t).start(nil)
	issueReq := &credv1.IssueBatchRequest{Requests: []*credv1.IssueRequest{{ParticipantId: "x"}}}
	revokeReq := &credv1.RevokeBatchRequest{Requests: []*credv1.RevokeRequest{{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "x"}}}}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			for _, tc := range []struct {
				token string
				want  connect.Code
			}{{"", connect.CodeUnauthenticated}, {adminToken, connect.CodePermissionDenied}} {
				c := n.internalWithToken(tc.token, p.opts)
				if _, err := c.IssueBatch(ctx(t), connect.NewRequest(issueReq)); connect.CodeOf(err) != tc.want {
					t.Errorf("IssueBatch with token %q: %v, want %v", tc.token, err, tc.want)
				}
				if _, err := c.RevokeBatch(ctx(t), connect.NewRequest(revokeReq)); connect.CodeOf(err) != tc.want {
					t.Errorf("RevokeBatch with token %q: %v, want %v", tc.token, err, tc.want)
				}
			}
			if got := len(listRevocations(t, n)); got != 0 {
				t.Errorf("refused calls stored %d revocations", got)
			}
			// The same calls with the internal token go through.
			issueBatch(t, n.internal(t, p.opts), issueReq.GetRequests())
		})
	}
}

// Well-formed items are stored, announced together and enforced; malformed ones get the error
// Revoke would give and hold back nothing.
func TestRevokeBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := n.internal(t, p.opts)
			gus, hal, jon := "gus-"+p.name, "hal-"+p.name, "jon-"+p.name
			gus1 := issue(t, c, gus)
			byName := issue(t, c, hal)
			e.clock.Advance(time.Second) // a second apart, the same participant gets another username
			gus2, kept := issue(t, c, gus), issue(t, c, hal)

			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := c.WatchRevocations(wctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
			if err != nil {
				t.Fatalf("WatchRevocations: %v", err)
			}
			defer stream.Close()
			if !stream.Receive() || !stream.Msg().GetSnapshot() {
				t.Fatalf("no snapshot: %v", stream.Err())
			}

			items := []*credv1.RevokeRequest{
				byParticipant(gus),
				{},
				byUsername(byName.GetUsername(), "left"),
				byUsername("not-a-turn-username", ""),
				byParticipant(""),
				{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "ivy"}, Reason: strings.Repeat("x", 201)},
				{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: jon}, Reason: "left"},
			}
			now := e.clock.Now()
			want := []struct {
				reason  string
				expires time.Time
			}{
				{"unspecified", now.Add(24 * time.Hour)}, {}, {"left", byName.GetExpiresAt().AsTime()}, {}, {}, {}, {"left", now.Add(24 * time.Hour)},
			}
			results := revokeBatch(t, c, items)
			var stored []string
			for i, r := range results {
				if want[i].reason == "" {
					ie := r.GetError()
					if ie == nil || connect.Code(ie.GetCode()) != connect.CodeInvalidArgument || ie.GetMessage() == "" {
						t.Errorf("item %d (%v) = %v, want an InvalidArgument item error", i, items[i], r)
					}
					_, err := c.Revoke(ctx(t), connect.NewRequest(items[i]))
					var ce *connect.Error
					if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || ce.Message() != ie.GetMessage() {
						t.Errorf("item %d: batch error %v, Revoke error %v: want the same", i, ie, err)
					}
					continue
				}
				rev := r.GetRevocation()
				if target(rev) != target(items[i]) || rev.GetReason() != want[i].reason ||
					!rev.GetExpiresAt().AsTime().Equal(want[i].expires) || !rev.GetRevokedAt().AsTime().Equal(now) {
					t.Errorf("item %d = %v, want %s revoked now, until %v, reason %q", i, rev, target(items[i]), want[i].expires, want[i].reason)
				}
				stored = append(stored, target(rev))
			}

			// One transaction, announced in one message, in the items' order.
			if !stream.Receive() {
				t.Fatalf("no live message: %v", stream.Err())
			}
			var announced []string
			for _, r := range stream.Msg().GetRevocations() {
				announced = append(announced, target(r))
			}
			if stream.Msg().GetSnapshot() || !slices.Equal(announced, stored) {
				t.Errorf("watcher got %q (snapshot %v), want %q in one message", announced, stream.Msg().GetSnapshot(), stored)
			}
			listed := map[string]bool{}
			for _, r := range listRevocations(t, n) {
				listed[target(r)] = true
			}
			for _, s := range stored {
				if !listed[s] {
					t.Errorf("ListRevocations lacks %s", s)
				}
			}
			if listed["p:ivy"] {
				t.Errorf("ListRevocations has the refused item p:ivy")
			}

			for _, tc := range []struct {
				cred *credv1.IssueResponse
				want credv1.Verdict
			}{
				{gus1, credv1.Verdict_VERDICT_REVOKED},
				{gus2, credv1.Verdict_VERDICT_REVOKED},
				{byName, credv1.Verdict_VERDICT_REVOKED},
				{kept, credv1.Verdict_VERDICT_VALID},
			} {
				if v := validateVerdict(t, c, tc.cred.GetUsername()); v.GetVerdict() != tc.want {
					t.Errorf("Validate(%s) = %v, want %v", tc.cred.GetUsername(), v.GetVerdict(), tc.want)
				}
			}
			if _, err := c.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: jon})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Errorf("Issue to %s, revoked in a batch: %v, want FailedPrecondition", jon, err)
			}
			got := issueBatch(t, c, []*credv1.IssueRequest{{ParticipantId: gus}, {ParticipantId: hal}})
			if connect.Code(got[0].GetError().GetCode()) != connect.CodeFailedPrecondition || got[1].GetCredentials() == nil {
				t.Errorf("IssueBatch(%s revoked, %s not) = %v", gus, hal, got)
			}
		})
	}
}

// What one RevokeBatch stored is on disk: a restart on the same file still enforces it.
func TestRevokeBatchSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	c := n.internal(t, nil)
	const members = 50
	creds := make([]*credv1.IssueResponse, members)
	items := make([]*credv1.RevokeRequest, 0, members+2)
	want := make([]string, 0, members+1)
	for i := range members {
		id := fmt.Sprintf("member-%d", i)
		creds[i] = issue(t, c, id)
		items = append(items, byParticipant(id))
		want = append(want, "p:"+id)
	}
	byName := issue(t, c, "nora")
	items = append(items, byUsername(byName.GetUsername(), "left"), byParticipant("bad id"))
	want = append(want, "u:"+byName.GetUsername())
	results := revokeBatch(t, c, items)
	if results[len(results)-1].GetError() == nil {
		t.Fatalf("a malformed item was stored: %v", results[len(results)-1])
	}
	n.stop()

	n = e.start(nil)
	c = n.internal(t, nil)
	var listed []string
	for _, r := range listRevocations(t, n) {
		listed = append(listed, target(r))
	}
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("after restart ListRevocations = %q, want %q", listed, want)
	}
	for _, cred := range []*credv1.IssueResponse{creds[0], creds[members-1], byName} {
		if v := validateVerdict(t, c, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
			t.Errorf("after restart Validate(%s) = %v, want REVOKED", cred.GetUsername(), v.GetVerdict())
		}
	}
	if _, err := c.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: "member-7"})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("after restart Issue to a participant revoked in a batch: %v, want FailedPrecondition", err)
	}
	issue(t, c, "nora") // only a username of hers was revoked
}

// Full batches from concurrent callers all reach a watcher that keeps reading, however they are
// grouped into transactions.
func TestWatchSeesConcurrentBatches(t *testing.T) {
	t.Parallel()
	n := newEnv(t).start(nil)
	c := n.internal(t, protocols[1].opts)
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := c.WatchRevocations(wctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
	if err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	defer stream.Close()
	if !stream.Receive() || !stream.Msg().GetSnapshot() {
		t.Fatalf("no snapshot: %v", stream.Err())
	}
	const callers, size = 4, 1024
	errs := make(chan error, callers)
	for k := range callers {
		go func() {
			items := make([]*credv1.RevokeRequest, size)
			for i := range items {
				items[i] = byParticipant(fmt.Sprintf("c%d-%d", k, i))
			}
			_, err := c.RevokeBatch(wctx, connect.NewRequest(&credv1.RevokeBatchRequest{Requests: items}))
			errs <- err
		}()
	}
	seen := map[string]bool{}
	for len(seen) < callers*size && stream.Receive() {
		if got := len(stream.Msg().GetRevocations()); got > 256 {
			t.Errorf("a message carries %d revocations, more than 256", got)
		}
		for _, r := range stream.Msg().GetRevocations() {
			seen[r.GetParticipantId()] = true
		}
	}
	if len(seen) < callers*size {
		t.Fatalf("watcher saw %d of %d revocations: %v", len(seen), callers*size, stream.Err())
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("RevokeBatch: %v", err)
		}
	}
}
