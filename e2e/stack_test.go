// Package e2e runs whole calls through every tuturu service started in-process, each on its
// own loopback port and talking Connect over real HTTP, as `tuturu all` does.
package e2e

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/roomsvc"
	"github.com/tuturu/tuturu/turnsvc"
)

// stack is a running set of services.
type stack struct {
	GatewayURL    string // http://127.0.0.1:port
	RoomsvcURL    string
	CredsvcURL    string
	TurnsvcURL    string // admin RPCs
	AdminToken    string
	InternalToken string
	DataDir       string
}

// stackOptions adjusts the configuration of every service before start; each func sees the
// defaults the service would have with no flags or environment set.
type stackOptions struct {
	Gateway   func(*gateway.Config)
	Roomsvc   func(*roomsvc.Config)
	Credsvc   func(*credsvc.Config)
	Turnsvc   func(*turnsvc.Config)
	Telemetry func(service string) platform.Telemetry
	// Logs, when set, also receives each service's log lines.
	Logs func(service string) io.Writer
}

// startStack starts credsvc, turnsvc, roomsvc and the gateway on loopback ports and stops them
// when the test ends.
func startStack(t *testing.T, opt stackOptions) *stack {
	t.Helper()
	var (
		gw   gateway.Config
		room roomsvc.Config
		cred credsvc.Config
		turn turnsvc.Config
	)
	v := platform.NewVars(flag.NewFlagSet("e2e", flag.ContinueOnError), func(string) string { return "" })
	gw.Bind(v)
	room.Bind(v)
	cred.Bind(v)
	turn.Bind(v)
	if err := v.Resolve(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	s := &stack{
		AdminToken:    platform.RandomToken(24),
		InternalToken: platform.RandomToken(24),
		DataDir:       t.TempDir(),
	}
	base := func(name string) platform.Base {
		var w io.Writer = testWriter{t, name}
		if opt.Logs != nil {
			w = io.MultiWriter(w, opt.Logs(name))
		}
		b := platform.Base{
			DataDir:       s.DataDir,
			AdminToken:    s.AdminToken,
			InternalToken: s.InternalToken,
			Log:           platform.NewLogger(w, logLevel()),
		}
		if opt.Telemetry != nil {
			b.Telemetry = opt.Telemetry(name)
		}
		return b
	}
	listen := func() (net.Listener, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		return ln, "http://" + ln.Addr().String()
	}
	gw.Listener, s.GatewayURL = listen()
	room.Listener, s.RoomsvcURL = listen()
	cred.Listener, s.CredsvcURL = listen()
	turn.Listener, s.TurnsvcURL = listen()
	gw.RoomsvcURL, gw.CredsvcURL = s.RoomsvcURL, s.CredsvcURL
	room.CredsvcURL = s.CredsvcURL
	turn.CredsvcURL = s.CredsvcURL
	gw.Base, room.Base, cred.Base, turn.Base = base("gateway"), base("roomsvc"), base("credsvc"), base("turnsvc")
	applyStackDefaults(&gw, &room, &cred, &turn)
	if opt.Gateway != nil {
		opt.Gateway(&gw)
	}
	if opt.Roomsvc != nil {
		opt.Roomsvc(&room)
	}
	if opt.Turnsvc != nil {
		opt.Turnsvc(&turn)
	}

	// Services stop in the order `tuturu all` stops them: the gateway, then roomsvc (whose
	// departures must still reach credsvc), then credsvc and turnsvc.
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	var tiers [3][]running
	start := func(tier int, name string, run func(context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		r := running{cancel: cancel, done: make(chan error, 1)}
		tiers[tier] = append(tiers[tier], r)
		go func() { r.done <- run(ctx) }()
	}
	t.Cleanup(func() {
		timeout := time.After(15 * time.Second)
		for _, tier := range tiers {
			for _, r := range tier {
				r.cancel()
			}
			for _, r := range tier {
				select {
				case err := <-r.done:
					if err != nil {
						t.Errorf("service stopped with error: %v", err)
					}
				case <-timeout:
					t.Errorf("services did not stop within 15s")
					return
				}
			}
		}
	})

	ts, err := turnsvc.New(turn)
	if err != nil {
		t.Fatalf("turnsvc: %v", err)
	}
	bindTurn(&cred, ts)
	if opt.Credsvc != nil {
		opt.Credsvc(&cred)
	}
	cs, err := credsvc.New(cred)
	if err != nil {
		t.Fatalf("credsvc: %v", err)
	}
	start(2, "credsvc", cs.Run)
	start(2, "turnsvc", ts.Run)
	rs, err := roomsvc.New(room)
	if err != nil {
		t.Fatalf("roomsvc: %v", err)
	}
	start(1, "roomsvc", rs.Run)
	g, err := gateway.New(gw)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	start(0, "gateway", g.Run)
	return s
}

// applyStackDefaults sets what tests need everywhere: loopback-only TURN on ephemeral ports.
func applyStackDefaults(gw *gateway.Config, room *roomsvc.Config, cred *credsvc.Config, turn *turnsvc.Config) {
	turn.ListenHost = "127.0.0.1"
	turn.ExternalIP = "127.0.0.1"
	turn.Port = 0 // ephemeral; credsvc learns the real port from bindTurn
	// Tests relay between peers on loopback, which the deny-list refuses unless allowed.
	turn.AllowPeers = "127.0.0.0/8,::1/128"
	// Live allocations must not hold a test's cleanup for the production drain time.
	turn.DrainTimeout = time.Second
	cred.TurnHost = "127.0.0.1"
}

// bindTurn points credsvc's TURN URLs at the TURN server that was actually started.
func bindTurn(cred *credsvc.Config, ts *turnsvc.Service) {
	cred.TurnHost = ts.TURNAddr().IP.String()
	cred.TurnPort = ts.TURNAddr().Port // TCP listens on the same port
	if tls := ts.TURNTLSAddr(); tls != nil {
		cred.TurnsPort = tls.Port
	}
}

// logLevel is info, or debug when TUTURU_TEST_DEBUG is set.
func logLevel() slog.Level {
	if os.Getenv("TUTURU_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// testWriter sends a service's log lines to the test log, so they show only on failure.
type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, p)
	return len(p), nil
}
