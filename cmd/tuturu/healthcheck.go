package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/tuturu/tuturu/internal/platform"
)

// healthcheck asks a service's grpc.health.v1 endpoint whether it is SERVING. It needs no
// shell or curl, so a minimal container image can use it as its HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tuturu healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	v := platform.NewVars(fs, getenv)
	var (
		addr, service string
		timeout       time.Duration
	)
	v.String(&addr, "addr", "HEALTHCHECK_ADDR", "127.0.0.1:8080", "host:port (or base URL) of the service to probe")
	v.String(&service, "service", "HEALTHCHECK_SERVICE", "", "service name to check; empty checks the whole server")
	v.Duration(&timeout, "timeout", "HEALTHCHECK_TIMEOUT", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("bad flags: %w", err)
	}
	if err := v.Resolve(); err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := grpchealth.NewClient(platform.NewH2CClient(), base, connect.WithGRPC())
	res, err := client.Check(ctx, &grpchealth.CheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", base, err)
	}
	if res.Status != grpchealth.StatusServing {
		return fmt.Errorf("healthcheck %s: status %s", base, res.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", base, res.Status)
	return nil
}
