package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/roomsvc"
	"github.com/tuturu/tuturu/turnsvc"
)

const usage = `usage: tuturu <target> [flags]

targets:
  all          every service in one process, on localhost ports
  gateway      the public edge: web client, WebSocket signaling
  roomsvc      rooms and membership
  credsvc      TURN secrets, credentials and revocations
  turnsvc      the TURN/STUN relay
  healthcheck  probe a service's grpc.health.v1 endpoint (exit 0 when SERVING)
  loadtest     drive call set-ups through a gateway and report figures

Every flag can also be set by the environment variable named in its help.
Run 'tuturu <target> -h' for the flags of a target.`

// runner is one service's Run.
type runner struct {
	name string
	run  func(context.Context) error
}

// run parses the target and its configuration, then runs it until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, usage)
		if len(args) == 0 {
			return errors.New("no target given")
		}
		return nil
	}
	target, args := args[0], args[1:]
	switch target {
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout, stderr)
	case "loadtest":
		return loadtest(ctx, args, getenv, stdout, stderr)
	case "all", "gateway", "roomsvc", "credsvc", "turnsvc":
	default:
		return fmt.Errorf("unknown target %q\n%s", target, usage)
	}

	fs := flag.NewFlagSet("tuturu "+target, flag.ContinueOnError)
	fs.SetOutput(stderr)
	v := platform.NewVars(fs, getenv)
	var cfg configs
	cfg.bind(v, target)
	common, gw, room, cred, turn := &cfg.common, &cfg.gw, &cfg.room, &cfg.cred, &cfg.turn
	wants := func(name string) bool { return target == "all" || target == name }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("bad flags: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := v.Resolve(); err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	if target == "all" {
		cfg.wireEdge()
	}
	if common.dataDir == "" {
		return errors.New("bad configuration:\nDATA_DIR (-data-dir): must not be empty: tokens and the credential database live there")
	}

	log := platform.NewLogger(stderr, common.logLevel)
	if common.pprofAddr != "" {
		_, stopPprof, err := servePprof(ctx, common.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	adminToken, adminPath, err := platform.LoadOrCreateToken(common.dataDir, "admin", common.adminToken)
	if err != nil {
		return fmt.Errorf("ADMIN_TOKEN: %w", err)
	}
	internalToken, internalPath, err := platform.LoadOrCreateToken(common.dataDir, "internal", common.internalToken)
	if err != nil {
		return fmt.Errorf("INTERNAL_TOKEN: %w", err)
	}
	if adminPath != "" {
		abs, _ := filepath.Abs(adminPath)
		log.Info("admin token file (send it as 'authorization: Bearer <token>' to admin RPCs)", "path", abs)
	}
	if internalPath != "" {
		abs, _ := filepath.Abs(internalPath)
		log.Info("internal service token file", "path", abs)
	}

	// base builds one service's shared configuration, with its own telemetry so that traces
	// show each service under its own name even when all run in one process.
	var shutdowns []func(context.Context) error
	defer func() {
		for _, shutdown := range shutdowns {
			if err := shutdown(context.WithoutCancel(ctx)); err != nil {
				log.Warn("telemetry flush failed", "err", err)
			}
		}
	}()
	base := func(name string) (platform.Base, error) {
		tel, shutdown, err := platform.SetupTelemetry(ctx, name, getenv)
		if err != nil {
			return platform.Base{}, err
		}
		shutdowns = append(shutdowns, shutdown)
		return platform.Base{
			DataDir:       common.dataDir,
			AdminToken:    adminToken,
			InternalToken: internalToken,
			Log:           log.With("service", name),
			Telemetry:     tel,
		}, nil
	}

	var runners []runner
	if wants("credsvc") {
		if cred.Base, err = base("credsvc"); err != nil {
			return err
		}
		s, err := credsvc.New(*cred)
		if err != nil {
			return err
		}
		runners = append(runners, runner{"credsvc", s.Run})
	}
	if wants("roomsvc") {
		if room.Base, err = base("roomsvc"); err != nil {
			return err
		}
		s, err := roomsvc.New(*room)
		if err != nil {
			return err
		}
		runners = append(runners, runner{"roomsvc", s.Run})
	}
	if wants("turnsvc") {
		if turn.Base, err = base("turnsvc"); err != nil {
			return err
		}
		s, err := turnsvc.New(*turn)
		if err != nil {
			return err
		}
		runners = append(runners, runner{"turnsvc", s.Run})
	}
	if wants("gateway") {
		if gw.Base, err = base("gateway"); err != nil {
			return err
		}
		s, err := gateway.New(*gw)
		if err != nil {
			return err
		}
		runners = append(runners, runner{"gateway", s.Run})
	}
	return runAll(ctx, runners, log)
}

// runAll runs every runner until ctx ends or one of them stops, then stops the others one at
// a time in reverse start order: the gateway first, so it closes browser sockets with 1001
// while roomsvc still holds their slots for a resume, and credsvc last, so the revocations of
// members who leave during the stop still land. A service that stops before ctx ends has
// failed, even without an error: the others are drained as on SIGTERM and the error names it,
// so that the process exits non-zero and a supervisor restarts it.
func runAll(ctx context.Context, runners []runner, log *slog.Logger) error {
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	type exit struct {
		i   int
		err error
	}
	exited := make(chan exit, len(runners))
	all := make([]running, len(runners))
	for i, r := range runners {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		all[i] = running{cancel: cancel, done: make(chan error, 1)}
		go func() {
			err := r.run(rctx)
			all[i].done <- err
			exited <- exit{i, err}
		}()
	}
	failed := -1
	var failure error
	select {
	case <-ctx.Done():
	case e := <-exited:
		failed, failure = e.i, e.err
		if failure == nil {
			failure = errors.New("stopped on its own")
		}
		log.Error("service failed; stopping all services", "service", runners[failed].name, "err", failure)
	}
	var errs []error
	for i := len(all) - 1; i >= 0; i-- {
		all[i].cancel()
		err := <-all[i].done
		if i != failed && err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", runners[i].name, err))
		}
	}
	if failed >= 0 {
		// The failure first: it is why the process exits.
		errs = append([]error{fmt.Errorf("service %s failed, all services stopped: %w", runners[failed].name, failure)}, errs...)
	}
	return errors.Join(errs...)
}

// configs holds the configuration of every service a target runs.
type configs struct {
	common commonConfig
	gw     gateway.Config
	room   roomsvc.Config
	cred   credsvc.Config
	turn   turnsvc.Config
}

// bind registers the flags and environment variables of the services target runs.
func (c *configs) bind(v *platform.Vars, target string) {
	c.common.bind(v)
	wants := func(name string) bool { return target == "all" || target == name }
	if wants("gateway") {
		c.gw.Bind(v)
	}
	if wants("roomsvc") {
		c.room.Bind(v)
	}
	if wants("credsvc") {
		c.cred.Bind(v)
	}
	if wants("turnsvc") {
		c.turn.Bind(v)
	}
}

// commonConfig is what every target shares.
type commonConfig struct {
	dataDir       string
	adminToken    string
	internalToken string
	logLevel      slog.Level
	pprofAddr     string
}

func (c *commonConfig) bind(v *platform.Vars) {
	v.String(&c.dataDir, "data-dir", "DATA_DIR", "data", "directory for what must persist (tokens, credential database)")
	v.String(&c.adminToken, "admin-token", "ADMIN_TOKEN", "", "bearer token for admin RPCs; generated into <data-dir>/admin.token when empty")
	v.String(&c.internalToken, "internal-token", "INTERNAL_TOKEN", "", "bearer token between services; generated into <data-dir>/internal.token when empty")
	v.Func("log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error", func(s string) error {
		l, err := platform.ParseLevel(s)
		c.logLevel = l
		return err
	})
	v.String(&c.pprofAddr, "pprof-addr", "PPROF_ADDR", "", "loopback address for net/http/pprof (debugging; off when empty)")
}
