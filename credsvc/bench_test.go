package credsvc_test

import (
	"fmt"
	"testing"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/internal/testetcd"
)

// benchStores start a credsvc on each store: bbolt on a temporary file, etcd on an embedded
// one-member cluster on loopback (the same machine, so the figures show etcd's own cost, not
// a network's).
var benchStores = []struct {
	name  string
	start func(b *testing.B) *node
}{
	{"bbolt", func(b *testing.B) *node { return newEnv(b).start(nil) }},
	{"etcd", func(b *testing.B) *node {
		return newEnv(b).start(onEtcd(testetcd.Start(b).Endpoint, nil))
	}},
}

// Issue and IssueBatch over real Connect on loopback (HTTP/2 cleartext, one connection): what
// the gateway pays per join, on each store.
func BenchmarkIssue(b *testing.B) {
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) {
			c := st.start(b).internal(b, nil)
			req := connect.NewRequest(&credv1.IssueRequest{ParticipantId: "bench"})
			bctx := ctx(b) // one deadline for the whole run
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Issue(bctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// IssueBatch of 10, the size of a small room's joins at once.
func BenchmarkIssueBatch(b *testing.B) {
	const size = 10
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) {
			c := st.start(b).internal(b, nil)
			items := make([]*credv1.IssueRequest, size)
			for i := range items {
				items[i] = &credv1.IssueRequest{ParticipantId: fmt.Sprintf("bench-%d", i)}
			}
			req := connect.NewRequest(&credv1.IssueBatchRequest{Requests: items})
			bctx := ctx(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.IssueBatch(bctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/join")
		})
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
// on each store: what roomsvc pays for a burst of departures either way.
func BenchmarkRevokeSequential(b *testing.B) { benchRevoke(b, false) }

func BenchmarkRevokeBatch(b *testing.B) { benchRevoke(b, true) }

func benchRevoke(b *testing.B, batch bool) {
	for _, st := range benchStores {
		for _, size := range []int{10, 100} {
			b.Run(fmt.Sprintf("store=%s/n=%d", st.name, size), func(b *testing.B) {
				c := st.start(b).internal(b, nil)
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
}
