package credsvc_test

import (
	"errors"
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

// Each item gets what Issue would return for it, in order; a bad or revoked item gets its own
// error and leaves the others alone.
func TestIssueBatch(t *testing.T) {
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
