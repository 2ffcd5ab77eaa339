package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/platform"
)

// tuturuBuild builds cmd/tuturu once per test binary; TestMain sets it up and removes the
// binary's directory afterwards.
var tuturuBuild func() (string, error)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tuturu-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tuturuBuild = sync.OnceValues(func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin := filepath.Join(dir, "tuturu")
		// Not the Dockerfile's -trimpath and CGO_ENABLED=0: those change the file paths
		// recorded in the binary and the libc-backed lookups (resolver, os/user), which no test
		// here looks at (every address is a loopback IP), and either flag makes go build
		// compile every dependency again (~100 s on two cores) instead of reusing what go test
		// and go build already compiled. The Dockerfile's flags are checked in TestDockerfile.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/tuturu")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/tuturu: %w\n%s", err, out)
		}
		return bin, nil
	})
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tuturuBinary is the path of the tuturu binary, built on first use.
func tuturuBinary(t *testing.T) string {
	t.Helper()
	bin, err := tuturuBuild()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// prebuild starts the build in the background, so that a test can wait for its turn to run
// in parallel (t.Parallel) while the serial tests run and the binary builds.
func prebuild() { go func() { _, _ = tuturuBuild() }() }

// baseEnv is the environment a test gives the binary: nothing of this process's OTEL_* or
// service variables, only what a container would have besides compose's environment.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
}

var helpEnv = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)

// TestComposeEnvironmentIsRead catches a misspelt or stale variable in compose.yaml: every
// variable it sets on a service is one that service's target reads (per `tuturu <target> -h`),
// apart from the OTEL_* ones, which the OpenTelemetry setup reads.
func TestComposeEnvironmentIsRead(t *testing.T) {
	prebuild()
	t.Parallel()
	bin := tuturuBinary(t)
	p := loadCompose(t, nil)
	for _, s := range tuturuServices(p) {
		name := target(s)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, name, "-h")
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("tuturu %s -h: %v\n%s", name, err, out)
		}
		var known []string
		for _, m := range helpEnv.FindAllStringSubmatch(string(out), -1) {
			known = append(known, m[1])
		}
		if len(known) < 4 {
			t.Fatalf("tuturu %s -h lists only %v", name, known)
		}
		for k := range s.Environment {
			if !strings.HasPrefix(k, "OTEL_") && !slices.Contains(known, k) {
				t.Errorf("compose.yaml sets %s on %s, which `tuturu %s` does not read", k, s.Name, name)
			}
		}
	}
}

// TestComposeHealthcheckCommand runs the healthcheck command compose.yaml gives each service
// (with the address of a real server) and checks that it passes while the server is serving
// and fails once it is gone.
func TestComposeHealthcheckCommand(t *testing.T) {
	prebuild()
	t.Parallel()
	bin := tuturuBinary(t)
	p := loadCompose(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := platform.NewServer("probe-target", "", ln, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		stop()
		<-served
	}()

	probe := func(test []string) error {
		argv := slices.Clone(test[1:]) // drop "CMD"
		argv[0] = bin
		for i := range argv {
			if i > 0 && argv[i-1] == "-addr" {
				argv[i] = ln.Addr().String()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(strings.ToLower(string(out)), "serving") {
			return fmt.Errorf("output %q", out)
		}
		return nil
	}
	for _, s := range tuturuServices(p) {
		if err := probe(s.HealthCheck.Test); err != nil {
			t.Errorf("%s healthcheck against a serving server: %v", s.Name, err)
		}
	}
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	served <- nil // for the deferred wait
	if err := probe(service(t, p, "gateway").HealthCheck.Test); err == nil {
		t.Error("healthcheck passed with the server stopped")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("healthcheck hung: %v", err)
	}
}
