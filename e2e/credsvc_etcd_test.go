package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testetcd"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/turnsvc"
)

// TestCredsvcReplicasOnEtcd: two `tuturu credsvc` processes share one embedded etcd, and an
// in-process turnsvc follows each. A credential issued by replica A allocates on the turnsvc
// that asks replica B; revoking its participant through A cuts that relay: the revocation goes
// A → etcd → B's watch → B's WatchRevocations stream → turnsvc. The other way round too.
func TestCredsvcReplicasOnEtcd(t *testing.T) {
	t.Parallel()
	tuturuBinary(t) // built before anything runs
	endpoint := testetcd.Start(t).Endpoint
	adminToken, internalToken := platform.RandomToken(24), platform.RandomToken(24)
	credEnv := func() map[string]string { return credsvcEtcdEnv(t, endpoint, internalToken, adminToken) }
	replicas := []*proc{startProc(t, "credsvc", "", credEnv()), startProc(t, "credsvc", "", credEnv())}
	svcs := &inProcServices{t: t}
	t.Cleanup(svcs.stopAll) // before the credsvc processes and etcd stop
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("credsvc A:\n%s\ncredsvc B:\n%s", replicas[0].log(), replicas[1].log())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	admin := connect.WithInterceptors(platform.NewSendToken(adminToken))
	internal := connect.WithInterceptors(platform.NewSendToken(internalToken))
	turns := make([]*turnStack, len(replicas))
	creds := make([]credv1connect.CredentialAdminServiceClient, len(replicas))
	for i, r := range replicas {
		credURL := "http://" + r.addr
		creds[i] = credv1connect.NewCredentialAdminServiceClient(platform.NewH2CClient(), credURL, admin)
		name := "turnsvc-" + string(rune('A'+i))
		ts, err := turnsvc.New(newTurnsvcAt(t, credURL, internalToken, adminToken, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		svcs.start(name, ts.Run)
		turns[i] = &turnStack{udp: ts.TURNAddr().String(),
			cred:  credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), credURL, internal),
			admin: turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), "http://"+ts.Addr(), admin)}
		waitFor(t, 10*time.Second, name+"'s revocation feed connected", func() bool { return turns[i].feedConnected(ctx, t) })
	}
	if a, b := listSecrets(ctx, t, creds[0]), listSecrets(ctx, t, creds[1]); a != b {
		t.Fatalf("the replicas list different keyrings:\nA %s\nB %s", a, b)
	}
	peer := testnet.UDPEchoPeer(t).LocalAddr()

	for _, c := range []struct{ issuer, revoker, relay int }{{0, 0, 1}, {1, 1, 0}} {
		participant := "member-" + string(rune('A'+c.issuer)) + "-" + string(rune('A'+c.relay))
		res, err := turns[c.issuer].cred.Issue(ctx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: participant}))
		if err != nil {
			t.Fatalf("Issue on replica %c: %v", 'A'+c.issuer, err)
		}
		what := participant + "'s relay on the turnsvc that asks the other replica"
		relay := allocateAndEcho(t, turns[c.relay].client(t, "udp", res.Msg.GetUsername(), res.Msg.GetPassword()), peer, what)
		revokedAt := time.Now()
		if _, err := creds[c.revoker].RevokeParticipant(ctx, connect.NewRequest(&credv1.RevokeParticipantRequest{ParticipantId: participant, Reason: "kicked"})); err != nil {
			t.Fatalf("RevokeParticipant on replica %c: %v", 'A'+c.revoker, err)
		}
		waitFor(t, 10*time.Second, what+" closed", func() bool { return len(turns[c.relay].allocations(t, participant)) == 0 })
		t.Logf("revoked through replica %c: %s closed after %v", 'A'+c.revoker, what, time.Since(revokedAt).Round(time.Millisecond))
		if err := testnet.RelayRoundTrip(relay, peer, what+" after the revocation", 300*time.Millisecond); err == nil {
			t.Errorf("%s still relays after the revocation", what)
		}
		if _, err := turns[c.relay].client(t, "udp", res.Msg.GetUsername(), res.Msg.GetPassword()).Allocate(); err == nil {
			t.Errorf("%s: the revoked credential allocates again", participant)
		}
	}
}

// credsvcEtcdEnv is the environment of a credsvc replica process on the etcd at endpoint.
func credsvcEtcdEnv(t *testing.T, endpoint, internalToken, adminToken string) map[string]string {
	return map[string]string{
		"CREDSVC_ADDR":           "127.0.0.1:0",
		"DATA_DIR":               t.TempDir(),
		"INTERNAL_TOKEN":         internalToken,
		"ADMIN_TOKEN":            adminToken,
		"CREDSVC_ETCD_ENDPOINTS": endpoint,
		"LOG_LEVEL":              "debug",
	}
}
