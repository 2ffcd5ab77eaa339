package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// healthcheck exits 0 against a running service and fails clearly against a stopped one.
func TestHealthcheck(t *testing.T) {
	addr := freeAddr(t)
	env := envFrom(map[string]string{"DATA_DIR": t.TempDir(), "ROOMSVC_ADDR": addr, "CREDSVC_URL": "http://" + freeAddr(t)})
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

	err = run(context.Background(), []string{"healthcheck", "-addr", freeAddr(t), "-timeout", "2s"}, envFrom(nil), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "healthcheck http://") || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("healthcheck against a stopped service: %v; want a clear unavailable error", err)
	}
}

// Tokens and secrets never reach the logs; the token's file location does.
func TestTokensAreNotLogged(t *testing.T) {
	dir := t.TempDir()
	env := envFrom(map[string]string{"DATA_DIR": dir, "ROOMSVC_ADDR": freeAddr(t), "INTERNAL_TOKEN": "internal-token-value-1234567890"})
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"roomsvc"}, env, &bytes.Buffer{}, &logs) }()
	time.Sleep(300 * time.Millisecond)
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
