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

// Resume tokens look like "[<shard>.]v2.<payload>.<mac>", both parts unpadded base64url:
//
//	shard   = the tag of the shard that issued it (the stream's, SessionsRequest.shard), in
//	          clear so a gateway routes a resume without the key; absent when unsharded
//	payload = participant_id "\n" room_id "\n" expiry (unix seconds) "\n" issued (unix ms)
//	          "\n" room kind "\n" role (enum numbers) "\n" hint "\n" peer id
//	mac     = HMAC-SHA256(token key, [<shard> "."] "v2." + <payload part as sent>)
//
// The shard is under the MAC: a token whose tag was changed, or that reaches another shard,
// is refused, so a token stays good for its one slot.
//
// A token carries what roomsvc needs to rebuild the member's slot, so a resume works after a
// roomsvc restart (rooms live in memory). The keys are derived from the internal token, which
// every roomsvc process and replica shares and which survives restarts.
const (
	tokenPrefix = "v2."
	// maxTokenLen bounds what is parsed; real tokens are about 150 characters.
	maxTokenLen = 512
)

var (
	errTokenMalformed = errors.New("resume token is malformed")
	errTokenSignature = errors.New("resume token signature does not match")
	errTokenExpired   = errors.New("resume token has expired")
	errTokenShard     = errors.New("resume token was issued by another shard")
)

// keys are the per-process secrets for room ids and resume tokens.
type keys struct {
	room  []byte
	token []byte
}

// newKeys derives the keys from secret, or makes random ones when there is none (then tokens
// do not survive a restart).
func newKeys(secret string) keys {
	if secret == "" {
		k := keys{room: make([]byte, 32), token: make([]byte, 32)}
		_, _ = rand.Read(k.room) // crypto/rand.Read never fails on supported platforms.
		_, _ = rand.Read(k.token)
		return k
	}
	derive := func(label string) []byte {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(label))
		return mac.Sum(nil)
	}
	return keys{room: derive("tuturu roomsvc room ids"), token: derive("tuturu roomsvc resume tokens")}
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
	shard         string // the issuing shard's tag; "" when unsharded
	expiry        time.Time
	issued        time.Time
	kind          roomv1.RoomKind
	role          roomv1.Role
	hint          string // the room's hint (****56, or the lobby name)
	peerID        string // lobby members only
}

func (k keys) signToken(c tokenClaims) string {
	payload := strings.Join([]string{
		c.participantID, c.roomID, strconv.FormatInt(c.expiry.Unix(), 10), strconv.FormatInt(c.issued.UnixMilli(), 10),
		strconv.Itoa(int(c.kind)), strconv.Itoa(int(c.role)), c.hint, c.peerID,
	}, "\n")
	signed := shardPrefix(c.shard) + tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return signed + "." + base64.RawURLEncoding.EncodeToString(k.tokenMAC(signed))
}

func (k keys) tokenMAC(signed string) []byte {
	mac := hmac.New(sha256.New, k.token)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

// shardPrefix is the clear part of a token that names its shard.
func shardPrefix(shard string) string {
	if shard == "" {
		return ""
	}
	return shard + "."
}

// verifyToken checks a token's form, shard (it must be shard, the tag of the stream it came
// on), signature and expiry. It says nothing about whether the slot it names is still held:
// the hub checks that.
func (k keys) verifyToken(tok, shard string, now time.Time) (tokenClaims, error) {
	lead := shardPrefix(shard) + tokenPrefix
	if len(tok) > maxTokenLen {
		return tokenClaims{}, errTokenMalformed
	}
	if !strings.HasPrefix(tok, lead) {
		if strings.HasPrefix(tok, tokenPrefix) || strings.Contains(tok, "."+tokenPrefix) {
			return tokenClaims{}, errTokenShard
		}
		return tokenClaims{}, errTokenMalformed
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= len(lead) {
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
	payload, err := base64.RawURLEncoding.DecodeString(signed[len(lead):])
	if err != nil {
		return tokenClaims{}, errTokenMalformed
	}
	parts := strings.Split(string(payload), "\n")
	if len(parts) != 8 || parts[0] == "" || parts[1] == "" {
		return tokenClaims{}, errTokenMalformed
	}
	exp, err1 := strconv.ParseInt(parts[2], 10, 64)
	issued, err2 := strconv.ParseInt(parts[3], 10, 64)
	kind, err3 := strconv.Atoi(parts[4])
	role, err4 := strconv.Atoi(parts[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return tokenClaims{}, errTokenMalformed
	}
	c := tokenClaims{participantID: parts[0], roomID: parts[1], shard: shard, expiry: time.Unix(exp, 0), issued: time.UnixMilli(issued),
		kind: roomv1.RoomKind(kind), role: roomv1.Role(role), hint: parts[6], peerID: parts[7]}
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
