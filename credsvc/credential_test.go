package credsvc

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

func TestUsernameRoundTrip(t *testing.T) {
	t.Parallel()
	expiry := time.Unix(1_900_000_000, 0)
	for _, participant := range []string{"p1", "a:b:c", "Ünïcode-ok", strings.Repeat("x", maxParticipantLen)} {
		u := formatUsername(expiry, participant, "0123abcd")
		c, err := parseUsername(u)
		if err != nil {
			t.Fatalf("parse %q: %v", u, err)
		}
		if !c.Expiry.Equal(expiry) || c.Participant != participant || c.KeyID != "0123abcd" || c.Username != u {
			t.Errorf("parse %q = %+v", u, c)
		}
	}
}

func TestParseUsernameRefusesMalformed(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"", "abc", "1900000000", "1900000000:p1", "1900000000::0123abcd", ":p1:0123abcd",
		"-5:p1:0123abcd", "+1900000000:p1:0123abcd", "0:p1:0123abcd", "19e8:p1:0123abcd",
		"1900000000:p1:0123ABCD", "1900000000:p1:0123abc", "1900000000:p1:0123abcde", "1900000000:p1:",
		"1900000000:p 1:0123abcd", "1900000000:p\x001:0123abcd", "1900000000:\xff:0123abcd",
		"99999999999999999999:p1:0123abcd",
		"1900000000:" + strings.Repeat("x", maxParticipantLen+1) + ":0123abcd",
	} {
		if c, err := parseUsername(u); err == nil {
			t.Errorf("parseUsername(%q) = %+v, want an error", u, c)
		}
	}
}

// The password is coturn's REST password, computed here independently of the code under test.
func TestPasswordIsCoturnFormula(t *testing.T) {
	t.Parallel()
	secret := "a-shared-secret-of-at-least-32-characters"
	username := "1900000000:alice:" + keyIDOf(secret)
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := password(secret, username); got != want {
		t.Fatalf("password = %q, want %q", got, want)
	}
	if !strings.HasSuffix(want, "=") || len(want) != 28 {
		t.Fatalf("a 20-byte HMAC in padded base64 is 28 characters ending in '=', got %q", want)
	}
	if got, want := longTermKey(username, "tuturu", want), turn.GenerateAuthKey(username, "tuturu", want); !bytes.Equal(got, want) {
		t.Fatalf("longTermKey = %x, pion's GenerateAuthKey = %x", got, want)
	}
}

func TestKeyIDIsStableAndDistinct(t *testing.T) {
	t.Parallel()
	a, b := generateSecret(), generateSecret()
	if len(a) != 43 || a == b {
		t.Fatalf("generated secrets %q %q: want 43 characters each, different", a, b)
	}
	if keyIDOf(a) != keyIDOf(a) || keyIDOf(a) == keyIDOf(b) || !validKeyID(keyIDOf(a)) {
		t.Fatalf("key ids %q %q", keyIDOf(a), keyIDOf(b))
	}
}

func FuzzParseUsername(f *testing.F) {
	f.Add("1900000000:alice:0123abcd")
	f.Add("1:a:b:c:0123abcd")
	f.Fuzz(func(t *testing.T, u string) {
		c, err := parseUsername(u)
		if err != nil {
			return
		}
		if again := formatUsername(c.Expiry, c.Participant, c.KeyID); again != strings.TrimLeft(u, "0") && again != u {
			// Leading zeros in the expiry are accepted but not reproduced.
			if c2, err := parseUsername(again); err != nil || c2.Participant != c.Participant || c2.KeyID != c.KeyID || !c2.Expiry.Equal(c.Expiry) {
				t.Fatalf("%q parsed to %+v, which formats to %q", u, c, again)
			}
		}
	})
}
