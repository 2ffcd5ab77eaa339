package credsvc

import (
	"context"
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

// store persists the keyring and the revocations: bbolt on one machine (boltStore) or etcd
// shared by several replicas (etcdStore). Only start-up, rotation, revocation and sweeping
// write to it; Issue and Validate work from memory.
type store interface {
	// String names the store in logs and errors.
	String() string
	// updateSecrets reads the keyring, lets change compute the next one (nil: no change) and
	// writes it atomically. When another replica wrote in between, change runs again on what
	// that replica wrote, so it must decide from its argument alone. It returns the keyring now
	// stored and the change applied (nil when none).
	updateSecrets(change func(*keyring) (*keyringChange, error)) (*keyring, *keyringChange, error)
	// loadRevocations reads every stored revocation by key.
	loadRevocations() (map[string]revocationRecord, error)
	// putRevocations stores revocations and sets each put's rec.rev.
	putRevocations(puts []*revocationPut) error
	// deleteRevocations forgets expired revocations; one another replica has rewritten since
	// (a newer rev) stays.
	deleteRevocations(expired map[string]revocationRecord) error
	// follow feeds f with what other replicas write, until ctx ends. A store that only this
	// process writes returns at once.
	follow(ctx context.Context, f follower)
	close() error
}

// follower receives the changes other replicas make to a shared store.
type follower struct {
	// keyring is the keyring as now stored.
	keyring func(*keyring)
	// resync is every revocation stored at revision rev (after a start or a lost watch).
	resync func(all map[string]revocationRecord, rev int64)
	// stored are revocations written, one transaction's in one call.
	stored func(map[string]revocationRecord)
	// deleted are revocations deleted (swept or expired by their lease): key → the revision
	// of the deletion.
	deleted func(map[string]int64)
}

// boltStore keeps everything in one bbolt file: one process, one machine.
type boltStore struct {
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
	// rev is the etcd revision that wrote it (0 with bbolt): it orders a replica's own writes
	// against what its watch reports, and guards sweeping against a newer write.
	rev int64
}

// openStore opens (or creates) the database at path.
func openStore(path string) (*boltStore, error) {
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
	return &boltStore{db: db, path: path}, nil
}

func (s *boltStore) String() string { return "bbolt " + s.path }

func (s *boltStore) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close credential database %s: %w", s.path, err)
	}
	return nil
}

// follow has nothing to follow: this process is the only writer.
func (s *boltStore) follow(context.Context, follower) {}

// updateSecrets reads, changes and writes the keyring in one transaction.
func (s *boltStore) updateSecrets(change func(*keyring) (*keyringChange, error)) (*keyring, *keyringChange, error) {
	var cur *keyring
	var applied *keyringChange
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeyring)
		var records []secretRecord
		err := b.ForEach(func(k, v []byte) error {
			var r secretRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("keyring entry %q: %w", k, err)
			}
			records = append(records, r)
			return nil
		})
		if err != nil {
			return err
		}
		if cur, err = newKeyring(records); err != nil {
			return err
		}
		ch, err := change(cur)
		if err != nil || ch == nil {
			return err
		}
		for _, r := range ch.put {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(r.ID), v); err != nil {
				return err
			}
		}
		for _, id := range ch.drop {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		cur, applied = ch.next, ch
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("credential database %s: keyring: %w", s.path, err)
	}
	return cur, applied, nil
}

// loadRevocations reads every stored revocation by key.
func (s *boltStore) loadRevocations() (map[string]revocationRecord, error) {
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
func (s *boltStore) putRevocations(puts []*revocationPut) error {
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

// deleteRevocations forgets the given revocations; this process is the only writer, so no
// newer write can be among them.
func (s *boltStore) deleteRevocations(expired map[string]revocationRecord) error {
	if len(expired) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		for k := range expired {
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
