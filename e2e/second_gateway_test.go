package e2e

import (
	"context"
	"flag"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/roomsvc"
)

// background is a service running in the test process until it is stopped or the test ends.
type background struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// runBackground runs run until stop or the end of the test, which reports how it ended.
func runBackground(t *testing.T, what string, run func(context.Context) error) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- run(ctx) }()
	t.Cleanup(func() {
		if err := b.wait(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
	return b
}

// stop asks the service to stop; wait waits for it.
func (b *background) stop() { b.cancel() }

// wait stops the service if needed and returns how Run ended (bounded).
func (b *background) wait() error {
	b.once.Do(func() {
		b.cancel()
		select {
		case b.err = <-b.done:
		case <-time.After(15 * time.Second):
			b.err = context.DeadlineExceeded
		}
	})
	return b.err
}

// extraGateway is a second gateway in front of a stack's roomsvc and credsvc, for tests in
// which one gateway stops while the rest of the system keeps running.
type extraGateway struct {
	*stack // GatewayURL only: point clients at this gateway
	*background
}

// startExtraGateway starts another gateway for s; it is stopped when the test ends.
func startExtraGateway(t *testing.T, s *stack) *extraGateway {
	t.Helper()
	return startGatewayFor(t, s, s.RoomsvcURL, nil)
}

// startGatewayFor starts a gateway in front of roomsvcURL (one URL or a list of shards) and
// s's credsvc, with tweak (when not nil) applied to its configuration.
func startGatewayFor(t *testing.T, s *stack, roomsvcURL string, tweak func(*gateway.Config)) *extraGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{
		Base:       platform.Base{InternalToken: s.InternalToken, Log: platform.NewLogger(testWriter{t, "gateway " + ln.Addr().String()}, logLevel())},
		Listener:   ln,
		RoomsvcURL: roomsvcURL,
		CredsvcURL: s.CredsvcURL,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &extraGateway{stack: &stack{GatewayURL: "http://" + g.Addr()}, background: runBackground(t, "gateway", g.Run)}
}

// startExtraRoomsvc starts another roomsvc, with s's tokens and credsvc, listening on addr
// (127.0.0.1:0 for any port); it returns the service and its base URL.
func startExtraRoomsvc(t *testing.T, s *stack, addr string) (*background, string) {
	t.Helper()
	var cfg roomsvc.Config
	v := platform.NewVars(flag.NewFlagSet("roomsvc", flag.ContinueOnError), func(string) string { return "" })
	cfg.Bind(v)
	if err := v.Resolve(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener, cfg.CredsvcURL = ln, s.CredsvcURL
	cfg.Base = platform.Base{DataDir: t.TempDir(), AdminToken: s.AdminToken, InternalToken: s.InternalToken,
		Log: platform.NewLogger(testWriter{t, "roomsvc " + ln.Addr().String()}, logLevel())}
	rs, err := roomsvc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return runBackground(t, "roomsvc", rs.Run), "http://" + ln.Addr().String()
}
