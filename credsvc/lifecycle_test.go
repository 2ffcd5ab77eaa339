package credsvc_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tuturu/tuturu/credsvc"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

func keyIDOf(username string) string { return username[strings.LastIndexByte(username, ':')+1:] }

func listSecrets(t *testing.T, n *node) []*credv1.SecretInfo {
	t.Helper()
	res, err := n.admin(t, nil).ListSecrets(ctx(t), connect.NewRequest(&credv1.ListSecretsRequest{}))
	if err != nil {
		t.Fatalf("ListSecrets: %v", err)
	}
	return res.Msg.GetSecrets()
}

func TestRestartKeepsSecretsAndRevocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	c := n.internal(t, nil)
	kept := issue(t, c, "frank")
	gone := issue(t, c, "grace")
	if _, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "grace"}, Reason: "left"})); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	byName := issue(t, c, "heidi")
	if _, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_Username{Username: byName.GetUsername()}})); err != nil {
		t.Fatalf("Revoke username: %v", err)
	}
	n.stop()

	n = e.start(nil)
	c = n.internal(t, nil)
	if v := validateVerdict(t, c, kept.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
		t.Fatalf("after restart, a credential issued before: %v, want VALID (secret lost?)", v.GetVerdict())
	}
	if v := validateVerdict(t, c, gone.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
		t.Errorf("after restart, a revoked participant: %v, want REVOKED", v.GetVerdict())
	}
	if v := validateVerdict(t, c, byName.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_REVOKED {
		t.Errorf("after restart, a revoked username: %v, want REVOKED", v.GetVerdict())
	}
	if again := issue(t, c, "ivan"); keyIDOf(again.GetUsername()) != keyIDOf(kept.GetUsername()) {
		t.Errorf("after restart the key id changed from %s to %s", keyIDOf(kept.GetUsername()), keyIDOf(again.GetUsername()))
	}
	if got := listSecrets(t, n); len(got) != 1 {
		t.Errorf("after restart: %d secrets, want 1", len(got))
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c, admin := n.internal(t, p.opts), n.admin(t, p.opts)
			old := issue(t, c, "judy")
			res, err := admin.RotateSecret(ctx(t), connect.NewRequest(&credv1.RotateSecretRequest{}))
			if err != nil {
				t.Fatalf("RotateSecret: %v", err)
			}
			if res.Msg.GetPrevious().GetId() != keyIDOf(old.GetUsername()) || res.Msg.GetPrevious().GetState() != credv1.SecretState_SECRET_STATE_VERIFYING_ONLY {
				t.Errorf("previous = %v, want %s verifying-only", res.Msg.GetPrevious(), keyIDOf(old.GetUsername()))
			}
			if res.Msg.GetActive().GetState() != credv1.SecretState_SECRET_STATE_ACTIVE || res.Msg.GetActive().GetId() == res.Msg.GetPrevious().GetId() {
				t.Errorf("active = %v", res.Msg.GetActive())
			}
			fresh := issue(t, c, "judy")
			if keyIDOf(fresh.GetUsername()) != res.Msg.GetActive().GetId() {
				t.Errorf("after rotation a new credential names %s, want the new active %s", keyIDOf(fresh.GetUsername()), res.Msg.GetActive().GetId())
			}
			for _, cred := range []*credv1.IssueResponse{old, fresh} {
				v := validateVerdict(t, c, cred.GetUsername())
				if v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
					t.Fatalf("after rotation %s: %v, want VALID", cred.GetUsername(), v.GetVerdict())
				}
				if !equalKey(v.GetKey(), cred) {
					t.Errorf("after rotation %s: the key does not match its password", cred.GetUsername())
				}
			}
		})
	}
}

func TestRotatedSecretRetiresAfterItsCredentialsExpire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.SweepInterval = 5 * time.Millisecond })
	c, admin := n.internal(t, nil), n.admin(t, nil)
	old := issue(t, c, "kim")
	if _, err := admin.RotateSecret(ctx(t), connect.NewRequest(&credv1.RotateSecretRequest{})); err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	oldID := keyIDOf(old.GetUsername())
	// Past MaxTTL (24 h) plus the margin, every credential the old secret signed has expired.
	e.clock.Advance(24*time.Hour + 2*time.Minute)
	waitFor(t, "the old secret to retire", func() bool {
		for _, s := range listSecrets(t, n) {
			if s.GetId() == oldID {
				return s.GetState() == credv1.SecretState_SECRET_STATE_RETIRED
			}
		}
		return false
	})
	// A username naming a retired secret is refused, even with an expiry in the future.
	future := "1900000000:kim:" + oldID
	if v := validateVerdict(t, c, future); v.GetVerdict() != credv1.Verdict_VERDICT_UNKNOWN_SECRET {
		t.Errorf("retired secret: %v, want UNKNOWN_SECRET", v.GetVerdict())
	}
	// A day later it is deleted.
	e.clock.Advance(25 * time.Hour)
	waitFor(t, "the retired secret to be deleted", func() bool {
		got := listSecrets(t, n)
		return len(got) == 1 && got[0].GetId() != oldID
	})
}

func TestTurnSecretReplacesStoredActive(t *testing.T) {
	t.Parallel()
	const first = "first-operator-secret-0123456789abcdef"
	const second = "second-operator-secret-0123456789abcdef"
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.TurnSecret = first })
	old := issue(t, n.internal(t, nil), "leo")
	n.stop()

	n = e.start(func(c *credsvc.Config) { c.TurnSecret = second })
	c := n.internal(t, nil)
	fresh := issue(t, c, "leo")
	if keyIDOf(fresh.GetUsername()) == keyIDOf(old.GetUsername()) {
		t.Fatalf("a changed TURN_SECRET did not become active")
	}
	if v := validateVerdict(t, c, old.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID || !equalKey(v.GetKey(), old) {
		t.Errorf("a credential signed by the previous TURN_SECRET: %v, want VALID until it expires", v.GetVerdict())
	}
	states := map[string]credv1.SecretState{}
	for _, s := range listSecrets(t, n) {
		states[s.GetId()] = s.GetState()
	}
	if states[keyIDOf(old.GetUsername())] != credv1.SecretState_SECRET_STATE_VERIFYING_ONLY || states[keyIDOf(fresh.GetUsername())] != credv1.SecretState_SECRET_STATE_ACTIVE {
		t.Errorf("keyring states = %v", states)
	}
	n.stop()

	// Same TURN_SECRET again: nothing changes.
	n = e.start(func(c *credsvc.Config) { c.TurnSecret = second })
	if got := listSecrets(t, n); len(got) != 2 {
		t.Errorf("restart with the same TURN_SECRET: %d secrets, want 2", len(got))
	}
	n.stop()

	// Back to the first: its key id is active again, the second verifies.
	n = e.start(func(c *credsvc.Config) { c.TurnSecret = first })
	states = map[string]credv1.SecretState{}
	for _, s := range listSecrets(t, n) {
		states[s.GetId()] = s.GetState()
	}
	if len(states) != 2 || states[keyIDOf(old.GetUsername())] != credv1.SecretState_SECRET_STATE_ACTIVE || states[keyIDOf(fresh.GetUsername())] != credv1.SecretState_SECRET_STATE_VERIFYING_ONLY {
		t.Errorf("after setting TURN_SECRET back: keyring states = %v", states)
	}
	if v := validateVerdict(t, n.internal(t, nil), fresh.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID || !equalKey(v.GetKey(), fresh) {
		t.Errorf("a credential signed by the second secret: %v, want VALID", v.GetVerdict())
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		mod  func(*credsvc.Config)
		want string
	}{
		{"short secret", func(c *credsvc.Config) { c.TurnSecret = "too-short" }, "TURN_SECRET"},
		{"ttl above max", func(c *credsvc.Config) { c.TTL = 48 * time.Hour }, "TURN_TTL"},
		{"tiny max ttl", func(c *credsvc.Config) { c.MaxTTL = time.Second; c.TTL = time.Second }, "TURN_MAX_TTL"},
		{"no host", func(c *credsvc.Config) { c.TurnHost = "" }, "TURN_HOST"},
		{"bad port", func(c *credsvc.Config) { c.TurnPort = 0 }, "TURN_PORT"},
		{"bad tls port", func(c *credsvc.Config) { c.TurnsPort = 70000 }, "TURNS_PORT"},
		{"bad udp url port", func(c *credsvc.Config) { c.TurnUDPPort = -1 }, "TURN_UDP_URL_PORT"},
		{"bad stun", func(c *credsvc.Config) { c.STUNServers = []string{"turn:x.example:3478"} }, "STUN_SERVERS"},
		{"etcd endpoint not a URL", func(c *credsvc.Config) { c.Etcd.Endpoints = []string{"etcd:2379/x"} }, "CREDSVC_ETCD_ENDPOINTS"},
		{"etcd and bbolt", func(c *credsvc.Config) { c.Etcd.Endpoints, c.DBPath = []string{"http://127.0.0.1:2379"}, "x.db" }, "CREDSVC_DB"},
		{"etcd cert without key", func(c *credsvc.Config) {
			c.Etcd.Endpoints, c.Etcd.CertFile = []string{"https://127.0.0.1:2379"}, "client.pem"
		}, "CREDSVC_ETCD_CERT_FILE"},
		{"etcd TLS without etcd", func(c *credsvc.Config) { c.Etcd.CAFile = "ca.pem" }, "CREDSVC_ETCD_CA_FILE"},
		{"etcd CA missing", func(c *credsvc.Config) {
			c.Etcd.Endpoints, c.Etcd.CAFile = []string{"https://127.0.0.1:2379"}, filepath.Join(e.dir, "no-ca.pem")
		}, "CREDSVC_ETCD_CA_FILE"},
		{"etcd password without user", func(c *credsvc.Config) {
			c.Etcd.Endpoints, c.Etcd.Password = []string{"http://127.0.0.1:2379"}, "pw"
		}, "CREDSVC_ETCD_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config()
			tc.mod(&cfg)
			_, err := credsvc.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "too-short") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestDatabaseLockedByAnotherInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(nil)
	start := time.Now()
	_, err := credsvc.New(e.config())
	if err == nil {
		t.Fatal("a second credsvc opened the same database")
	}
	if !strings.Contains(err.Error(), e.dbPath()) || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("error = %v, want one naming %s and the lock", err, e.dbPath())
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("New waited %v for the lock", waited)
	}
}

// equalKey reports whether key is the long-term key of the credential in res.
func equalKey(key []byte, res *credv1.IssueResponse) bool {
	return string(key) == string(turnKey(res.GetUsername(), res.GetPassword()))
}

// waitFor polls cond every 10 ms for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Bound from flags and environment as main does: the defaults start, and each variable's
// error names it.
func TestBindFromEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bind := func(env map[string]string) (credsvc.Config, error) {
		cfg := e.config()
		v := platform.NewVars(flag.NewFlagSet("credsvc", flag.ContinueOnError), func(k string) string { return env[k] })
		cfg.Bind(v)
		return cfg, v.Resolve()
	}
	cfg, err := bind(map[string]string{
		"CREDSVC_DB":   filepath.Join(e.dir, "elsewhere", "creds.db"),
		"STUN_SERVERS": "stun.example.org:3478, stun:stun2.example.org",
		"TURNS_PORT":   "443",
		"TURN_TTL":     "30m",
	})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	cfg.Listener, cfg.Now = e.config().Listener, e.clock.Now
	n := e.start(func(c *credsvc.Config) { *c = cfg })
	got := issue(t, n.internal(t, nil), "victor")
	if got.GetTtl().AsDuration() != 30*time.Minute {
		t.Errorf("ttl = %v, want TURN_TTL 30m", got.GetTtl().AsDuration())
	}
	if urls := got.GetIceServers()[0].GetUrls(); !slices.Equal(urls, []string{"stun:stun.example.org:3478", "stun:stun2.example.org"}) {
		t.Errorf("STUN urls = %q", urls)
	}
	if urls := got.GetTurnUrls(); len(urls) != 3 || urls[2] != "turns:127.0.0.1:443?transport=tcp" {
		t.Errorf("TURN urls = %q, want a turns: URL on TURNS_PORT", urls)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "elsewhere", "creds.db")); err != nil {
		t.Errorf("CREDSVC_DB not used: %v", err)
	}

	_, err = bind(map[string]string{"TURN_TTL": "forever"})
	if err == nil || !strings.Contains(err.Error(), "TURN_TTL") {
		t.Errorf("TURN_TTL=forever: %v, want an error naming TURN_TTL", err)
	}
}

// When serving fails on its own, Run returns the error (and releases the database) instead of
// waiting for a cancel that never comes.
func TestRunReturnsWhenServingFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config()
	svc, err := credsvc.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cfg.Listener.Close()
	done := make(chan error, 1)
	go func() { done <- svc.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its listener failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its listener failed")
	}
	// The database was closed: another instance can open it.
	e.start(nil)
}
