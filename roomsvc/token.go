package roomsvc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// Resume tokens look like "v1.<payload>.<mac>", both parts unpadded base64url:
//
//	payload = participant_id "\n" room_id "\n" expiry (unix seconds, decimal)
//	mac     = HMAC-SHA256(token key, "v1." + <payload part as sent>)
//
// The keys are random per process: rooms live in memory, so a token from an earlier process
// could not name a live slot anyway.
const (
	tokenPrefix = "v1."
	// maxTokenLen bounds what is parsed; real tokens are about 150 characters.
	maxTokenLen = 512
)

var (
	errTokenMalformed = errors.New("resume token is malformed")
	errTokenSignature = errors.New("resume token signature does not match")
	errTokenExpired   = errors.New("resume token has expired")
)

// keys are the per-process secrets for room ids and resume tokens.
type keys struct {
	room  []byte
	token []byte
}

func newKeys() keys {
	k := keys{room: make([]byte, 32), token: make([]byte, 32)}
	_, _ = rand.Read(k.room) // crypto/rand.Read never fails on supported platforms.
	_, _ = rand.Read(k.token)
	return k
}

// roomID is a keyed hash of the room's kind and name (PIN or lobby name), so ids can be shown
// to operators and put in traces without revealing the PIN.
func (k keys) roomID(kind roomv1.RoomKind, name string) string {
	mac := hmac.New(sha256.New, k.room)
	mac.Write([]byte{byte(kind), 0})
	mac.Write([]byte(name))
	sum := mac.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// tokenClaims is what a resume token asserts.
type tokenClaims struct {
	participantID string
	roomID        string
	expiry        time.Time
}

func (k keys) signToken(c tokenClaims) string {
	payload := c.participantID + "\n" + c.roomID + "\n" + strconv.FormatInt(c.expiry.Unix(), 10)
	signed := tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return signed + "." + base64.RawURLEncoding.EncodeToString(k.tokenMAC(signed))
}

func (k keys) tokenMAC(signed string) []byte {
	mac := hmac.New(sha256.New, k.token)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

// verifyToken checks a token's form, signature and expiry. It says nothing about whether the
// slot it names is still held: the hub checks that.
func (k keys) verifyToken(tok string, now time.Time) (tokenClaims, error) {
	if len(tok) > maxTokenLen || !strings.HasPrefix(tok, tokenPrefix) {
		return tokenClaims{}, errTokenMalformed
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= len(tokenPrefix) {
		return tokenClaims{}, errTokenMalformed
	}
	signed, sig := tok[:dot], tok[dot+1:]
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return tokenClaims{}, errTokenMalformed
	}
	if !hmac.Equal(mac, k.tokenMAC(signed)) {
		return tokenClaims{}, errTokenSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(signed[len(tokenPrefix):])
	if err != nil {
		return tokenClaims{}, errTokenMalformed
	}
	parts := strings.Split(string(payload), "\n")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return tokenClaims{}, errTokenMalformed
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return tokenClaims{}, errTokenMalformed
	}
	c := tokenClaims{participantID: parts[0], roomID: parts[1], expiry: time.Unix(exp, 0)}
	if !now.Before(c.expiry) {
		return tokenClaims{}, errTokenExpired
	}
	return c, nil
}

// newParticipantID returns 128 random bits in hex: safe in TURN usernames, logs and traces.
func newParticipantID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
