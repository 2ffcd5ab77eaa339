package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tuturu/tuturu/internal/testproc"
)

// Tests that need a service in a process of its own (to kill it, or to give it its own limits)
// run the real binary, built once per test run.

var (
	binDir  string
	builder testproc.Builder
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tuturu-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tuturuBinary builds cmd/tuturu once per test run.
func tuturuBinary(t *testing.T) string {
	t.Helper()
	return builder.Binary(t, binDir, "../cmd/tuturu")
}

// proc is a tuturu service in a process of its own.
type proc struct {
	*testproc.Proc
	addr string // from its "serving" log line
}

// startProc runs `tuturu <service>` (through `sh -c` with shellPrefix before it when set, e.g.
// "ulimit -n 256;") with env added to a bare environment, and waits until it serves.
func startProc(t *testing.T, service, shellPrefix string, env map[string]string) *proc {
	t.Helper()
	full := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		full = append(full, k+"="+v)
	}
	p := testproc.Start(t, tuturuBinary(t), service, full, shellPrefix)
	return &proc{Proc: p, addr: p.Addr}
}

func (p *proc) log() string { return p.Log() }

// kill ends the process with SIGKILL (no drain, as a crash) and waits for it.
func (p *proc) kill() { p.Kill() }

// gatewayEnv is the environment of a gateway process in front of s's roomsvc and credsvc.
func gatewayEnv(t *testing.T, s *stack) map[string]string {
	return map[string]string{
		"GATEWAY_ADDR":   "127.0.0.1:0",
		"ROOMSVC_URL":    s.RoomsvcURL,
		"CREDSVC_URL":    s.CredsvcURL,
		"INTERNAL_TOKEN": s.InternalToken,
		"ADMIN_TOKEN":    s.AdminToken,
		"DATA_DIR":       t.TempDir(),
		"LOG_LEVEL":      "debug",
	}
}

// logTails logs the end of each process's log, for a failed test.
func logTails(t *testing.T, procs []*proc) {
	for _, p := range procs {
		lines := strings.Split(p.log(), "\n")
		t.Logf("%s (pid %d), the end of its log:\n%s", p.Name, p.Pid(), strings.Join(lines[max(len(lines)-40, 0):], "\n"))
	}
}
