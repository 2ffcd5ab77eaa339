package credsvc_test

import (
	"fmt"
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

// N revocations sent as N sequential Revoke calls, and as one RevokeBatch, over real Connect
// with a real bbolt file: what roomsvc pays for a burst of departures either way.
func BenchmarkRevokeSequential(b *testing.B) { benchRevoke(b, false) }

func BenchmarkRevokeBatch(b *testing.B) { benchRevoke(b, true) }

func benchRevoke(b *testing.B, batch bool) {
	for _, size := range []int{10, 100} {
		b.Run(fmt.Sprintf("n=%d", size), func(b *testing.B) {
			n := newEnv(b).start(nil)
			c := n.internal(b, nil)
			bctx := ctx(b)
			seq := 0
			items := make([]*credv1.RevokeRequest, size)
			b.ReportAllocs()
			for b.Loop() {
				for i := range items {
					seq++
					items[i] = &credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: fmt.Sprintf("bench-%d", seq)}, Reason: "left"}
				}
				if batch {
					if _, err := c.RevokeBatch(bctx, connect.NewRequest(&credv1.RevokeBatchRequest{Requests: items})); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, item := range items {
					if _, err := c.Revoke(bctx, connect.NewRequest(item)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/revocation")
		})
	}
}
