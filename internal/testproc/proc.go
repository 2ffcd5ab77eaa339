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
	"slices"
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
	Addr   string            // where its server listens, from its "serving" log line
	Addrs  map[string]string // each server's address, by name (several under `tuturu all`)
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
	return start(t, bin, service, []string{service}, env, shell)
}

// StartAll runs `tuturu all` as Start runs one service and waits until each of its four
// servers serves; Addr is the gateway's, Addrs has them all.
func StartAll(t testing.TB, bin string, env []string) *Proc {
	t.Helper()
	return start(t, bin, "all", []string{"gateway", "roomsvc", "credsvc", "turnsvc"}, env, "")
}

// start runs `bin target` and waits until each of servers logs that it serves; Addr is the
// first one's.
func start(t testing.TB, bin, target string, servers []string, env []string, shell string) *Proc {
	t.Helper()
	p := &Proc{Name: target, Addrs: map[string]string{}, exited: make(chan struct{})}
	if shell != "" {
		p.cmd = exec.Command("sh", "-c", shell+` exec "$0" "$1"`, bin, target)
	} else {
		p.cmd = exec.Command(bin, target)
	}
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Buffered for every server, so the reader never blocks on a line nobody waits for.
	type serving struct{ server, addr string }
	served := make(chan serving, len(servers))
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := map[string]bool{}
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
			var line struct{ Msg, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" &&
				slices.Contains(servers, line.Server) && !seen[line.Server] {
				seen[line.Server] = true
				served <- serving{line.Server, line.Addr}
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	timeout := time.After(startWithin)
	for len(p.Addrs) < len(servers) {
		select {
		case s := <-served:
			p.Addrs[s.server] = s.addr
		case <-p.exited:
			t.Fatalf("%s exited before serving (%v):\n%s", target, p.err, p.Log())
		case <-timeout:
			t.Fatalf("%s did not start serving within %v (%d of %v serve):\n%s", target, startWithin, len(p.Addrs), servers, p.Log())
		}
	}
	p.Addr = p.Addrs[servers[0]]
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
