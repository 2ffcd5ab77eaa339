package credsvc

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// secretState is where a secret is in its life: active (signs and verifies) → verifying-only
// (verifies what it signed until that has expired) → retired (neither; deleted later).
type secretState string

const (
	stateActive    secretState = "active"
	stateVerifying secretState = "verifying-only"
	stateRetired   secretState = "retired"
)

const (
	// retiredKeep is how long a retired secret stays listed before it is deleted, so that an
	// operator can still see what happened after a rotation.
	retiredKeep = 24 * time.Hour
	// retireMargin is added to MaxTTL before retiring a demoted secret, for clock steps.
	retireMargin = time.Minute
)

func (s secretState) proto() credv1.SecretState {
	switch s {
	case stateActive:
		return credv1.SecretState_SECRET_STATE_ACTIVE
	case stateVerifying:
		return credv1.SecretState_SECRET_STATE_VERIFYING_ONLY
	case stateRetired:
		return credv1.SecretState_SECRET_STATE_RETIRED
	}
	return credv1.SecretState_SECRET_STATE_UNSPECIFIED
}

// keyring is an immutable view of the secrets; changes build a new one. Issue and Validate
// read it without locks.
type keyring struct {
	active secretRecord
	byID   map[string]secretRecord
	// rev is the etcd revision that wrote it (0 with bbolt): a replica never replaces its
	// keyring with an older one.
	rev int64
}

// keyringChange is a new keyring and what must be written to make it durable.
type keyringChange struct {
	next *keyring
	put  []secretRecord
	drop []string
}

func newKeyring(records []secretRecord) (*keyring, error) {
	k := &keyring{byID: make(map[string]secretRecord, len(records))}
	actives := 0
	for _, r := range records {
		k.byID[r.ID] = r
		if r.State == stateActive {
			k.active = r
			actives++
		}
	}
	if actives > 1 {
		return nil, errors.New("keyring has more than one active secret")
	}
	return k, nil
}

// verifier returns the secret that verifies credentials signed by id, if it still may.
func (k *keyring) verifier(id string) (secretRecord, bool) {
	r, ok := k.byID[id]
	if !ok || r.State == stateRetired {
		return secretRecord{}, false
	}
	return r, true
}

// generateSecret returns 32 random bytes as unpadded base64url text (43 characters): text, so
// that the same secret can be given to a stock coturn as static-auth-secret.
func generateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return base64.RawURLEncoding.EncodeToString(b)
}

// promote makes secret the active one; the current active one becomes verifying-only until
// every credential it may have signed has expired. A secret already in the keyring (say a
// TURN_SECRET set back to an earlier value) is reactivated under its id.
func (k *keyring) promote(secret string, now time.Time, maxTTL time.Duration) (keyringChange, error) {
	id := keyIDOf(secret)
	next := &keyring{byID: maps.Clone(k.byID)}
	var ch keyringChange
	existing, known := k.byID[id]
	// A retired entry no longer holds its secret; the same id then means the same secret.
	if known && existing.State != stateRetired && subtle.ConstantTimeCompare([]byte(existing.Secret), []byte(secret)) != 1 {
		return ch, fmt.Errorf("key id %s already names another secret", id)
	}
	if old := k.active; old.ID != "" && old.ID != id {
		old.State = stateVerifying
		old.Demoted = now
		old.RetireAt = now.Add(maxTTL + retireMargin)
		next.byID[old.ID] = old
		ch.put = append(ch.put, old)
	}
	r := secretRecord{ID: id, State: stateActive, Created: now, Secret: secret}
	if known {
		r.Created = existing.Created
	}
	next.byID[id] = r
	next.active = r
	ch.put = append(ch.put, r)
	ch.next = next
	return ch, nil
}

// age retires verifying-only secrets whose credentials have all expired and deletes secrets
// retired for longer than retiredKeep. It returns nil when nothing changes.
func (k *keyring) age(now time.Time) *keyringChange {
	var ch keyringChange
	next := &keyring{active: k.active, byID: maps.Clone(k.byID)}
	for id, r := range k.byID {
		switch {
		case r.State == stateVerifying && !now.Before(r.RetireAt):
			r.State = stateRetired
			r.Retired = now
			r.Secret = "" // a retired secret verifies nothing: do not keep it on disk
			next.byID[id] = r
			ch.put = append(ch.put, r)
		case r.State == stateRetired && !now.Before(r.Retired.Add(retiredKeep)):
			delete(next.byID, id)
			ch.drop = append(ch.drop, id)
		}
	}
	if len(ch.put) == 0 && len(ch.drop) == 0 {
		return nil
	}
	ch.next = next
	return &ch
}

// list returns the secrets newest first.
func (k *keyring) list() []secretRecord {
	out := slices.Collect(maps.Values(k.byID))
	slices.SortFunc(out, func(a, b secretRecord) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
