package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests that need a service in a process of its own (to kill it, or to give it its own limits)
// run the real binary, built once per test run.

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
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
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath = filepath.Join(binDir, "tuturu")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "../cmd/tuturu")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tuturu: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a tuturu service in a process of its own.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // from its "serving" log line
	done chan error

	mu   sync.Mutex
	logs []string
}

// startProc runs `tuturu <service>` (through `sh -c` with shellPrefix before it when set, e.g.
// "ulimit -n 256;") with env added to a bare environment, and waits until it serves.
func startProc(t *testing.T, service, shellPrefix string, env map[string]string) *proc {
	t.Helper()
	bin := tuturuBinary(t)
	p := &proc{name: service, done: make(chan error, 1)}
	if shellPrefix != "" {
		p.cmd = exec.Command("sh", "-c", shellPrefix+` exec "$0" "$1"`, bin, service)
	} else {
		p.cmd = exec.Command(bin, service)
	}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
			var line struct{ Msg, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" && line.Server == service {
				select {
				case serving <- line.Addr:
				default:
				}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-serving:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before serving (%v):\n%s", service, err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start serving within 30s:\n%s", service, p.log())
	}
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// kill ends the process with SIGKILL (no drain, as a crash) and waits for it.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
}

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
