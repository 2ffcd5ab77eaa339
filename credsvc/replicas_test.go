package credsvc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tuturu/tuturu/credsvc"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/internal/testetcd"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testtls"
)

// etcdPrefix is where the replicas of these tests keep their keys.
const etcdPrefix = "/replicas/"

// onEtcd points a replica at the embedded etcd.
func onEtcd(endpoint string, mod func(*credsvc.Config)) func(*credsvc.Config) {
	return func(c *credsvc.Config) {
		c.Etcd = credsvc.EtcdConfig{Endpoints: []string{endpoint}, Prefix: etcdPrefix}
		if mod != nil {
			mod(c)
		}
	}
}

// replicas starts n credsvc replicas on one embedded etcd, all at the same moment, sharing a
// clock.
func replicas(t *testing.T, n int, mod func(*credsvc.Config)) (*env, []*node, string) {
	t.Helper()
	ep := testetcd.Start(t).Endpoint
	e := newEnv(t)
	nodes := make([]*node, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { nodes[i] = e.start(onEtcd(ep, mod)) })
	}
	wg.Wait()
	for i, nd := range nodes {
		if nd == nil {
			t.Fatalf("replica %d did not start", i)
		}
	}
	return e, nodes, ep
}

// watchAfterSnapshot opens a WatchRevocations stream, bounded by 10 s, and reads its snapshot.
func watchAfterSnapshot(t *testing.T, c credv1connect.CredentialServiceClient) *connect.ServerStreamForClient[credv1.WatchRevocationsResponse] {
	t.Helper()
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	stream, err := c.WatchRevocations(wctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
	if err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	t.Cleanup(func() { stream.Close() })
	if !stream.Receive() || !stream.Msg().GetSnapshot() {
		t.Fatalf("no snapshot: %v", stream.Err())
	}
	return stream
}

// Replicas starting together create one first secret, and both sign with it.
func TestReplicasCreateTheFirstSecretOnce(t *testing.T) {
	t.Parallel()
	_, nodes, _ := replicas(t, 2, nil)
	a, b := listSecrets(t, nodes[0]), listSecrets(t, nodes[1])
	if len(a) != 1 || len(b) != 1 || a[0].GetId() != b[0].GetId() {
		t.Fatalf("replica A lists %v, B %v: want the same single secret", a, b)
	}
	credA, credB := issue(t, nodes[0].internal(t, nil), "alice"), issue(t, nodes[1].internal(t, nil), "bob")
	if keyIDOf(credA.GetUsername()) != a[0].GetId() || keyIDOf(credB.GetUsername()) != a[0].GetId() {
		t.Errorf("credentials signed by %s and %s, want %s", keyIDOf(credA.GetUsername()), keyIDOf(credB.GetUsername()), a[0].GetId())
	}
}

// A credential issued by one replica validates on the other; a revocation through one reaches
// a WatchRevocations stream on the other and is enforced there.
func TestReplicasShareCredentialsAndRevocations(t *testing.T) {
	t.Parallel()
	_, nodes, _ := replicas(t, 2, nil)
	a, b := nodes[0].internal(t, nil), nodes[1].internal(t, nil)
	cred := issue(t, a, "mallory")
	if v := validateVerdict(t, b, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
		t.Fatalf("A's credential on B: %v, want VALID", v.GetVerdict())
	}

	stream := watchAfterSnapshot(t, b)
	if _, err := a.Revoke(ctx(t), connect.NewRequest(byParticipant("mallory"))); err != nil {
		t.Fatalf("Revoke on A: %v", err)
	}
	if !stream.Receive() {
		t.Fatalf("B's watcher got nothing: %v", stream.Err())
	}
	if revs := stream.Msg().GetRevocations(); !hasParticipant(revs, "mallory") || len(revs) != 1 {
		t.Errorf("B's watcher got %v, want mallory's revocation once", revs)
	}
	if v := validateVerdict(t, b, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
		t.Errorf("revoked through A, on B: %v, want REVOKED", v.GetVerdict())
	}

	// A batch larger than one etcd transaction arrives whole, each revocation once.
	items := make([]*credv1.RevokeRequest, 300)
	for i := range items {
		items[i] = byParticipant(fmt.Sprintf("member-%d", i))
	}
	revokeBatch(t, a, items)
	got := map[string]int{}
	for len(got) < len(items) && stream.Receive() {
		for _, r := range stream.Msg().GetRevocations() {
			got[r.GetParticipantId()]++
		}
	}
	if len(got) != len(items) {
		t.Fatalf("B's watcher got %d of %d batched revocations: %v", len(got), len(items), stream.Err())
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s announced %d times", id, n)
		}
	}
}

// A rotation through one replica is what the other signs with.
func TestReplicasSeeARotation(t *testing.T) {
	t.Parallel()
	_, nodes, _ := replicas(t, 2, nil)
	before := issue(t, nodes[1].internal(t, nil), "alice")
	res, err := nodes[0].admin(t, nil).RotateSecret(ctx(t), connect.NewRequest(&credv1.RotateSecretRequest{}))
	if err != nil {
		t.Fatalf("RotateSecret on A: %v", err)
	}
	active := res.Msg.GetActive().GetId()
	b := nodes[1].internal(t, nil)
	waitFor(t, "B to sign with the secret rotated on A", func() bool {
		return keyIDOf(issue(t, b, "bob").GetUsername()) == active
	})
	if v := validateVerdict(t, b, before.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
		t.Errorf("a credential of the previous secret on B: %v, want VALID", v.GetVerdict())
	}
}

// Expired revocations are swept from etcd with both replicas sweeping, and from both
// replicas' memory.
func TestReplicasSweep(t *testing.T) {
	t.Parallel()
	e, nodes, ep := replicas(t, 2, func(c *credsvc.Config) { c.SweepInterval = 20 * time.Millisecond })
	a := nodes[0].internal(t, nil)
	revokeBatch(t, a, []*credv1.RevokeRequest{byParticipant("m1"), byParticipant("m2"), byParticipant("m3")})
	waitFor(t, "B to hold the revocations", func() bool { return len(listRevocations(t, nodes[1])) == 3 })
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	stored := func() int64 {
		res, err := cli.Get(ctx(t), etcdPrefix+"revocations/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatalf("count revocations in etcd: %v", err)
		}
		return res.Count
	}
	if n := stored(); n != 3 {
		t.Fatalf("%d revocations in etcd, want 3", n)
	}
	e.clock.Advance(25 * time.Hour) // past MaxTTL: every revocation has expired
	waitFor(t, "both replicas to sweep etcd", func() bool { return stored() == 0 })
	for i, n := range nodes {
		if got := listRevocations(t, n); len(got) != 0 {
			t.Errorf("replica %d lists %v after the sweep", i, got)
		}
	}
	// A participant revoked again after the sweep is revoked on both.
	revokeBatch(t, nodes[1].internal(t, nil), []*credv1.RevokeRequest{byParticipant("m1")})
	waitFor(t, "A to hold the new revocation", func() bool { return hasParticipant(listRevocations(t, nodes[0]), "m1") })
}

// With one replica stopped the other goes on: it issues, validates, revokes and announces.
func TestReplicaStoppedOtherGoesOn(t *testing.T) {
	t.Parallel()
	_, nodes, _ := replicas(t, 2, nil)
	cred := issue(t, nodes[0].internal(t, nil), "alice")
	nodes[0].stop()
	b := nodes[1].internal(t, nil)
	if v := validateVerdict(t, b, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
		t.Fatalf("A's credential on B after A stopped: %v, want VALID", v.GetVerdict())
	}
	stream := watchAfterSnapshot(t, b)
	if _, err := b.Revoke(ctx(t), connect.NewRequest(byParticipant("alice"))); err != nil {
		t.Fatalf("Revoke on B: %v", err)
	}
	if !stream.Receive() || !hasParticipant(stream.Msg().GetRevocations(), "alice") {
		t.Fatalf("B's watcher did not hear of alice: %v", stream.Err())
	}
	if v := validateVerdict(t, b, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
		t.Errorf("after the revocation on B: %v, want REVOKED", v.GetVerdict())
	}
	issue(t, b, "bob")
}

// A replica that cannot reach etcd at start fails, naming the endpoints, instead of serving
// without its secrets.
func TestReplicaWithoutEtcdFailsToStart(t *testing.T) {
	t.Parallel()
	endpoint := "http://" + testnet.FreeAddr(t) // nothing listens there
	cfg := newEnv(t).config()
	onEtcd(endpoint, func(c *credsvc.Config) { c.Etcd.DialTimeout = time.Second })(&cfg)
	_, err := credsvc.New(cfg)
	if err == nil || !strings.Contains(err.Error(), endpoint) {
		t.Fatalf("New without etcd: %v, want an error naming %s", err, endpoint)
	}
}

// Over TLS: a replica given the CA, a client certificate and its key reaches an etcd that
// requires them; one without the client certificate is refused at start.
func TestReplicaOnEtcdOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	ca := testtls.NewCA(t)
	ca.WriteCert(t, file("ca.crt"))
	ca.Issue(t, file("server.crt"), file("server.key"), 2, "127.0.0.1")
	ca.IssueClient(t, file("client.crt"), file("client.key"), 3, "credsvc")
	endpoint := testetcd.StartTLS(t, testetcd.TLS{CertFile: file("server.crt"), KeyFile: file("server.key"), CAFile: file("ca.crt")}).Endpoint
	e := newEnv(t)
	n := e.start(onEtcd(endpoint, func(c *credsvc.Config) {
		c.Etcd.CAFile, c.Etcd.CertFile, c.Etcd.KeyFile = file("ca.crt"), file("client.crt"), file("client.key")
	}))
	c := n.internal(t, nil)
	cred := issue(t, c, "alice")
	if _, err := c.Revoke(ctx(t), connect.NewRequest(byParticipant("alice"))); err != nil {
		t.Fatalf("Revoke over TLS: %v", err)
	}
	if v := validateVerdict(t, c, cred.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
		t.Errorf("after the revocation: %v, want REVOKED", v.GetVerdict())
	}

	cfg := e.config()
	onEtcd(endpoint, func(c *credsvc.Config) { c.Etcd.CAFile = file("ca.crt") })(&cfg)
	if _, err := credsvc.New(cfg); err == nil || !strings.Contains(err.Error(), endpoint) {
		t.Errorf("New without a client certificate: %v, want a failure naming %s", err, endpoint)
	}
}
