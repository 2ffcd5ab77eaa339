// Package gateway is the public edge: it serves the web client, speaks the browser and Flutter
// WebSocket dialects, and turns every message into Connect calls on the internal services.
package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/web"
)

// Gateway is the public edge service.
type Gateway struct {
	cfg Config
	srv *platform.Server
}

// New builds the gateway and binds its listener.
func New(cfg Config) (*Gateway, error) {
	g := &Gateway{cfg: cfg}
	srv, err := platform.NewServer("gateway", cfg.Addr, cfg.Listener, cfg.Logger())
	if err != nil {
		return nil, err
	}
	srv.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}))
	srv.Handle("/", http.FileServerFS(web.Files()))
	g.srv = srv
	return g, nil
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() string { return g.srv.Addr().String() }

// Run serves until ctx ends, then stops gracefully.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.srv.Serve(ctx); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}
