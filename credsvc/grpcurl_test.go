package credsvc_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/internal/testproc"
)

// grpcurlBinary builds the pinned grpcurl, the first time only, and returns the path of the
// executable go tool keeps in the build cache.
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	// A cold build takes minutes on a busy 2-core machine; afterwards this is under a second.
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := testproc.GoTool(c, "../tools/grpcurl/go.mod", "grpcurl")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// grpcurl runs grpcurl against addr and returns its combined output.
func grpcurl(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(c, bin, args...).CombinedOutput()
	return string(out), err
}

// An operator with grpcurl and no proto files: reflection lists the services, the admin token
// opens the admin RPCs, and ListSecrets shows ids and states, never a secret.
func TestGrpcurl(t *testing.T) {
	t.Parallel()
	const secret = "grpcurl-visible-secret-0123456789abcdef"
	bin := grpcurlBinary(t)
	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.TurnSecret = secret })
	addr := strings.TrimPrefix(n.url, "http://")

	out, err := grpcurl(t, bin, "-plaintext", addr, "list")
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	for _, want := range []string{"tuturu.cred.v1.CredentialService", "tuturu.cred.v1.CredentialAdminService", "grpc.health.v1.Health"} {
		if !strings.Contains(out, want) {
			t.Errorf("grpcurl list lacks %s:\n%s", want, out)
		}
	}

	out, err = grpcurl(t, bin, "-plaintext", addr, "tuturu.cred.v1.CredentialAdminService/ListSecrets")
	if err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("ListSecrets without a token: %v\n%s", err, out)
	}

	out, err = grpcurl(t, bin, "-plaintext", "-H", "authorization: Bearer "+adminToken, addr, "tuturu.cred.v1.CredentialAdminService/ListSecrets")
	if err != nil {
		t.Fatalf("grpcurl ListSecrets: %v\n%s", err, out)
	}
	var list struct {
		Secrets []struct{ ID, State string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ListSecrets output %q: %v", out, err)
	}
	if len(list.Secrets) != 1 || list.Secrets[0].State != "SECRET_STATE_ACTIVE" || len(list.Secrets[0].ID) != 8 {
		t.Errorf("ListSecrets = %+v", list)
	}
	if strings.Contains(out, secret) {
		t.Errorf("ListSecrets shows the secret:\n%s", out)
	}

	out, err = grpcurl(t, bin, "-plaintext", "-H", "authorization: Bearer "+adminToken, "-d", `{"participant_id":"wendy","reason":"admin"}`,
		addr, "tuturu.cred.v1.CredentialAdminService/RevokeParticipant")
	if err != nil || !strings.Contains(out, `"participantId": "wendy"`) {
		t.Errorf("grpcurl RevokeParticipant: %v\n%s", err, out)
	}
}
