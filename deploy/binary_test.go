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

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tuturu-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tuturuBinary builds the binary the image ships, once per test run.
func tuturuBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath = filepath.Join(binDir, "tuturu")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", binPath, "../cmd/tuturu")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tuturu: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

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
