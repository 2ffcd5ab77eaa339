package roomsvc

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

// Departures queued just before a stop are still revoked: the revoker works off its queue
// (bounded by the drain time) before it returns.
func TestRevokerDrainsOnStop(t *testing.T) {
	log := &revokeLog{ch: make(chan string, 64)}
	mux := http.NewServeMux()
	mux.Handle(credv1connect.NewCredentialServiceHandler(&revokeServer{log: log}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := credv1connect.NewCredentialServiceClient(srv.Client(), srv.URL)
	r := newRevoker(client, slog.New(slog.DiscardHandler))
	for _, id := range []string{"p1", "p2", "p3"} {
		r.enqueue(id)
	}
	stop := make(chan struct{})
	close(stop) // stopped before any worker ran
	done := make(chan struct{})
	go func() { defer close(done); r.run(stop, 5*time.Second) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("revoker did not return within its drain time")
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.ids) != 3 {
		t.Fatalf("revoked %v, want p1, p2 and p3", log.ids)
	}
}
