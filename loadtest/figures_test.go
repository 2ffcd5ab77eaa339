package loadtest

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFigures(t *testing.T) {
	var b strings.Builder
	err := WriteFigures(&b, &Report{OK: 3, Failed: 1, SetupsPerSec: 200.04, P50: 1500 * time.Microsecond,
		P99: 2 * time.Second, CPUPerSetup: 1234567 * time.Nanosecond, IdleOpen: 10, RSSBefore: 1 << 20, RSSDeltaPS: 4096})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " \t") || got[k] != "" {
			t.Fatalf("bad line %q", line)
		}
		got[k] = v
	}
	for k, want := range map[string]string{"ok": "3", "failed": "1", "setups_per_s": "200.0", "p50_us": "1500.0",
		"p99_us": "2000000.0", "cpu_us_per_setup": "1234.6", "idle_open": "10", "rss_before": "1048576",
		"rss_delta_per_session": "4096", "server_wait_us": "0.0"} {
		if got[k] != want {
			t.Errorf("%s=%q, want %q", k, got[k], want)
		}
	}
}

func TestWriteFiguresFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures")
	if err := WriteFiguresFile(path, &Report{OK: 7}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(b), "ok=7\nfailed=0\n") {
		t.Fatalf("%q, %v", b, err)
	}
	if err := WriteFiguresFile(filepath.Join(path, "x"), &Report{}); err == nil {
		t.Fatal("wrote under a file")
	}
}

func TestSink(t *testing.T) {
	if err := Sink(context.Background(), "192.0.2.1:4318", io.Discard); err == nil {
		t.Fatal("a non-loopback sink started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Sink(ctx, "127.0.0.1:0", pw); pw.Close() }()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("no start line")
	}
	url, ok := strings.CutPrefix(lines.Text(), "otlp sink on ")
	if !ok {
		t.Fatalf("start line %q", lines.Text())
	}
	resp, err := http.Post(url+"/v1/traces", "application/x-protobuf", strings.NewReader("spans"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	if !lines.Scan() || lines.Text() != "otlp sink: 1 requests, 5 bytes discarded" {
		t.Fatalf("end line %q", lines.Text())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
