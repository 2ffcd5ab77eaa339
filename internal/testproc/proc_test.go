package testproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the service: with TESTPROC_SERVE set it logs a "serving" line
// for the service named by its first argument (one for each of the four under "all", as
// `tuturu all` does) and runs until a signal.
func TestMain(m *testing.M) {
	if mode := os.Getenv("TESTPROC_SERVE"); mode != "" {
		serve(mode)
		return
	}
	os.Exit(m.Run())
}

func serve(mode string) {
	if mode == "fail" {
		fmt.Fprintln(os.Stderr, `{"msg":"cannot listen"}`)
		os.Exit(3)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	servers := []string{os.Args[1]}
	if os.Args[1] == "all" {
		servers = []string{"credsvc", "roomsvc", "turnsvc", "gateway"}
	}
	for i, s := range servers {
		fmt.Fprintf(os.Stderr, `{"msg":"serving","server":%q,"addr":"127.0.0.1:%d"}`+"\n", s, 4242+i)
	}
	<-sigs
	os.Exit(0)
}

func env(mode string) []string { return []string{"TESTPROC_SERVE=" + mode} }

func TestStartReadsTheServingLineAndStops(t *testing.T) {
	p := Start(t, os.Args[0], "roomsvc", env("ok"), "")
	if p.Addr != "127.0.0.1:4242" || !strings.Contains(p.Log(), `"serving"`) {
		t.Fatalf("addr %q, log %q", p.Addr, p.Log())
	}
	start := time.Now()
	p.Stop(t, 10*time.Second)
	if time.Since(start) > 10*time.Second {
		t.Fatal("stop took longer than its bound")
	}
	p.Kill() // already gone: returns at once
}

func TestStartAllWaitsForEveryServer(t *testing.T) {
	p := StartAll(t, os.Args[0], env("ok"))
	if p.Addr != "127.0.0.1:4245" || len(p.Addrs) != 4 || p.Addrs["credsvc"] != "127.0.0.1:4242" {
		t.Fatalf("addr %q (want the gateway's), addrs %v", p.Addr, p.Addrs)
	}
	p.Stop(t, 10*time.Second)
}

func TestKillEndsTheProcess(t *testing.T) {
	p := Start(t, os.Args[0], "gateway", env("ok"), "ulimit -n 256;")
	p.Kill()
	select {
	case <-p.exited:
	default:
		t.Fatal("Kill returned before the process exited")
	}
	if p.err == nil {
		t.Fatal("a killed process reported a clean exit")
	}
}

func TestStartFailsWhenTheServiceExits(t *testing.T) {
	// Run Start in a subtest whose failure is expected: a fake testing.TB would be a mock.
	if os.Getenv("TESTPROC_EXPECT_FAIL") == "1" {
		Start(t, os.Args[0], "credsvc", env("fail"), "")
		return
	}
	out, err := runSelf(t, "TestStartFailsWhenTheServiceExits", "TESTPROC_EXPECT_FAIL=1")
	if err == nil || !strings.Contains(out, "credsvc exited before serving") || !strings.Contains(out, "cannot listen") {
		t.Fatalf("want a failure naming the exit and the log, got %v:\n%s", err, out)
	}
}

// runSelf runs one test of this binary in a child process with extra environment.
func runSelf(t *testing.T, test string, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
