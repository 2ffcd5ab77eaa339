package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestStackStarts proves the harness starts every service and the gateway answers.
func TestStackStarts(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.GatewayURL+"/healthz", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: status %d, want 200", res.StatusCode)
	}
}
