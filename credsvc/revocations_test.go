package credsvc

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// A watcher that stops reading is cut off with ResourceExhausted (it reconnects and gets a
// fresh snapshot), never silently skipped; other watchers are unaffected.
func TestSlowWatcherIsCutOff(t *testing.T) {
	t.Parallel()
	st, err := openStore(filepath.Join(t.TempDir(), "credsvc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	now := time.Unix(1_800_000_000, 0)
	r := newRevocations(st, map[string]revocationRecord{})
	r.groupWindow = 0   // one write after another: no company to wait for
	r.watcherBuffer = 8 // the rule does not depend on the size; each commit costs an fsync
	slow, _, err := r.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, err := r.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.watcherBuffer + 1 {
		if err := r.add(onePut(fmt.Sprintf("%sp%d", prefixParticipant, i), revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Hour)})); err != nil {
			t.Fatal(err)
		}
		if i < r.watcherBuffer {
			<-fast.ch
		}
	}
	select {
	case <-slow.done:
		if connect.CodeOf(slow.err) != connect.CodeResourceExhausted {
			t.Errorf("slow watcher ended with %v, want ResourceExhausted", slow.err)
		}
	default:
		t.Fatal("a watcher that fell behind was not cut off")
	}
	select {
	case <-fast.done:
		t.Fatal("the reading watcher was cut off")
	case <-fast.ch:
	}
	if r.count() != 1 {
		t.Errorf("%d watchers registered, want 1", r.count())
	}
}

// The work Validate does once the request is decoded: parse, keyring and revocation look-ups,
// HMAC-SHA1 and MD5. Everything else in BenchmarkValidate is Connect and HTTP/2.
func BenchmarkValidateLogic(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	s := &Service{cfg: Config{MaxTTL: 24 * time.Hour, Now: func() time.Time { return now }}}
	s.revs = newRevocations(nil, map[string]revocationRecord{})
	ch, err := (&keyring{byID: map[string]secretRecord{}}).promote(generateSecret(), now, s.cfg.MaxTTL)
	if err != nil {
		b.Fatal(err)
	}
	s.keys.Store(ch.next)
	username := formatUsername(now.Add(time.Hour), "participant-0123456789", ch.next.active.ID)
	b.ReportAllocs()
	for b.Loop() {
		if s.validate(username, "tuturu").Key == nil {
			b.Fatal("not valid")
		}
	}
}

// Revocations that arrive while one is being written share the next transaction (one fsync),
// each caller returns only once its own is on disk, and a later expiry always wins.
func TestRevocationsGroupCommit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "credsvc.db")
	st, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	r := newRevocations(st, map[string]revocationRecord{})
	w, _, err := r.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	// Hold the writers' lock so the first add (the leader) waits inside its commit while the
	// other n-1 queue up behind it.
	r.wmu.Lock()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			// Two participants get two revocations each; the later expiry must win whatever
			// the order.
			key := fmt.Sprintf("%sp%d", prefixParticipant, i%(n-2))
			exp := now.Add(time.Duration(1+i) * time.Minute)
			puts := onePut(key, revocationRecord{RevokedAt: now, ExpiresAt: exp, Reason: "left"})
			err := r.add(puts)
			if pb := puts[0].pb; err == nil && pb.GetExpiresAt().AsTime().Before(exp) {
				err = fmt.Errorf("%s: returned expiry %s before the requested %s", key, pb.GetExpiresAt().AsTime(), exp)
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.qmu.Lock()
		queued := len(r.queue)
		r.qmu.Unlock()
		if queued == n-1 {
			break
		}
		if time.Now().After(deadline) {
			r.wmu.Unlock()
			t.Fatalf("%d of %d revocations queued", queued, n-1)
		}
		time.Sleep(time.Millisecond)
	}
	r.wmu.Unlock()
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := r.commits.Load(); got != 2 {
		t.Errorf("%d revocations took %d transactions, want 2 (the leader's, then everything queued behind it)", n, got)
	}
	published := 0
	for range 2 {
		select {
		case revs := <-w.ch:
			published += len(revs)
		default:
			t.Fatal("a watcher missed a commit")
		}
	}
	if published != n {
		t.Errorf("a watcher was told of %d revocations, want %d", published, n)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	st, err = openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	stored, err := st.loadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != n-2 {
		t.Errorf("%d revocations on disk, want %d", len(stored), n-2)
	}
	for i := range 2 {
		key := fmt.Sprintf("%sp%d", prefixParticipant, i)
		if want := now.Add(time.Duration(n-1+i) * time.Minute); !stored[key].ExpiresAt.Equal(want) {
			t.Errorf("%s expires %s on disk, want the later %s", key, stored[key].ExpiresAt, want)
		}
	}
}

// Revocations from many concurrent callers, as roomsvc's revokers send them.
func BenchmarkRevokeParallel(b *testing.B) {
	st, err := openStore(filepath.Join(b.TempDir(), "credsvc.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	now := time.Unix(1_800_000_000, 0)
	r := newRevocations(st, map[string]revocationRecord{})
	var seq atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("%sp%d", prefixParticipant, seq.Add(1))
			if err := r.add(onePut(key, revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Hour)})); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(r.commits.Load())/float64(b.N), "tx/op")
}

func onePut(key string, rec revocationRecord) []*revocationPut {
	return []*revocationPut{{key: key, rec: rec}}
}
