package e2e

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
)

// extraGateway is a second gateway in front of a stack's roomsvc and credsvc, for tests in
// which one gateway stops while the rest of the system keeps running.
type extraGateway struct {
	*stack // GatewayURL only: point clients at this gateway
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startExtraGateway starts another gateway for s; it is stopped when the test ends.
func startExtraGateway(t *testing.T, s *stack) *extraGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{
		Base:       platform.Base{InternalToken: s.InternalToken},
		Listener:   ln,
		RoomsvcURL: s.RoomsvcURL,
		CredsvcURL: s.CredsvcURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &extraGateway{stack: &stack{GatewayURL: "http://" + g.Addr()}, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- g.Run(ctx) }()
	t.Cleanup(func() {
		if err := e.wait(); err != nil {
			t.Errorf("second gateway: %v", err)
		}
	})
	return e
}

// stop asks the gateway to stop; wait waits for it.
func (e *extraGateway) stop() { e.cancel() }

// wait stops the gateway if needed and returns how Run ended (bounded).
func (e *extraGateway) wait() error {
	e.once.Do(func() {
		e.cancel()
		select {
		case e.err = <-e.done:
		case <-time.After(15 * time.Second):
			e.err = context.DeadlineExceeded
		}
	})
	return e.err
}
