package credsvc

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // TURN long-term keys are MD5 by RFC 5389 §15.4.
	"crypto/sha1" //nolint:gosec // coturn's REST credentials are HMAC-SHA1; we must match them.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A TURN username is `<unix expiry>:<participant>:<key id>`: coturn's REST format
// `<expiry>:<id>` whose `<id>` ends with the id of the secret that signed it. The expiry is
// parsed up to the first colon and the key id from the last one, so participant ids may
// contain colons. See docs/credentials.md.

const (
	// keyIDLen is the length of a key id: 8 lowercase hex digits (32 bits of a SHA-256).
	keyIDLen = 8
	// maxParticipantLen keeps usernames well under STUN's 513-byte USERNAME limit.
	maxParticipantLen = 128
	// maxUsernameLen is STUN's limit on the USERNAME attribute (RFC 8489 §14.3).
	maxUsernameLen = 513
)

var (
	errMalformed = errors.New("not a TURN username of the form <unix expiry>:<participant>:<key id>")
)

// credential is a parsed TURN username.
type credential struct {
	Username    string
	Expiry      time.Time
	Participant string
	KeyID       string
}

// keyIDOf derives a secret's key id from the secret itself, so that two credsvc instances
// given the same TURN_SECRET agree on its id. 32 bits reveal nothing useful: the password
// HMAC already lets anyone test guesses of the secret offline.
func keyIDOf(secret string) string {
	sum := sha256.Sum256([]byte("tuturu turn key id\x00" + secret))
	return hex.EncodeToString(sum[:keyIDLen/2])
}

// formatUsername builds the username for a participant, expiring at expiry, signed by keyID.
func formatUsername(expiry time.Time, participant, keyID string) string {
	return strconv.FormatInt(expiry.Unix(), 10) + ":" + participant + ":" + keyID
}

// password is coturn's REST password: base64(HMAC-SHA1(secret, username)), padded.
func password(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// longTermKey is the TURN long-term credential key MD5(username ":" realm ":" password), the
// same as pion's turn.GenerateAuthKey.
func longTermKey(username, realm, password string) []byte {
	sum := md5.Sum([]byte(username + ":" + realm + ":" + password)) //nolint:gosec // see import
	return sum[:]
}

// parseUsername splits a username into expiry, participant and key id.
func parseUsername(username string) (credential, error) {
	if len(username) > maxUsernameLen || !utf8.ValidString(username) {
		return credential{}, errMalformed
	}
	first := strings.IndexByte(username, ':')
	last := strings.LastIndexByte(username, ':')
	if first <= 0 || last <= first+1 {
		return credential{}, errMalformed
	}
	expiry, err := strconv.ParseInt(username[:first], 10, 64)
	if err != nil || expiry <= 0 || username[0] == '+' {
		return credential{}, errMalformed
	}
	c := credential{
		Username:    username,
		Expiry:      time.Unix(expiry, 0),
		Participant: username[first+1 : last],
		KeyID:       username[last+1:],
	}
	if !validKeyID(c.KeyID) || checkParticipant(c.Participant) != nil {
		return credential{}, errMalformed
	}
	return c, nil
}

func validKeyID(id string) bool {
	if len(id) != keyIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// checkParticipant refuses ids that would make an unusable or ambiguous username.
func checkParticipant(id string) error {
	switch {
	case id == "":
		return errors.New("participant_id is empty")
	case len(id) > maxParticipantLen:
		return fmt.Errorf("participant_id is longer than %d bytes", maxParticipantLen)
	case !utf8.ValidString(id):
		return errors.New("participant_id is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return errors.New("participant_id contains spaces or control characters")
		}
	}
	return nil
}
