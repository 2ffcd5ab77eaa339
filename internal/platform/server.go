package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
)

// Server serves Connect, gRPC and gRPC-Web over HTTP/1.1 and h2c, with gRPC reflection (v1
// and v1alpha) and grpc.health.v1 for the services registered on it.
type Server struct {
	name     string
	ln       net.Listener
	mux      *http.ServeMux
	health   *grpchealth.StaticChecker
	services []string
	log      *slog.Logger
	// StopTimeout bounds how long in-flight calls may take to finish after a stop.
	StopTimeout time.Duration
	// StopIdleGrace: once no call has been in flight this long during a stop, the connections
	// left are closed rather than waited for (see defaultStopIdleGrace).
	StopIdleGrace time.Duration
	// IdleTimeout closes a keep-alive connection (HTTP/1.1, or HTTP/2 with no stream open)
	// that has been idle this long, so idle clients cannot hold sockets forever.
	IdleTimeout time.Duration
}

// NewServer listens on addr, or uses ln when it is not nil (tests pass a listener on port 0).
func NewServer(name, addr string, ln net.Listener, log *slog.Logger) (*Server, error) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("%s: listen on %s: %w", name, addr, err)
		}
	}
	return &Server{
		name:          name,
		ln:            ln,
		mux:           http.NewServeMux(),
		health:        grpchealth.NewStaticChecker(),
		log:           log.With("server", name),
		StopTimeout:   10 * time.Second,
		StopIdleGrace: defaultStopIdleGrace,
		IdleTimeout:   2 * time.Minute,
	}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Register mounts a Connect service handler (as returned by a generated NewXHandler) and lists
// it in reflection and health.
func (s *Server) Register(service, path string, h http.Handler) {
	s.mux.Handle(path, h)
	s.services = append(s.services, service)
}

// Handle mounts a plain HTTP handler that is not an RPC service.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// Serve serves until ctx ends, then stops gracefully: health turns NOT_SERVING (health Watch
// streams are told, then ended), the listener closes, and in-flight calls get StopTimeout to
// finish. Long-lived streams are ended by the services themselves, which watch the same ctx.
func (s *Server) Serve(ctx context.Context) error {
	reflector := grpcreflect.NewStaticReflector(append([]string{grpchealth.HealthV1ServiceName}, s.services...)...)
	s.mux.Handle(grpcreflect.NewHandlerV1(reflector))
	s.mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	s.mux.Handle(healthHandler(s.health))
	s.setStatus(grpchealth.StatusServing)

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	var calls inFlight
	srv := &http.Server{
		Handler:           calls.wrap(s.mux),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second, // slow-header clients must not hold connections
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// Go advertises 1 MiB frames by default, and its HTTP/2 client then keeps a 512 KiB
		// write buffer per streaming call (profiled: most of the memory of an idle Join
		// stream). 16 KiB is the protocol's default and ample for our messages.
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
		// Without it net/http waits for the next request on a keep-alive connection forever.
		IdleTimeout: s.IdleTimeout,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.log.Info("serving", "addr", s.ln.Addr().String(), "services", s.services)

	select {
	case err := <-errc:
		return fmt.Errorf("%s: serve: %w", s.name, err)
	case <-ctx.Done():
	}
	s.setStatus(grpchealth.StatusNotServing)
	s.log.Info("stopping: health is NOT_SERVING, waiting for in-flight calls", "timeout", s.StopTimeout.String())
	stopCtx, cancel := context.WithTimeout(context.Background(), s.StopTimeout)
	defer cancel()
	timedOut, err := calls.shutdown(stopCtx, srv, s.StopIdleGrace)
	if timedOut {
		s.log.Warn("calls still running after the stop timeout; closed them")
	}
	if err != nil {
		return fmt.Errorf("%s: stop: %w", s.name, err)
	}
	s.log.Info("stopped")
	return nil
}

func (s *Server) setStatus(st grpchealth.Status) {
	s.health.SetStatus("", st)
	for _, name := range s.services {
		s.health.SetStatus(name, st)
	}
}
