// Package roomsvc keeps rooms and their members in memory and routes signaling between them.
package roomsvc

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// maxRequestBytes bounds one message on a stream: a gateway's batch of requests, each within
// maxSignalData. The gateway keeps its batches under half of this.
const maxRequestBytes = 16 << 20

// Service is the room service.
type Service struct {
	cfg      Config
	srv      *platform.Server
	hub      *hub
	meters   *meters
	revoker  *revoker
	issuer   *issuer
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	stopOnce sync.Once
	// mu guards stopped and links: the open streams, so that stop can end them.
	mu      sync.Mutex
	stopped bool
	links   map[*link]struct{}
	// streams counts open stream handlers (tests wait on it).
	streams atomic.Int64
	roomv1connect.UnimplementedRoomServiceHandler
	roomv1connect.UnimplementedRoomAdminServiceHandler
}

// New builds the room service and binds its listener.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.LobbyMaxMembers < 0:
		return nil, fmt.Errorf("roomsvc: LOBBY_MAX_MEMBERS must be greater than 0, got %d", cfg.LobbyMaxMembers)
	case cfg.LobbyMaxMembers == 0:
		cfg.LobbyMaxMembers = DefaultLobbyMaxMembers // a Config built in code (tests)
	}
	tel := cfg.Telemetry.OrDefault()
	met, err := newMeters(tel)
	if err != nil {
		return nil, fmt.Errorf("roomsvc: metrics: %w", err)
	}
	clientOpts, err := platform.ClientOptions(tel, cfg.InternalToken)
	if err != nil {
		return nil, fmt.Errorf("roomsvc: %w", err)
	}
	// Do not ask credsvc for gzip: its tiny responses cost more to compress than to send.
	clientOpts = append(clientOpts, connect.WithAcceptCompression("gzip", nil, nil))
	creds := credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), cfg.CredsvcURL, clientOpts...)
	rev := newRevoker(creds, cfg.Logger())
	if err := met.observeRevocations(tel, rev.pending); err != nil {
		return nil, fmt.Errorf("roomsvc: metrics: %w", err)
	}
	s := &Service{
		cfg:     cfg,
		meters:  met,
		revoker: rev,
		tracer:  tel.Tracer.Tracer("github.com/tuturu/tuturu/roomsvc"),
		prop:    tel.Propagator,
		links:   map[*link]struct{}{},
	}
	s.issuer = newIssuer(creds, s.tracer)
	s.hub = newHub(hubConfig{
		grace:      cfg.ResumeGrace,
		tokenTTL:   tokenTTL(cfg),
		queueLimit: cfg.QueueLimit,
		lobbyMax:   cfg.LobbyMaxMembers,
		secret:     cfg.InternalToken,
		gone:       rev.enqueue,
		meters:     met,
		log:        cfg.Logger(),
	})

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("roomsvc: listen on %s: %w", cfg.Addr, err)
		}
	}
	srv, err := platform.NewServer("roomsvc", cfg.Addr, bufferedListener{ln}, cfg.Logger())
	if err != nil {
		return nil, err
	}
	internal, err := platform.HandlerOptions(tel, cfg.InternalToken)
	if err != nil {
		return nil, err
	}
	admin, err := platform.HandlerOptions(tel, cfg.AdminToken)
	if err != nil {
		return nil, err
	}
	// Signals are small and travel between our own services: gzip (on by default for Connect
	// clients) cost most of the CPU of a call set-up in profiles, for nothing on a LAN.
	noGzip := connect.WithCompression("gzip", nil, nil)
	internal = append(internal, connect.WithReadMaxBytes(maxRequestBytes), noGzip)
	admin = append(admin, noGzip)
	path, h := roomv1connect.NewRoomServiceHandler(s, internal...)
	srv.Register(roomv1connect.RoomServiceName, path, withStreamControl(h))
	path, h = roomv1connect.NewRoomAdminServiceHandler(s, admin...)
	srv.Register(roomv1connect.RoomAdminServiceName, path, h)
	s.srv = srv
	return s, nil
}

// tokenTTL is the configured resume token lifetime, never shorter than the grace period
// (a token that dies before its hold would make resume impossible).
func tokenTTL(cfg Config) time.Duration {
	ttl := cfg.ResumeTokenTTL
	if min := cfg.ResumeGrace + time.Minute; ttl < min {
		ttl = min
	}
	return ttl
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.srv.Addr().String() }

// Run serves until ctx ends, then ends every stream with Unavailable and stops gracefully.
func (s *Service) Run(ctx context.Context) error {
	stopRevoker := make(chan struct{})
	revDone := make(chan struct{})
	go func() {
		defer close(revDone)
		s.revoker.run(stopRevoker, revokeDrain)
	}()
	issueCtx, stopIssuer := context.WithCancel(context.Background())
	issueDone := make(chan struct{})
	go func() {
		defer close(issueDone)
		s.issuer.run(issueCtx)
	}()
	// Streams must end when ctx does, or the server's graceful stop would wait for them.
	serveDone, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-ctx.Done():
		case <-serveDone:
		}
		s.stop()
	}()
	err := s.srv.Serve(ctx)
	close(serveDone)
	<-watchDone
	stopIssuer()
	<-issueDone
	close(stopRevoker) // after the streams ended, so their departures are queued
	<-revDone
	if err != nil {
		return fmt.Errorf("roomsvc: %w", err)
	}
	return nil
}

// stop ends every stream and refuses new ones.
func (s *Service) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		// Refuse new members first, then end the streams: their members are held, not ended.
		s.hub.shutdown()
		s.mu.Lock()
		for l := range s.links {
			l.interrupt()
		}
		s.mu.Unlock()
	})
}
