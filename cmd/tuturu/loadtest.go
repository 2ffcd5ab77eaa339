package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
	lt "github.com/tuturu/tuturu/loadtest"
)

// loadtest parses the load tool's flags and hands the work to package loadtest.
func loadtest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tuturu loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	v := platform.NewVars(fs, getenv)
	var cfg lt.Config
	v.String(&cfg.URL, "url", "LOADTEST_URL", "ws://127.0.0.1:8080/ws", "gateway WebSocket URL")
	v.String(&cfg.Origin, "origin", "LOADTEST_ORIGIN", "", "Origin header to send (empty sends none)")
	v.Int(&cfg.Calls, "calls", "LOADTEST_CALLS", 2000, "call set-ups to measure")
	v.Int(&cfg.Warmup, "warmup", "LOADTEST_WARMUP", 200, "unmeasured call set-ups first")
	v.Func("rate", "LOADTEST_RATE", "200", "set-ups started per second (open loop); 0 runs -concurrency back to back", func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("%q is not a rate (set-ups per second, >= 0)", s)
		}
		cfg.Rate = f
		return nil
	})
	v.Int(&cfg.Concurrency, "concurrency", "LOADTEST_CONCURRENCY", 64, "calls in flight in closed loop; cap on calls in flight in open loop")
	v.Duration(&cfg.Timeout, "timeout", "LOADTEST_TIMEOUT", 10*time.Second, "bound on one call")
	v.Func("server-pid", "LOADTEST_SERVER_PID", "", "comma-separated PIDs of the server processes to measure (CPU, RSS)", func(s string) error {
		cfg.ServerPIDs = nil
		for _, p := range platform.SplitList(s) {
			pid, err := strconv.Atoi(p)
			if err != nil || pid <= 0 {
				return fmt.Errorf("%q is not a process id", p)
			}
			cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
		}
		return nil
	})
	v.Int(&cfg.Idle, "idle", "LOADTEST_IDLE", 0, "joined sessions to hold open for the memory figure (raise ulimit -n)")
	v.Duration(&cfg.IdleHold, "idle-hold", "LOADTEST_IDLE_HOLD", 30*time.Second, "how long to hold the idle sessions")
	var result, sink string
	v.String(&result, "result", "LOADTEST_RESULT", "", "also write the figures to this file as name=value lines (for scripts)")
	v.String(&sink, "otlp-sink", "LOADTEST_OTLP_SINK", "", "drive nothing: accept and discard OTLP/HTTP exports on this loopback address until interrupted")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("bad flags: %w", err)
	}
	if err := v.Resolve(); err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	if sink != "" {
		return lt.Sink(ctx, sink, stdout)
	}
	r, err := lt.Run(ctx, cfg, stdout)
	if result != "" && r != nil {
		if werr := lt.WriteFiguresFile(result, r); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}
