package credsvc_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/turn/v4"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tuturu/tuturu/credsvc"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

const realm = "tuturu"

func issue(t testing.TB, c credv1connect.CredentialServiceClient, participant string) *credv1.IssueResponse {
	t.Helper()
	res, err := c.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: participant}))
	if err != nil {
		t.Fatalf("Issue(%q): %v", participant, err)
	}
	return res.Msg
}

func TestIssueThenValidate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) {
		c.STUNServers = []string{"stun:stun.example.org:3478", "stun:[2001:db8::1]:3478"}
		c.TurnHost = "turn.example.org"
		c.TurnsPort = 5349
	})
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := n.internal(t, p.opts)
			got := issue(t, c, "alice-"+p.name)

			now := e.clock.Now()
			if want := now.Add(4 * time.Hour); !got.GetExpiresAt().AsTime().Equal(want) {
				t.Errorf("expires_at = %v, want %v", got.GetExpiresAt().AsTime(), want)
			}
			if got.GetTtl().AsDuration() != 4*time.Hour {
				t.Errorf("ttl = %v, want 4h", got.GetTtl().AsDuration())
			}
			parts := strings.Split(got.GetUsername(), ":")
			if len(parts) != 3 || parts[0] != "1800014400" || parts[1] != "alice-"+p.name || len(parts[2]) != 8 {
				t.Errorf("username = %q, want 1800014400:alice-%s:<8-hex key id>", got.GetUsername(), p.name)
			}
			wantTURN := []string{
				"turn:turn.example.org:3478?transport=udp",
				"turn:turn.example.org:3478?transport=tcp",
				"turns:turn.example.org:5349?transport=tcp",
			}
			if !slices.Equal(got.GetTurnUrls(), wantTURN) {
				t.Errorf("turn_urls = %q, want %q", got.GetTurnUrls(), wantTURN)
			}
			ice := got.GetIceServers()
			if len(ice) != 2 {
				t.Fatalf("ice_servers = %v, want a STUN entry and a TURN entry", ice)
			}
			if !slices.Equal(ice[0].GetUrls(), []string{"stun:stun.example.org:3478", "stun:[2001:db8::1]:3478"}) || ice[0].GetUsername() != "" || ice[0].GetCredential() != "" {
				t.Errorf("STUN entry = %v", ice[0])
			}
			if !slices.Equal(ice[1].GetUrls(), wantTURN) || ice[1].GetUsername() != got.GetUsername() || ice[1].GetCredential() != got.GetPassword() {
				t.Errorf("TURN entry = %v", ice[1])
			}

			v, err := c.Validate(ctx(t), connect.NewRequest(&credv1.ValidateRequest{Username: got.GetUsername(), Realm: realm}))
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if v.Msg.GetVerdict() != credv1.Verdict_VERDICT_VALID {
				t.Fatalf("verdict = %v, want VALID", v.Msg.GetVerdict())
			}
			if want := turn.GenerateAuthKey(got.GetUsername(), realm, got.GetPassword()); !bytes.Equal(v.Msg.GetKey(), want) {
				t.Errorf("key = %x, want turn.GenerateAuthKey = %x", v.Msg.GetKey(), want)
			}
			if v.Msg.GetParticipantId() != "alice-"+p.name || !v.Msg.GetExpiresAt().AsTime().Equal(got.GetExpiresAt().AsTime()) {
				t.Errorf("validate = %v", v.Msg)
			}
		})
	}
}

func TestIssueWithoutSTUNAndTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.TurnHost = "::1" })
	got := issue(t, n.internal(t, nil), "bob")
	want := []string{"turn:[::1]:3478?transport=udp", "turn:[::1]:3478?transport=tcp"}
	if len(got.GetIceServers()) != 1 || !slices.Equal(got.GetIceServers()[0].GetUrls(), want) || !slices.Equal(got.GetTurnUrls(), want) {
		t.Fatalf("ice_servers = %v, turn_urls = %q; want only %q", got.GetIceServers(), got.GetTurnUrls(), want)
	}
}

// TestIssueUDPURLPort: TURN_UDP_URL_PORT moves the UDP URL alone (UDP forwarded on another port).
func TestIssueUDPURLPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.TurnHost = "turn.example.org"; c.TurnUDPPort = 3479 })
	want := []string{"turn:turn.example.org:3479?transport=udp", "turn:turn.example.org:3478?transport=tcp"}
	if got := issue(t, n.internal(t, nil), "carol").GetTurnUrls(); !slices.Equal(got, want) {
		t.Fatalf("turn_urls = %q, want %q", got, want)
	}
}

func TestIssueTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := n.internal(t, p.opts)
			for _, tc := range []struct {
				ask, want time.Duration
			}{
				{10 * time.Minute, 10 * time.Minute},
				{48 * time.Hour, 24 * time.Hour}, // capped at MaxTTL
			} {
				res, err := c.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: "p", Ttl: durationpb.New(tc.ask)}))
				if err != nil {
					t.Fatalf("Issue ttl %v: %v", tc.ask, err)
				}
				if res.Msg.GetTtl().AsDuration() != tc.want || !res.Msg.GetExpiresAt().AsTime().Equal(e.clock.Now().Add(tc.want)) {
					t.Errorf("ttl %v: got ttl %v expires %v", tc.ask, res.Msg.GetTtl().AsDuration(), res.Msg.GetExpiresAt().AsTime())
				}
			}
			for _, bad := range []*credv1.IssueRequest{
				{ParticipantId: ""},
				{ParticipantId: "has space"},
				{ParticipantId: strings.Repeat("x", 129)},
				{ParticipantId: "p", Ttl: durationpb.New(-time.Second)},
				{ParticipantId: "p", Ttl: durationpb.New(time.Millisecond)},
			} {
				_, err := c.Issue(ctx(t), connect.NewRequest(bad))
				if connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Errorf("Issue(%v) error = %v, want InvalidArgument", bad, err)
				}
			}
		})
	}
}

// validateVerdict validates username and returns the verdict.
func validateVerdict(t *testing.T, c credv1connect.CredentialServiceClient, username string) *credv1.ValidateResponse {
	t.Helper()
	res, err := c.Validate(ctx(t), connect.NewRequest(&credv1.ValidateRequest{Username: username, Realm: realm}))
	if err != nil {
		t.Fatalf("Validate(%q): %v", username, err)
	}
	if res.Msg.GetVerdict() != credv1.Verdict_VERDICT_VALID && len(res.Msg.GetKey()) != 0 {
		t.Errorf("Validate(%q): verdict %v carries a key", username, res.Msg.GetVerdict())
	}
	return res.Msg
}

func TestValidateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := n.internal(t, p.opts)
			good := issue(t, c, "carol-"+p.name)
			keyID := good.GetUsername()[strings.LastIndexByte(good.GetUsername(), ':')+1:]
			expiry := good.GetUsername()[:strings.IndexByte(good.GetUsername(), ':')]

			for _, u := range []string{"", "carol", expiry + ":carol", "x:carol:" + keyID, expiry + ":carol:NOTHEX!!", expiry + "::" + keyID} {
				if v := validateVerdict(t, c, u); v.GetVerdict() != credv1.Verdict_VERDICT_MALFORMED {
					t.Errorf("Validate(%q) = %v, want MALFORMED", u, v.GetVerdict())
				}
			}
			// Signed by a secret this service never had: the key id is unknown.
			if v := validateVerdict(t, c, expiry+":carol:0badf00d"); v.GetVerdict() != credv1.Verdict_VERDICT_UNKNOWN_SECRET {
				t.Errorf("foreign key id: %v, want UNKNOWN_SECRET", v.GetVerdict())
			}
			// A client holding a password made with the wrong secret cannot match the key.
			forged := wrongSecretPassword(good.GetUsername())
			if v := validateVerdict(t, c, good.GetUsername()); bytes.Equal(v.GetKey(), turn.GenerateAuthKey(good.GetUsername(), realm, forged)) {
				t.Errorf("a password made with another secret yields the valid key")
			}
			// Already expired: an expiry in the past.
			past := "1700000000:carol:" + keyID
			if v := validateVerdict(t, c, past); v.GetVerdict() != credv1.Verdict_VERDICT_EXPIRED {
				t.Errorf("past expiry: %v, want EXPIRED", v.GetVerdict())
			}
		})
	}
}

func wrongSecretPassword(username string) string {
	mac := hmac.New(sha1.New, []byte("some-other-secret-of-32-characters-or-more"))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestValidateExpiresWithTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	c := n.internal(t, nil)
	got := issue(t, c, "dave")
	e.clock.Advance(4*time.Hour - time.Second)
	if v := validateVerdict(t, c, got.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_VALID {
		t.Fatalf("one second before expiry: %v, want VALID", v.GetVerdict())
	}
	e.clock.Advance(time.Second)
	if v := validateVerdict(t, c, got.GetUsername()); v.GetVerdict() != credv1.Verdict_VERDICT_EXPIRED {
		t.Fatalf("at expiry: %v, want EXPIRED", v.GetVerdict())
	}
}

// The password handed out is coturn's formula over the configured TURN_SECRET, computed here
// independently: a stock coturn with the same static-auth-secret accepts it.
func TestPasswordMatchesCoturnWithConfiguredSecret(t *testing.T) {
	t.Parallel()
	const secret = "operator-chosen-secret-0123456789abcdef"
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.TurnSecret = secret })
	got := issue(t, n.internal(t, nil), "erin")
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(got.GetUsername()))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); got.GetPassword() != want {
		t.Fatalf("password = %q, want base64(HMAC-SHA1(TURN_SECRET, username)) = %q", got.GetPassword(), want)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.start(nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			// Internal RPCs: no token → Unauthenticated; the admin token → PermissionDenied.
			bare := n.internalWithToken("", p.opts)
			if _, err := bare.Issue(ctx(t), connect.NewRequest(&credv1.IssueRequest{ParticipantId: "x"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("Issue without token: %v, want Unauthenticated", err)
			}
			wrong := n.internalWithToken(adminToken, p.opts)
			if _, err := wrong.Validate(ctx(t), connect.NewRequest(&credv1.ValidateRequest{Username: "x"})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("Validate with the admin token: %v, want PermissionDenied", err)
			}
			// Admin RPCs: no token → Unauthenticated; the internal token → PermissionDenied.
			bareAdmin := n.adminWithToken("", p.opts)
			if _, err := bareAdmin.ListSecrets(ctx(t), connect.NewRequest(&credv1.ListSecretsRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("ListSecrets without token: %v, want Unauthenticated", err)
			}
			internalAsAdmin := n.adminWithToken(internalToken, p.opts)
			if _, err := internalAsAdmin.RotateSecret(ctx(t), connect.NewRequest(&credv1.RotateSecretRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("RotateSecret with the internal token: %v, want PermissionDenied", err)
			}
			if _, err := n.admin(t, p.opts).ListSecrets(ctx(t), connect.NewRequest(&credv1.ListSecretsRequest{})); err != nil {
				t.Errorf("ListSecrets with the admin token: %v", err)
			}
		})
	}
}

func turnKey(username, password string) []byte {
	return turn.GenerateAuthKey(username, realm, password)
}
