// Package turnsvc is the TURN/STUN server (pion/turn), which validates credentials through the
// credential service and obeys its revocations.
package turnsvc

import (
	"context"
	"fmt"

	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// Service is the TURN service.
type Service struct {
	cfg Config
	srv *platform.Server
	turnv1connect.UnimplementedTurnAdminServiceHandler
}

// New builds the TURN service and binds its admin listener.
func New(cfg Config) (*Service, error) {
	s := &Service{cfg: cfg}
	srv, err := platform.NewServer("turnsvc", cfg.Addr, cfg.Listener, cfg.Logger())
	if err != nil {
		return nil, err
	}
	admin, err := platform.HandlerOptions(cfg.Telemetry, cfg.AdminToken)
	if err != nil {
		return nil, err
	}
	path, h := turnv1connect.NewTurnAdminServiceHandler(s, admin...)
	srv.Register(turnv1connect.TurnAdminServiceName, path, h)
	s.srv = srv
	return s, nil
}

// Addr is the address the admin service listens on.
func (s *Service) Addr() string { return s.srv.Addr().String() }

// Run serves until ctx ends, then stops gracefully.
func (s *Service) Run(ctx context.Context) error {
	if err := s.srv.Serve(ctx); err != nil {
		return fmt.Errorf("turnsvc: %w", err)
	}
	return nil
}
