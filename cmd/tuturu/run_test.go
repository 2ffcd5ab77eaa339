package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testproc"
)

// runMainEnv makes the test binary run main instead of the tests: tests start `tuturu` as a
// process by running their own binary, which holds the same main, so nothing is built twice.
const runMainEnv = "TUTURU_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tuturuCommand is `tuturu args...` as a process, with env as its whole environment.
func tuturuCommand(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{runMainEnv + "=1"}, env...)
	return cmd
}

// lines is an io.Writer that keeps what is written to it as lines, for tests to await.
type lines struct {
	mu      sync.Mutex
	all     []string
	part    []byte
	closed  bool
	changed chan struct{} // closed and replaced on every change
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, string(l.part[:i]))
		l.part = l.part[i+1:]
	}
	l.notify()
	return len(p), nil
}

// close marks the end of the output: await stops waiting.
func (l *lines) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.part) > 0 {
		l.all = append(l.all, string(l.part))
		l.part = nil
	}
	l.closed = true
	l.notify()
}

func (l *lines) notify() {
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

func (l *lines) String() string { return strings.Join(l.snapshot(), "\n") }

// await reports whether ok holds for the lines written before timeout, checking again on
// every change; it stops early once the output is closed.
func (l *lines) await(timeout time.Duration, ok func([]string) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		done, closed, changed := ok(l.all), l.closed, l.changed
		l.mu.Unlock()
		if done || closed {
			return done
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// logRecord is the part of a JSON log line the tests look at.
type logRecord struct {
	Msg, Server, Service, Err string
}

func records(ls []string) []logRecord {
	var recs []logRecord
	for _, l := range ls {
		var r logRecord
		if json.Unmarshal([]byte(l), &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// servingAll reports whether every named server has logged that it is serving.
func servingAll(names ...string) func([]string) bool {
	return func(ls []string) bool {
		n := 0
		for _, r := range records(ls) {
			if r.Msg == "serving" && slices.Contains(names, r.Server) {
				n++
			}
		}
		return n >= len(names)
	}
}

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// Bad configuration stops start-up with a message that names the variable.
func TestBadConfigurationNamesTheVariable(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unparsable port", []string{"all"}, map[string]string{"TURN_MIN_PORT": "abc"}, `TURN_MIN_PORT (-turn-min-port): "abc" is not a port number`},
		{"port out of range", []string{"turnsvc"}, map[string]string{"TURN_MAX_PORT": "70000"}, `TURN_MAX_PORT (-turn-max-port): "70000" is not a port number`},
		{"non-boolean boolean", []string{"gateway"}, map[string]string{"FORCE_RELAY": "sometimes"}, `FORCE_RELAY (-force-relay): "sometimes" is not a boolean`},
		{"bad duration", []string{"roomsvc"}, map[string]string{"RESUME_GRACE": "thirty"}, `RESUME_GRACE (-resume-grace): "thirty" is not a duration`},
		{"zero size limit", []string{"gateway"}, map[string]string{"WS_MAX_MESSAGE_BYTES": "0"}, `WS_MAX_MESSAGE_BYTES (-ws-max-message-bytes): "0" is not a whole number of at least 1`},
		{"negative burst", []string{"gateway"}, map[string]string{"WS_JOIN_BURST": "-5"}, `WS_JOIN_BURST (-ws-join-burst): "-5" is not a whole number of at least 1`},
		{"zero TURN quota", []string{"turnsvc"}, map[string]string{"TURN_USER_QUOTA": "0"}, `TURN_USER_QUOTA`},
		{"bad log level", []string{"all"}, map[string]string{"LOG_LEVEL": "loud"}, `LOG_LEVEL (-log-level): "loud" is not a log level`},
		{"missing required value", []string{"all", "-data-dir="}, nil, `DATA_DIR (-data-dir): must not be empty`},
		{"short admin token", []string{"roomsvc"}, map[string]string{"ADMIN_TOKEN": "short"}, `ADMIN_TOKEN: admin token is too short`},
		{"bad flag value", []string{"roomsvc", "-resume-grace", "x"}, nil, `RESUME_GRACE (-resume-grace): "x" is not a duration`},
		{"unknown target", []string{"nope"}, nil, `unknown target "nope"`},
		{"stray argument", []string{"roomsvc", "extra"}, nil, `unexpected arguments: extra`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"DATA_DIR": t.TempDir()}
			for k, v := range c.env {
				env[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			err := run(ctx, c.args, envFrom(env), &out, &errOut)
			if err == nil {
				t.Fatalf("run accepted the configuration")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

// healthcheck exits 0 against a running service and fails clearly against a stopped one.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	addr := testnet.FreeAddr(t)
	env := envFrom(map[string]string{"DATA_DIR": t.TempDir(), "ROOMSVC_ADDR": addr, "CREDSVC_URL": "http://" + testnet.FreeAddr(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- run(ctx, []string{"roomsvc"}, env, &bytes.Buffer{}, &logs) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("roomsvc: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("roomsvc did not stop")
		}
	}()

	var out bytes.Buffer
	var err error
	for range 50 { // the server needs a moment to listen
		out.Reset()
		if err = run(context.Background(), []string{"healthcheck", "-addr", addr}, envFrom(nil), &out, &out); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("healthcheck against a running service: %v\nlogs: %s", err, logs.String())
	}
	if !strings.Contains(out.String(), "serving") {
		t.Fatalf("healthcheck output %q lacks the status", out.String())
	}

	err = run(context.Background(), []string{"healthcheck", "-addr", testnet.FreeAddr(t), "-timeout", "2s"}, envFrom(nil), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "healthcheck http://") || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("healthcheck against a stopped service: %v; want a clear unavailable error", err)
	}
}

// Tokens and secrets never reach the logs; the token's file location does.
func TestTokensAreNotLogged(t *testing.T) {
	dir := t.TempDir()
	env := envFrom(map[string]string{"DATA_DIR": dir, "ROOMSVC_ADDR": testnet.FreeAddr(t), "INTERNAL_TOKEN": "internal-token-value-1234567890"})
	ctx, cancel := context.WithCancel(context.Background())
	var logs lines
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"roomsvc"}, env, &bytes.Buffer{}, &logs)
		logs.close()
		done <- err
	}()
	if !logs.await(15*time.Second, servingAll("roomsvc")) {
		t.Errorf("roomsvc did not log that it serves:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "internal-token-value") {
		t.Fatal("the internal token was logged")
	}
	if !strings.Contains(logs.String(), "admin.token") {
		t.Fatalf("the admin token's location was not logged: %s", logs.String())
	}
}

// runAll stops services one at a time in reverse start order (the gateway before roomsvc,
// credsvc last), and a service that fails, or stops on its own, stops the others and is named
// first in the error.
func TestRunAllStopOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	record := func(name string, stop func() error) runner {
		return runner{name, func(ctx context.Context) error {
			if stop != nil {
				return stop()
			}
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond) // a later stop must wait for this one
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}}
	}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if err := runAll(ctx, []runner{record("credsvc", nil), record("roomsvc", nil), record("gateway", nil)}, log); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "gateway,roomsvc,credsvc" {
		t.Fatalf("stop order %s, want gateway,roomsvc,credsvc", got)
	}

	for _, c := range []struct {
		name string
		stop func() error
		want string
	}{
		{"error", func() error { return errors.New("boom") }, "service turnsvc failed, all services stopped: boom"},
		{"no error", func() error { return nil }, "service turnsvc failed, all services stopped: stopped on its own"},
	} {
		order = nil
		err := runAll(context.Background(), []runner{record("credsvc", nil), record("turnsvc", c.stop), record("gateway", nil)}, log)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Fatalf("%s: err %v, want it to start with %q", c.name, err, c.want)
		}
		if got := strings.Join(order, ","); got != "gateway,credsvc" {
			t.Fatalf("%s: after turnsvc stopped, stopped %s, want gateway,credsvc", c.name, got)
		}
	}
}

// breakListener makes the TCP listener on 127.0.0.1:port of process pid fail for good, as
// a listener the kernel tears down does: through a duplicate of the process's descriptor
// (pidfd_getfd) it shuts the socket down, and the process's next accept fails with EINVAL,
// which no server retries. Only the one socket of the one process is touched.
func breakListener(t *testing.T, pid, port int) {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("pidfd_open: %v: cannot reach the process's sockets here", err)
	}
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		target, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			t.Skipf("pidfd_getfd: %v: cannot reach the process's sockets here", err)
		}
		if err != nil {
			continue // closed since the listing
		}
		sa, err := unix.Getsockname(fd)
		listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if in4, ok := sa.(*unix.SockaddrInet4); err == nil && ok && listening == 1 &&
			in4.Port == port && in4.Addr == [4]byte{127, 0, 0, 1} {
			err := unix.Shutdown(fd, unix.SHUT_RD)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("shutdown of the listener on port %d: %v", port, err)
			}
			return
		}
		unix.Close(fd)
	}
	t.Fatalf("process %d has no TCP listener on 127.0.0.1:%d", pid, port)
}

// When one service of `tuturu all` fails while the others run (here roomsvc, whose listener
// breaks), the others are drained as on SIGTERM, in reverse start order, and the process
// exits non-zero with a message naming roomsvc, so that a supervisor restarts it.
func TestAllExitsWhenAServiceFails(t *testing.T) {
	t.Parallel() // its services run in a process of their own
	env, room := testproc.AllEnv(t)
	_, p, _ := net.SplitHostPort(room)
	roomPort, _ := strconv.Atoi(p)
	cmd := tuturuCommand(t, env, "all")
	var out lines
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		out.close()
		exited <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	if !out.await(30*time.Second, servingAll("credsvc", "roomsvc", "turnsvc", "gateway")) {
		t.Fatalf("tuturu all did not serve every service within 30s:\n%s", out.String())
	}

	breakListener(t, cmd.Process.Pid, roomPort)
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("tuturu all still runs 30s after roomsvc failed:\n%s", out.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("tuturu all exited with %v, want a non-zero status:\n%s", err, out.String())
	}
	ls := out.snapshot()
	if len(ls) == 0 || !strings.HasPrefix(ls[len(ls)-1], "tuturu: service roomsvc failed, all services stopped: ") {
		t.Fatalf("the last line does not name roomsvc as the failed service:\n%s", out.String())
	}
	var failed, stopped []string
	for _, r := range records(ls) {
		switch r.Msg {
		case "service failed; stopping all services":
			failed = append(failed, r.Service)
		case "stopped":
			stopped = append(stopped, r.Server)
		}
	}
	if !slices.Equal(failed, []string{"roomsvc"}) {
		t.Errorf("failures logged for %v, want roomsvc", failed)
	}
	if !slices.Equal(stopped, []string{"gateway", "turnsvc", "credsvc"}) {
		t.Errorf("graceful stops logged for %v, want gateway, turnsvc, credsvc in that order:\n%s", stopped, out.String())
	}
}
