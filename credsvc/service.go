// Package credsvc issues, validates and revokes TURN credentials, keeping its secrets and revocations in bbolt.
package credsvc

import (
	"context"
	"fmt"

	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// Service is the credential service.
type Service struct {
	cfg Config
	srv *platform.Server
	credv1connect.UnimplementedCredentialServiceHandler
	credv1connect.UnimplementedCredentialAdminServiceHandler
}

// New builds the credential service and binds its listener.
func New(cfg Config) (*Service, error) {
	s := &Service{cfg: cfg}
	srv, err := platform.NewServer("credsvc", cfg.Addr, cfg.Listener, cfg.Logger())
	if err != nil {
		return nil, err
	}
	internal, err := platform.HandlerOptions(cfg.Telemetry, cfg.InternalToken)
	if err != nil {
		return nil, err
	}
	admin, err := platform.HandlerOptions(cfg.Telemetry, cfg.AdminToken)
	if err != nil {
		return nil, err
	}
	path, h := credv1connect.NewCredentialServiceHandler(s, internal...)
	srv.Register(credv1connect.CredentialServiceName, path, h)
	path, h = credv1connect.NewCredentialAdminServiceHandler(s, admin...)
	srv.Register(credv1connect.CredentialAdminServiceName, path, h)
	s.srv = srv
	return s, nil
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.srv.Addr().String() }

// Run serves until ctx ends, then stops gracefully.
func (s *Service) Run(ctx context.Context) error {
	if err := s.srv.Serve(ctx); err != nil {
		return fmt.Errorf("credsvc: %w", err)
	}
	return nil
}
