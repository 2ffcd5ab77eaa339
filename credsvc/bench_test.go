package credsvc_test

import (
	"testing"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// Issue and Validate over real Connect on loopback (HTTP/2 cleartext, one connection):
// what the gateway and turnsvc pay per call.
func BenchmarkIssue(b *testing.B) {
	n := newEnv(b).start(nil)
	c := n.internal(b, nil)
	req := connect.NewRequest(&credv1.IssueRequest{ParticipantId: "bench"})
	bctx := ctx(b) // one deadline for the whole run
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Issue(bctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	n := newEnv(b).start(nil)
	c := n.internal(b, nil)
	cred := issue(b, c, "bench")
	req := connect.NewRequest(&credv1.ValidateRequest{Username: cred.GetUsername(), Realm: realm})
	bctx := ctx(b) // one deadline for the whole run
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Validate(bctx, req)
		if err != nil || res.Msg.GetVerdict() != credv1.Verdict_VERDICT_VALID {
			b.Fatal(res, err)
		}
	}
}

func BenchmarkValidateParallel(b *testing.B) {
	n := newEnv(b).start(nil)
	c := n.internal(b, nil)
	cred := issue(b, c, "bench")
	bctx := ctx(b) // one deadline for the whole run
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := connect.NewRequest(&credv1.ValidateRequest{Username: cred.GetUsername(), Realm: realm})
		for pb.Next() {
			if _, err := c.Validate(bctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
