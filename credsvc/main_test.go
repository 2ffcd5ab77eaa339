package credsvc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/internal/platform"
)

// holdEnv, when set, makes the test binary a helper process that opens credsvc on the data
// directory it names and holds it until its stdin closes.
const holdEnv = "CREDSVC_TEST_HOLD_DATA_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		os.Exit(holdDatabase(dir))
	}
	os.Exit(m.Run())
}

func holdDatabase(dir string) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = credsvc.New(credsvc.Config{
		Base:     platform.Base{DataDir: dir, AdminToken: adminToken, InternalToken: internalToken},
		Listener: ln, TurnHost: "127.0.0.1", TurnPort: 3478,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	return 0
}

func TestDatabaseLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+e.dir)
	cmd.Stderr = testWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	_, err = credsvc.New(e.config())
	if err == nil {
		t.Fatal("credsvc opened a database another process holds")
	}
	if !strings.Contains(err.Error(), e.dbPath()) || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("error = %v, want one naming %s and the lock", err, e.dbPath())
	}
}
