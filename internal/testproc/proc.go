// Package testproc runs a tuturu service as a process of its own, for tests that need one
// (to kill it, to give it its own limits, or to run it as its container would): the binary is
// built once per test run, a process is started and read until its server says it serves, and
// it is always reaped.
package testproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startWithin bounds how long a service may take to serve.
const startWithin = 30 * time.Second

// Builder builds a command once and hands out its path.
type Builder struct {
	once sync.Once
	path string
	err  error
}

// Binary builds pkg (a path relative to the test's package, e.g. "../cmd/tuturu") into dir
// the first time it is called and returns the binary's path.
func (b *Builder) Binary(t testing.TB, dir, pkg string) string {
	t.Helper()
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.path, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Proc is one running service.
type Proc struct {
	Name   string
	Addr   string // where its server listens, from its "serving" log line
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and err is set
	err    error

	mu   sync.Mutex
	logs []string
}

// Start runs `bin service` with exactly env, through `sh -c` with shell first when shell is
// set (e.g. "ulimit -n 256;"), and waits until the service logs that it serves. The process is
// killed, if still running, when the test ends.
func Start(t testing.TB, bin, service string, env []string, shell string) *Proc {
	t.Helper()
	p := &Proc{Name: service, exited: make(chan struct{})}
	if shell != "" {
		p.cmd = exec.Command("sh", "-c", shell+` exec "$0" "$1"`, bin, service)
	} else {
		p.cmd = exec.Command(bin, service)
	}
	p.cmd.Env = env
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
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	select {
	case p.Addr = <-serving:
	case <-p.exited:
		t.Fatalf("%s exited before serving (%v):\n%s", service, p.err, p.Log())
	case <-time.After(startWithin):
		t.Fatalf("%s did not start serving within %v:\n%s", service, startWithin, p.Log())
	}
	return p
}

// Log is what the process has written to stderr so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// Kill ends the process with SIGKILL (no drain, as a crash) and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop ends the process with SIGTERM, as an orchestrator does, and fails the test unless it
// exits cleanly within the bound (then it is killed).
func (p *Proc) Stop(t testing.TB, within time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("%s exited with %v after SIGTERM:\n%s", p.Name, p.err, p.Log())
		}
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not stop within %v of SIGTERM:\n%s", p.Name, within, p.Log())
	}
}

// Pid is the service's process id (a shell prefix execs the service, so it is the service's
// too), for tests that read its /proc entries.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
