package credsvc

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// A watcher that stops reading is cut off with ResourceExhausted (it reconnects and gets a
// fresh snapshot), never silently skipped; other watchers are unaffected.
func TestSlowWatcherIsCutOff(t *testing.T) {
	st, err := openStore(filepath.Join(t.TempDir(), "credsvc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	now := time.Unix(1_800_000_000, 0)
	r := newRevocations(st, map[string]revocationRecord{})
	slow, _, err := r.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, err := r.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range watcherBuffer + 1 {
		if _, err := r.add(fmt.Sprintf("%sp%d", prefixParticipant, i), revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if i < watcherBuffer {
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
