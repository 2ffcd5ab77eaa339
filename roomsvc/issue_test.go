package roomsvc

import (
	"context"
	"strings"
	"testing"
	"time"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// TestIssuerPoolPairsIDsAndCredentials: new participants get credentials issued for their own
// id, first through a call and then from the pool the first join started filling; no id is
// handed out twice, and stale pooled credentials are never handed out.
func TestIssuerPoolPairsIDsAndCredentials(t *testing.T) {
	ts := startService(t, nil)
	is := ts.svc.issuer
	seen := map[string]bool{}
	pooledHits := 0
	for i := range poolSize + 10 {
		got := make(chan struct{})
		fromPool := false
		var id string
		var creds *credv1.IssueResponse
		var err error
		is.issueNew(context.Background(), func(i string, c *credv1.IssueResponse, e error) {
			id, creds, err = i, c, e
			close(got)
		})
		select {
		case <-got:
			fromPool = true // answered on this goroutine: it came from the pool
		default:
			select {
			case <-got:
			case <-time.After(wait):
				t.Fatalf("join %d: no credentials within %v", i, wait)
			}
		}
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if seen[id] {
			t.Fatalf("participant id %s handed out twice", id)
		}
		seen[id] = true
		// The stand-in credsvc names each credential after the participant it was issued for.
		if !strings.HasSuffix(creds.GetUsername(), ":"+id) {
			t.Fatalf("participant %s got credentials %q issued for someone else", id, creds.GetUsername())
		}
		if fromPool {
			pooledHits++
		}
		if i == 0 {
			waitFor(t, "the pool filled after the first join", func() bool {
				is.mu.Lock()
				defer is.mu.Unlock()
				return len(is.pool) >= poolLow
			})
		}
	}
	if pooledHits < poolSize/2 {
		t.Fatalf("only %d of %d joins took pooled credentials", pooledHits, poolSize+10)
	}

	// Pooled credentials older than poolFresh are dropped, not handed out.
	is.mu.Lock()
	for i := range is.pool {
		is.pool[i].at = time.Now().Add(-2 * poolFresh)
	}
	stale := map[string]bool{}
	for _, p := range is.pool {
		stale[p.id] = true
	}
	is.mu.Unlock()
	got := make(chan string, 1)
	is.issueNew(context.Background(), func(id string, _ *credv1.IssueResponse, _ error) { got <- id })
	select {
	case id := <-got:
		if stale[id] {
			t.Fatal("a stale pooled credential was handed out")
		}
	case <-time.After(wait):
		t.Fatal("no credentials after the pool went stale")
	}
}
