package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
)

// TestSocketCapPerAddress: an address holding WS_MAX_SOCKETS_PER_ADDRESS sockets (joined or
// not) gets 429 TOO_MANY_SOCKETS with a Retry-After for the next one; closing a socket, by
// the client or by the server, frees its slot; another address is unaffected.
func TestSocketCapPerAddress(t *testing.T) {
	const max = 3
	reader := sdkmetric.NewManualReader()
	s := startStack(t, stackOptions{
		Gateway: func(c *gateway.Config) {
			c.Limits.MaxSocketsPerAddress = max
			c.JoinTimeout = 20 * time.Second // Retry-After is the join timeout
		},
		Telemetry: func(service string) platform.Telemetry {
			if service != "gateway" {
				return platform.Telemetry{}
			}
			return platform.Telemetry{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}
		},
	})
	joined := dialWS(t, s, "joined", nil)
	joined.join(nextPIN()) // a member counts as much as an idle socket
	idle := dialWS(t, s, "idle", nil)
	bad := dialWS(t, s, "bad", nil)

	res := dialRefused(t, s, nil)
	if got := res.Header.Get("Retry-After"); got != "20" {
		t.Errorf("Retry-After = %q, want 20 (the join timeout in seconds)", got)
	}
	var body struct{ Error, Code string }
	if err := json.NewDecoder(io.LimitReader(res.Body, 4096)).Decode(&body); err != nil || body.Code != "TOO_MANY_SOCKETS" || body.Error == "" {
		t.Errorf("refusal body = %+v (%v), want code TOO_MANY_SOCKETS and a text", body, err)
	}
	// A refused upgrade took no slot: still refused, not admitted.
	dialRefused(t, s, nil)

	// Another address on loopback is not counted with 127.0.0.1.
	other := dialFrom(t, s, "127.0.0.2")
	other.expectQuiet()

	// The client closes one: its slot frees.
	if err := idle.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("idle: close: %v", err)
	}
	next := dialWhenFree(t, s, "next")
	next.expectQuiet()
	dialRefused(t, s, nil)

	// The server closes one for a protocol violation: its slot frees too.
	bad.send(`{"type":"nope"}`)
	bad.expectError("", "INVALID_MESSAGE")
	bad.expectClose(websocket.StatusPolicyViolation)
	last := dialWhenFree(t, s, "last")
	last.expectQuiet()
	joined.expectQuiet() // the member was never disturbed

	if got := rejections(t, reader, "sockets"); got < 3 {
		t.Errorf("tuturu.gateway.rejections{reason=sockets} = %d, want at least the 3 refusals", got)
	}
}

// dialRefused opens /ws and expects the socket cap's 429.
func dialRefused(t *testing.T, s *stack, client *http.Client) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	c, res, err := websocket.Dial(ctx, wsURL(s), &websocket.DialOptions{HTTPClient: client})
	if err == nil {
		_ = c.CloseNow()
		t.Fatal("socket over the cap was admitted")
	}
	if res == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("socket over the cap: %v (response %v), want HTTP 429", err, res)
	}
	return res
}

// dialWhenFree dials until the server has released a slot (the release follows the close
// handshake by a moment), bounded by wsTimeout.
func dialWhenFree(t *testing.T, s *stack, name string) *wsClient {
	t.Helper()
	deadline := time.Now().Add(wsTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		c, res, err := websocket.Dial(ctx, wsURL(s), nil)
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = c.CloseNow() })
			return &wsClient{t: t, name: name, c: c}
		}
		if res == nil || res.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("%s: dial after a socket closed: %v (response %v)", name, err, res)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFrom opens /ws from another loopback source address (Linux routes all of 127/8 to lo).
func dialFrom(t *testing.T, s *stack, ip string) *wsClient {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: wsTimeout}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	t.Cleanup(client.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	c, res, err := websocket.Dial(ctx, wsURL(s), &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial /ws from %s: %v (HTTP %d)", ip, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, name: ip, c: c}
}

// rejections reads tuturu.gateway.rejections{reason}.
func rejections(t *testing.T, reader *sdkmetric.ManualReader, reason string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != "tuturu.gateway.rejections" {
				continue
			}
			for _, dp := range sum.DataPoints {
				if labels(dp.Attributes) == "reason="+reason {
					return dp.Value
				}
			}
		}
	}
	return 0
}
