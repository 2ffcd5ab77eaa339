// Package roomsvc keeps rooms and their members in memory and routes signaling between them.
package roomsvc

import (
	"context"
	"fmt"

	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// Service is the room service.
type Service struct {
	cfg Config
	srv *platform.Server
	roomv1connect.UnimplementedRoomServiceHandler
	roomv1connect.UnimplementedRoomAdminServiceHandler
}

// New builds the room service and binds its listener.
func New(cfg Config) (*Service, error) {
	s := &Service{cfg: cfg}
	srv, err := platform.NewServer("roomsvc", cfg.Addr, cfg.Listener, cfg.Logger())
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
	path, h := roomv1connect.NewRoomServiceHandler(s, internal...)
	srv.Register(roomv1connect.RoomServiceName, path, h)
	path, h = roomv1connect.NewRoomAdminServiceHandler(s, admin...)
	srv.Register(roomv1connect.RoomAdminServiceName, path, h)
	s.srv = srv
	return s, nil
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.srv.Addr().String() }

// Run serves until ctx ends, then stops gracefully.
func (s *Service) Run(ctx context.Context) error {
	if err := s.srv.Serve(ctx); err != nil {
		return fmt.Errorf("roomsvc: %w", err)
	}
	return nil
}
