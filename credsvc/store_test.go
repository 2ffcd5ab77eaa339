package credsvc

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tuturu/tuturu/internal/testetcd"
)

// storeKinds open the two stores for the contract tests: each returns two handles on the same
// data (the same bbolt handle twice; two etcd clients, as two replicas have).
var storeKinds = []struct {
	name string
	open func(t *testing.T) (store, store)
}{
	{"bbolt", func(t *testing.T) (store, store) {
		st, err := openStore(filepath.Join(t.TempDir(), "credsvc.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.close() })
		return st, st
	}},
	{"etcd", func(t *testing.T) (store, store) {
		ep := testetcd.Start(t).Endpoint
		return openTestEtcdStore(t, ep, "/contract/"), openTestEtcdStore(t, ep, "/contract/")
	}},
}

func openTestEtcdStore(t testing.TB, endpoint, prefix string) *etcdStore {
	t.Helper()
	st, err := openEtcdStore(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second}, prefix,
		slog.New(slog.NewTextHandler(testLog{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	return st
}

// createFirst is loadKeyring's rule: promote a new secret only when none is active.
func createFirst(now time.Time) func(*keyring) (*keyringChange, error) {
	return func(k *keyring) (*keyringChange, error) {
		if k.active.ID != "" {
			return nil, nil
		}
		ch, err := k.promote(generateSecret(), now, time.Hour)
		return &ch, err
	}
}

// The store contract, run against both stores.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			a, b := kind.open(t)

			// Started together, the callers create one first secret and all read it.
			const callers = 8
			var wg sync.WaitGroup
			actives := make([]string, callers)
			created := make([]bool, callers)
			errs := make([]error, callers)
			for i := range callers {
				st := a
				if i%2 == 1 {
					st = b
				}
				wg.Go(func() {
					k, ch, err := st.updateSecrets(createFirst(now))
					errs[i] = err
					if err == nil {
						actives[i], created[i] = k.active.ID, ch != nil
					}
				})
			}
			wg.Wait()
			n := 0
			for i := range callers {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if actives[i] == "" || actives[i] != actives[0] {
					t.Errorf("caller %d sees active secret %q, caller 0 %q", i, actives[i], actives[0])
				}
				if created[i] {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d callers created the first secret, want 1", n)
			}

			// A rotation through one handle is what the other reads, the old secret verifying.
			first := actives[0]
			k, ch, err := a.updateSecrets(func(k *keyring) (*keyringChange, error) {
				ch, err := k.promote(generateSecret(), now, time.Hour)
				return &ch, err
			})
			if err != nil || ch == nil {
				t.Fatalf("rotate: %v %v", ch, err)
			}
			seen, _, err := b.updateSecrets(func(*keyring) (*keyringChange, error) { return nil, nil })
			if err != nil {
				t.Fatal(err)
			}
			if seen.active.ID != k.active.ID || seen.byID[first].State != stateVerifying {
				t.Errorf("other handle reads active %s, first %s; want %s and %s verifying", seen.active.ID, seen.byID[first].State, k.active.ID, first)
			}

			// Revocations, more than one etcd transaction holds, round-trip.
			puts := make([]*revocationPut, 300)
			for i := range puts {
				puts[i] = &revocationPut{key: fmt.Sprintf("%sm%d", prefixParticipant, i),
					rec: revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Minute), Reason: "left"}}
			}
			if err := a.putRevocations(puts); err != nil {
				t.Fatal(err)
			}
			got, err := b.loadRevocations()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(puts) {
				t.Fatalf("%d revocations read, want %d", len(got), len(puts))
			}
			for _, p := range puts {
				r := got[p.key]
				if !r.ExpiresAt.Equal(p.rec.ExpiresAt) || r.Reason != "left" || r.rev != p.rec.rev {
					t.Fatalf("%s read as %+v, want %+v", p.key, r, p.rec)
				}
			}

			// Sweeping from both handles at once deletes each once and fails on neither.
			expired := map[string]revocationRecord{}
			for _, p := range puts[:200] {
				expired[p.key] = got[p.key]
			}
			wg.Go(func() { errs[0] = a.deleteRevocations(expired) })
			wg.Go(func() { errs[1] = b.deleteRevocations(expired) })
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("concurrent sweeps: %v, %v", errs[0], errs[1])
			}
			if got, err = a.loadRevocations(); err != nil || len(got) != 100 {
				t.Fatalf("after the sweep %d revocations stored (%v), want 100", len(got), err)
			}
		})
	}
}

// etcd: a sweep that read a revocation before another replica renewed it leaves the renewal.
func TestEtcdSweepKeepsRenewedRevocation(t *testing.T) {
	t.Parallel()
	ep := testetcd.Start(t).Endpoint
	a, b := openTestEtcdStore(t, ep, "/renew/"), openTestEtcdStore(t, ep, "/renew/")
	now := time.Unix(1_800_000_000, 0)
	old := &revocationPut{key: prefixParticipant + "m", rec: revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Minute)}}
	if err := a.putRevocations([]*revocationPut{old}); err != nil {
		t.Fatal(err)
	}
	renewed := &revocationPut{key: old.key, rec: revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Hour)}}
	if err := b.putRevocations([]*revocationPut{renewed}); err != nil {
		t.Fatal(err)
	}
	if err := a.deleteRevocations(map[string]revocationRecord{old.key: old.rec}); err != nil {
		t.Fatal(err)
	}
	got, err := a.loadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := got[old.key]; !ok || !r.ExpiresAt.Equal(renewed.rec.ExpiresAt) {
		t.Errorf("after a stale sweep the revocation is %+v (present %v), want the renewal", r, ok)
	}
}

// etcd: what one handle writes reaches the other's follower; its own writes come back too,
// with the revision they were written at.
func TestEtcdFollow(t *testing.T) {
	t.Parallel()
	ep := testetcd.Start(t).Endpoint
	a, b := openTestEtcdStore(t, ep, "/follow/"), openTestEtcdStore(t, ep, "/follow/")
	now := time.Unix(1_800_000_000, 0)
	keyrings := make(chan *keyring, 16)
	stored := make(chan map[string]revocationRecord, 16)
	deleted := make(chan map[string]int64, 16)
	resynced := make(chan int64, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		b.follow(ctx, follower{
			keyring: func(k *keyring) { keyrings <- k },
			resync:  func(_ map[string]revocationRecord, rev int64) { resynced <- rev },
			stored:  func(m map[string]revocationRecord) { stored <- m },
			deleted: func(m map[string]int64) { deleted <- m },
		})
	})
	timeout := func(what string) {
		t.Helper()
		t.Fatalf("%s: not reported within 10s", what)
	}
	select {
	case <-resynced:
	case <-time.After(10 * time.Second):
		timeout("the first read")
	}
	<-keyrings // the empty keyring of the first read
	k, _, err := a.updateSecrets(createFirst(now))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-keyrings:
		if got.active.ID != k.active.ID || got.rev != k.rev {
			t.Errorf("followed keyring %s@%d, want %s@%d", got.active.ID, got.rev, k.active.ID, k.rev)
		}
	case <-time.After(10 * time.Second):
		timeout("the keyring")
	}
	p := &revocationPut{key: prefixParticipant + "m", rec: revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Hour)}}
	if err := a.putRevocations([]*revocationPut{p}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-stored:
		if r := m[p.key]; r.rev != p.rec.rev || !r.ExpiresAt.Equal(p.rec.ExpiresAt) {
			t.Errorf("followed %+v, want %+v", r, p.rec)
		}
	case <-time.After(10 * time.Second):
		timeout("the revocation")
	}
	if err := a.deleteRevocations(map[string]revocationRecord{p.key: p.rec}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-deleted:
		if m[p.key] <= p.rec.rev {
			t.Errorf("deletion reported at revision %d, not after the write at %d", m[p.key], p.rec.rev)
		}
	case <-time.After(10 * time.Second):
		timeout("the deletion")
	}
}

// etcd: revocations written at different moments share one lease, and a lease revoked by hand
// (which deletes what it holds) does not block later writes.
func TestEtcdRevocationLeases(t *testing.T) {
	t.Parallel()
	st := openTestEtcdStore(t, testetcd.Start(t).Endpoint, "/leases/")
	now := time.Unix(1_800_000_000, 0)
	put := func(key string) {
		t.Helper()
		p := &revocationPut{key: prefixParticipant + key, rec: revocationRecord{RevokedAt: now, ExpiresAt: now.Add(24 * time.Hour)}}
		if err := st.putRevocations([]*revocationPut{p}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	leases := func() []clientv3.LeaseStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := st.cli.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res.Leases
	}
	put("a")
	put("b")
	got := leases()
	if len(got) != 1 {
		t.Fatalf("%d leases for two revocations of the same lifetime, want 1", len(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := st.cli.Revoke(ctx, got[0].ID); err != nil {
		t.Fatal(err)
	}
	put("c")
	stored, err := st.loadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stored[prefixParticipant+"c"]; !ok || len(stored) != 1 {
		t.Errorf("after the lease was revoked: %v, want only the new revocation", stored)
	}
}
