package credsvc

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

// newTestService opens a Service on a fresh bbolt file without serving it: the tests below call
// its handlers directly to look at its transactions and its store.
func newTestService(t *testing.T, now time.Time) *Service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s, err := New(Config{
		Base: platform.Base{
			DataDir: t.TempDir(), AdminToken: "admin-token-for-credsvc-tests", InternalToken: "internal-token-for-credsvc-tests",
			Log: platform.NewLogger(testLog{t}, 0),
		},
		Listener: ln, TurnHost: "127.0.0.1", TurnPort: 3478,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.store.close() })
	return s
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

func participantItems(n int, prefix string) []*credv1.RevokeRequest {
	items := make([]*credv1.RevokeRequest, n)
	for i := range items {
		items[i] = &credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: fmt.Sprintf("%s%d", prefix, i)}}
	}
	return items
}

// A RevokeBatch is one transaction, whatever its size; its malformed items cost none.
func TestRevokeBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	s := newTestService(t, time.Unix(1_800_000_000, 0))
	items := append(participantItems(100, "m"), &credv1.RevokeRequest{})
	before := s.revs.commits.Load()
	res, err := s.RevokeBatch(context.Background(), connect.NewRequest(&credv1.RevokeBatchRequest{Requests: items}))
	if err != nil {
		t.Fatalf("RevokeBatch: %v", err)
	}
	if got := s.revs.commits.Load() - before; got != 1 {
		t.Errorf("a RevokeBatch of 100 took %d transactions, want 1", got)
	}
	if res.Msg.GetResults()[100].GetError() == nil {
		t.Errorf("the item with no target: %v, want an error", res.Msg.GetResults()[100])
	}
	stored, err := s.store.loadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 100 {
		t.Errorf("%d revocations on disk, want 100", len(stored))
	}

	before = s.revs.commits.Load()
	bad := []*credv1.RevokeRequest{{}, {Target: &credv1.RevokeRequest_Username{Username: "x"}}}
	if _, err := s.RevokeBatch(context.Background(), connect.NewRequest(&credv1.RevokeBatchRequest{Requests: bad})); err != nil {
		t.Fatalf("RevokeBatch of malformed items: %v", err)
	}
	if got := s.revs.commits.Load() - before; got != 0 {
		t.Errorf("a RevokeBatch with nothing to store took %d transactions", got)
	}
}

// When the write fails, the whole call fails and nothing of it is in force or announced.
func TestRevokeBatchWriteFailureFailsTheCall(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	s := newTestService(t, now)
	w, _, err := s.revs.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.(*boltStore).db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.RevokeBatch(context.Background(), connect.NewRequest(&credv1.RevokeBatchRequest{Requests: participantItems(3, "m")}))
	if connect.CodeOf(err) != connect.CodeInternal {
		t.Fatalf("RevokeBatch on a closed database: %v, want Internal", err)
	}
	if got := s.revs.list(now); len(got) != 0 {
		t.Errorf("after a failed write %d revocations are in force", len(got))
	}
	select {
	case revs := <-w.ch:
		t.Errorf("after a failed write a watcher was told of %v", revs)
	default:
	}
	if _, err := s.Issue(context.Background(), connect.NewRequest(&credv1.IssueRequest{ParticipantId: "m0"})); err != nil {
		t.Errorf("Issue to a participant whose revocation failed: %v", err)
	}
}

// A watcher's lag is counted in commits: full batches do not cut off a watcher that has not
// read them yet, and it then reads every revocation.
func TestFullBatchesDoNotCutOffAWatcher(t *testing.T) {
	t.Parallel()
	st, err := openStore(filepath.Join(t.TempDir(), "credsvc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	now := time.Unix(1_800_000_000, 0)
	r := newRevocations(st, map[string]revocationRecord{})
	w, _, err := r.watch(now)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 2 {
		puts := make([]*revocationPut, maxBatchItems)
		for i := range puts {
			puts[i] = &revocationPut{key: fmt.Sprintf("%sb%d-%d", prefixParticipant, b, i), rec: revocationRecord{RevokedAt: now, ExpiresAt: now.Add(time.Hour)}}
		}
		if err := r.add(puts); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-w.done:
		t.Fatalf("a watcher was cut off after two full batches: %v", w.err)
	default:
	}
	total := 0
	for range 2 {
		total += len(<-w.ch)
	}
	if total != 2*maxBatchItems {
		t.Errorf("the watcher was told of %d revocations, want %d", total, 2*maxBatchItems)
	}
}
