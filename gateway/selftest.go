package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/durationpb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// The connection self-test (docs/protocol.md, `self-test`): a page checks STUN, TURN over UDP,
// TCP and TLS and a round trip through the relay with credentials of its own. They are issued
// by credsvc for a participant no room knows, so a test never takes a room slot; they last
// selfTestTTL, the socket is closed then, and they are revoked when the socket ends.

// selfTestTTL is long enough for every check on a slow network (each check is bounded by a
// few seconds in the page) and short enough that a leaked credential is worth little.
const selfTestTTL = 5 * time.Minute

// selfTestPrefix marks test participants in credsvc's records and turnsvc's logs.
const selfTestPrefix = "selftest-"

// selfTest is one socket's test credential.
type selfTest struct {
	username string
	timer    *time.Timer
}

// selfTestAnswer is {"type":"self-test","data":{"iceServers":[...],"credentialTtl":<s>}}.
type selfTestAnswer struct {
	Type string       `json:"type"`
	Data selfTestData `json:"data"`
}

type selfTestData struct {
	ICEServers    []iceServer `json:"iceServers"`
	CredentialTTL int64       `json:"credentialTtl"`
}

// startSelfTest issues the test credential and answers with the ICE servers. It runs on the
// reader, which is the only goroutine that touches s.selfTest until the socket ends.
func (s *session) startSelfTest(ctx context.Context) (bool, string) {
	if !s.claimJoin() {
		return false, "join_timeout" // the socket is closed
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	participant := selfTestPrefix + hex.EncodeToString(id[:])
	ictx, cancel := context.WithTimeout(ctx, s.g.cfg.RPCTimeout)
	defer cancel()
	res, err := s.g.creds.Issue(ictx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: participant, Ttl: durationpb.New(selfTestTTL)}))
	if err != nil {
		s.log.WarnContext(ctx, "credential service failed a self-test", "code", connect.CodeOf(err).String(), "err", err)
		s.refuse(ctx, websocket.StatusInternalError, wireError{Text: "Could not get connection details (TURN credentials): please try again shortly", Code: codeServiceUnavailable})
		return false, "credentials_unavailable"
	}
	creds := res.Msg
	s.selfTest = &selfTest{
		username: creds.GetUsername(),
		// The socket ends with the credential: a test lasts minutes, not hours.
		timer: time.AfterFunc(selfTestTTL, func() { s.closeSocket(websocket.StatusNormalClosure, "self-test time is over") }),
	}
	s.state.Store(stateTesting)
	d := selfTestData{ICEServers: iceServers(creds), CredentialTTL: int64(creds.GetTtl().AsDuration().Seconds())}
	s.write(mustJSON(selfTestAnswer{Type: typeSelfTest, Data: d}))
	return true, "ok"
}

// endSelfTest revokes the test credential when the socket ends, so it relays nothing more.
// Bounded by RPCTimeout; a failure is logged: the credential then dies at its short expiry.
func (s *session) endSelfTest() {
	t := s.selfTest
	if t == nil {
		return
	}
	t.timer.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.RPCTimeout)
	defer cancel()
	if _, err := s.g.creds.Revoke(ctx, connect.NewRequest(&credv1.RevokeRequest{
		Target: &credv1.RevokeRequest_Username{Username: t.username}, Reason: "self_test_over",
	})); err != nil {
		s.log.Warn("could not revoke a self-test credential; it expires by itself", "err", err)
	}
}
