package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The pprof listener refuses anything but loopback, serves the profiles, and stops with its
// context.
func TestPprofListener(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "nonsense"} {
		if _, _, err := servePprof(context.Background(), addr, log); err == nil || !strings.Contains(err.Error(), "PPROF_ADDR") {
			t.Errorf("PPROF_ADDR=%s: err %v, want a refusal naming PPROF_ADDR", addr, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvCtx, stopSrv := context.WithCancel(ctx)
	addr, stop, err := servePprof(srvCtx, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile: %s\n%.200s", res.Status, body)
	}
	for path, host := range map[string]string{
		"/debug/pprof/cmdline":   addr.String(),          // would show tokens given as flags
		"/debug/pprof/goroutine": "rebound.example:6060", // DNS rebinding
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr.String()+path, nil)
		req.Host = host
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("GET %s with Host %s: %s, want a refusal", path, host, res.Status)
		}
	}
	stopSrv()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := client.Get("http://" + addr.String() + "/debug/pprof/"); err != nil {
			break // closed with its context
		}
		if time.Now().After(deadline) {
			t.Fatal("pprof listener still serving after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
