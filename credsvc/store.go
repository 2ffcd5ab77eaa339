package credsvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// lockTimeout bounds the wait for bbolt's file lock: another process holding the file should
// produce an error at start-up, not a hang.
const lockTimeout = time.Second

var (
	bucketKeyring     = []byte("keyring")
	bucketRevocations = []byte("revocations")
)

// store persists the keyring and the revocations in one bbolt file. Only start-up, rotation,
// revocation and sweeping write to it; Issue and Validate work from memory.
type store struct {
	db   *bbolt.DB
	path string
}

// secretRecord is one keyring entry as stored. The file is mode 0600: it holds the secrets.
type secretRecord struct {
	ID      string      `json:"id"`
	State   secretState `json:"state"`
	Created time.Time   `json:"created"`
	// Demoted is when it stopped signing (became verifying-only).
	Demoted time.Time `json:"demoted,omitzero"`
	// RetireAt is when every credential it signed has expired (Demoted + MaxTTL).
	RetireAt time.Time `json:"retire_at,omitzero"`
	// Retired is when it stopped verifying.
	Retired time.Time `json:"retired,omitzero"`
	Secret  string    `json:"secret"`
}

// revocationRecord is one revocation as stored; the key says what is revoked.
type revocationRecord struct {
	RevokedAt time.Time `json:"revoked_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Reason    string    `json:"reason"`
}

// openStore opens (or creates) the database at path.
func openStore(path string) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("credential database %s: create directory: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("credential database %s is locked by another process (waited %s): is another credsvc using it? Stop it or set CREDSVC_DB to another file", path, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open credential database %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketKeyring, bucketRevocations} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("credential database %s: create buckets: %w", path, err)
	}
	return &store{db: db, path: path}, nil
}

func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close credential database %s: %w", s.path, err)
	}
	return nil
}

// loadSecrets reads the keyring.
func (s *store) loadSecrets() ([]secretRecord, error) {
	var out []secretRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketKeyring).ForEach(func(k, v []byte) error {
			var r secretRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("keyring entry %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("credential database %s: read keyring: %w", s.path, err)
	}
	return out, nil
}

// saveSecrets writes changed keyring entries and deletes the ids in drop, in one transaction.
func (s *store) saveSecrets(put []secretRecord, drop []string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeyring)
		for _, r := range put {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(r.ID), v); err != nil {
				return err
			}
		}
		for _, id := range drop {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("credential database %s: write keyring: %w", s.path, err)
	}
	return nil
}

// loadRevocations reads every stored revocation by key.
func (s *store) loadRevocations() (map[string]revocationRecord, error) {
	out := map[string]revocationRecord{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
			var r revocationRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("revocation %q: %w", k, err)
			}
			out[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("credential database %s: read revocations: %w", s.path, err)
	}
	return out, nil
}

// putRevocations stores several revocations in one transaction: one disk sync for all.
func (s *store) putRevocations(puts []*revocationPut) error {
	vals := make([][]byte, len(puts))
	for i, p := range puts {
		v, err := json.Marshal(p.rec)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		for i, p := range puts {
			if err := b.Put([]byte(p.key), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("credential database %s: write revocations: %w", s.path, err)
	}
	return nil
}

// deleteRevocations forgets the given revocations.
func (s *store) deleteRevocations(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("credential database %s: delete revocations: %w", s.path, err)
	}
	return nil
}
