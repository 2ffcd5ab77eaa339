package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// TestBrowserSelfTest: a `self-test` first message gets short-lived TURN credentials of a
// participant no room knows; they relay; the socket holds no room (a join on it is refused,
// and two others fill the PIN room as usual); closing the socket revokes them at once; and
// self-tests are limited like joins.
func TestBrowserSelfTest(t *testing.T) {
	ts := startTurnStack(t, nil)
	c := dialWS(t, ts.stack, "tester", nil)
	c.send(`{"type":"self-test"}`)
	m := c.expect("self-test")
	var info joinInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatalf("self-test data: %v", err)
	}
	if info.CredentialTTL <= 0 || info.CredentialTTL > 600 {
		t.Fatalf("self-test credential TTL %d s, want minutes", info.CredentialTTL)
	}
	if info.ParticipantID != "" || info.ResumeToken != "" {
		t.Fatalf("self-test answer carries a membership: %s", m.raw)
	}
	var urls []string
	for _, s := range info.ICEServers {
		urls = append(urls, s.URLs...)
	}
	if !strings.Contains(strings.Join(urls, " "), "transport=udp") || !strings.Contains(strings.Join(urls, " "), "transport=tcp") {
		t.Fatalf("self-test ICE servers lack TURN over UDP and TCP: %v", urls)
	}
	user, pass := turnCredential(t, ts, info)
	if !strings.Contains(user, ":selftest-") {
		t.Fatalf("self-test username %q is not a test participant's", user)
	}
	allocateAndEcho(t, ts.client(t, "udp", user, pass), echoPeer(t), "self-test credential over UDP")

	// Not a room slot: this socket cannot join, and a PIN room fills with two others.
	c.send(`{"type":"join-pin","pin":"` + nextPIN() + `"}`)
	c.expectError("", "ALREADY_JOINED")
	joinedPair(t, ts.stack, nextPIN())

	// The end of the socket revokes the credential.
	_ = c.c.Close(websocket.StatusNormalClosure, "done")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, 5*time.Second, "self-test credential revoked", func() bool {
		res, err := ts.cred.Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: user, Realm: "tuturu"}))
		return err == nil && res.Msg.GetVerdict() == credv1.Verdict_VERDICT_REVOKED
	})

	// Limited like joins: the join limiter's burst, then JOIN_RATE_LIMITED.
	for i := range 100 {
		d := dialWS(t, ts.stack, "burst", nil)
		d.send(`{"type":"self-test"}`)
		r := d.recv()
		_ = d.c.CloseNow()
		if r.Type == "error" {
			if r.Code != "JOIN_RATE_LIMITED" {
				t.Fatalf("self-test %d: %s", i, r.raw)
			}
			return
		}
	}
	t.Fatal("100 self-tests from one address in a row were all answered: no join limit")
}
