// Package gateway is the public edge: it serves the web client, speaks the browser and Flutter
// WebSocket dialects, and turns every message into Connect calls on the internal services.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway/edge"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/web"
)

// Gateway is the public edge service. It keeps live sockets, never room state: rooms live in
// roomsvc, reached through one Sessions stream per shard that carries the memberships of the
// shard's rooms.
type Gateway struct {
	cfg Config
	srv *platform.Server
	// shards are the roomsvc processes rooms are spread over, each with its link (shards.go).
	shards      []*shard
	creds       credv1connect.CredentialServiceClient // for /api/turn
	instruments *instruments
	joins       *joinLimiter
	socks       *socketCap
	cap         *capacity
	edge        *edge.Edge // nil when DOMAIN is empty

	mu       sync.Mutex
	sessions map[*session]struct{}
	stopping bool
	wg       sync.WaitGroup
}

// New builds the gateway and binds its listener.
func New(cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	in, err := newInstruments(cfg.Telemetry)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	opts, err := platform.ClientOptions(cfg.Telemetry, cfg.InternalToken)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	maxSockets, err := socketCapacity(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	h2c := platform.NewH2CClient()
	g := &Gateway{
		cfg:         cfg,
		creds:       credv1connect.NewCredentialServiceClient(h2c, cfg.CredsvcURL, opts...),
		instruments: in,
		joins:       newJoinLimiter(cfg.Limits),
		socks:       newSocketCap(cfg.Limits.MaxSocketsPerAddress),
		cap:         &capacity{max: maxSockets},
		sessions:    map[*session]struct{}{},
	}
	if g.shards, err = parseShards(cfg.RoomsvcURL); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	for _, s := range g.shards {
		log := cfg.Logger()
		if len(g.shards) > 1 {
			log = log.With("roomsvc", s.name)
		}
		s.link = newRoomLink(roomv1connect.NewRoomServiceClient(h2c, s.url, opts...), s.tag, log)
	}
	srv, err := platform.NewServer("gateway", cfg.Addr, cfg.Listener, cfg.Logger())
	if err != nil {
		return nil, err
	}
	// The app is one handler, served here in plain HTTP and by the edge over HTTPS.
	app := http.NewServeMux()
	app.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}))
	app.Handle("GET /readyz", http.HandlerFunc(g.serveReady))
	app.Handle("GET /ws", http.HandlerFunc(g.serveWS))
	app.Handle("/api/turn", newAPITurn(g)) // every method: it answers 405 itself, in JSON
	// The web client's connection test as a page of its own: a link anyone can send.
	app.Handle("GET /test", http.RedirectHandler("/#test", http.StatusFound))
	app.Handle("/", http.FileServerFS(web.Files()))
	srv.Handle("/", app)
	g.srv = srv
	if cfg.Edge.Enabled() {
		ec := cfg.Edge
		ec.Base, ec.App = cfg.Base, app
		if g.edge, err = edge.New(ec); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return g, nil
}

// EdgeAddr is the edge's HTTPS address, or "" when the edge is off.
func (g *Gateway) EdgeAddr() string {
	if g.edge == nil {
		return ""
	}
	return g.edge.Addr()
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() string { return g.srv.Addr().String() }

// Run serves until ctx ends, then stops gracefully: sockets are closed with 1001 (going away)
// and the stream to roomsvc ends, so roomsvc holds each slot for a resume through another
// gateway.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	var links sync.WaitGroup
	for _, s := range g.shards {
		links.Go(func() { s.link.run(linkCtx) })
	}
	defer func() { stopLink(); links.Wait() }()
	edgeErr := make(chan error, 1)
	if g.edge != nil {
		go func() {
			err := g.edge.Run(ctx)
			cancel() // an edge that fails takes the gateway down with it, visibly
			edgeErr <- err
		}()
	} else {
		edgeErr <- nil
	}
	err := g.srv.Serve(ctx)
	cancel()
	g.mu.Lock()
	g.stopping = true
	for s := range g.sessions {
		go s.shutdown()
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		g.cfg.Logger().Warn("sockets still open 10s after stop")
	}
	// The edge returns once relayed TURN connections have drained (EDGE_DRAIN_TIMEOUT).
	if eerr := <-edgeErr; eerr != nil && err == nil {
		err = eerr
	}
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// serveWS upgrades /ws after the Origin check and the per-address socket cap, and starts the
// session on a goroutine of its own.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r, g.cfg.AllowedOrigins) {
		g.instruments.reject(r.Context(), rejectOrigin)
		http.Error(w, "origin not allowed: open the page from this site, or add its origin to ALLOWED_ORIGINS", http.StatusForbidden)
		return
	}
	if !g.cap.acquire() {
		g.instruments.reject(r.Context(), rejectFull)
		// Refused upgrades come at whatever rate a client connects: logged at debug.
		refuseFull(w, r, g.markSupport(r.Context(), slog.LevelDebug, codeServerFull, ""))
		return
	}
	addr := clientAddr(r)
	if !g.socks.acquire(addr) {
		g.cap.release()
		g.instruments.reject(r.Context(), rejectSockets)
		refuseSockets(w, r, g.cfg.Limits.MaxSocketsPerAddress, g.cfg.JoinTimeout, g.markSupport(r.Context(), slog.LevelDebug, codeTooManySockets, ""))
		return
	}
	if !g.serveSocket(w, r, addr) {
		g.socks.release(addr)
		g.cap.release()
	}
}

// serveSocket upgrades and starts the session; false when no session started, so the caller
// gives back the socket's slot (a started session gives it back when it ends).
func (g *Gateway) serveSocket(w http.ResponseWriter, r *http.Request, addr string) bool {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Origin was checked above, against the configured list as well as the host.
		InsecureSkipVerify: true,
		// Signaling messages are small and mostly SDP; per-socket deflate state would cost
		// more memory than it saves bandwidth.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return false // Accept has written the HTTP error
	}
	s := newSession(g, conn, addr)
	if !g.track(s) {
		_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
		return false
	}
	// The session gets a goroutine of its own so this handler returns: net/http then drops
	// the buffers it keeps for a handler in flight (about 8 KiB per idle socket, profiled).
	go func() {
		defer g.untrack(s)
		defer g.cap.release()
		defer g.socks.release(addr)
		s.run()
	}()
	return true
}

func (g *Gateway) track(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return false
	}
	g.sessions[s] = struct{}{}
	g.wg.Add(1)
	return true
}

func (g *Gateway) untrack(s *session) {
	g.mu.Lock()
	delete(g.sessions, s)
	g.mu.Unlock()
	g.wg.Done()
}
