package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testmetrics"
)

// TestSocketCapPerAddress: an address holding WS_MAX_SOCKETS_PER_ADDRESS sockets (joined or
// not) gets, on the next one, an error TOO_MANY_SOCKETS readable in both dialects and close
// 1013; closing a socket, by the client or by the server, frees its slot; another address is
// unaffected.
func TestSocketCapPerAddress(t *testing.T) {
	t.Parallel()
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

	m := dialRefused(t, s)
	if m.RetryAfterMs != 20000 {
		t.Errorf("retryAfterMs = %d, want 20000 (the join timeout)", m.RetryAfterMs)
	}
	var flutter struct{ Request, Reason, Code string }
	if err := json.Unmarshal(m.Data, &flutter); err != nil || flutter.Reason == "" || flutter.Code != "TOO_MANY_SOCKETS" {
		t.Errorf("refusal data = %s (%v), want a Flutter-shaped {request,reason,code}", m.Data, err)
	}
	// A refused socket took no slot: still refused, not admitted.
	dialRefused(t, s)

	// Another address on loopback is not counted with 127.0.0.1.
	other := dialFrom(t, s, "127.0.0.2")
	other.expectQuiet()

	// The client closes one: its slot frees.
	if err := idle.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("idle: close: %v", err)
	}
	next := dialWhenFree(t, s, "next")
	next.expectQuiet()
	dialRefused(t, s)

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

// dialRefused opens /ws and expects the socket cap's refusal: error TOO_MANY_SOCKETS with a
// text, then close 1013.
func dialRefused(t *testing.T, s *stack) serverMsg {
	t.Helper()
	w := dialWS(t, s, "over the cap", nil)
	m := w.expectError("", "TOO_MANY_SOCKETS")
	if m.Error == "" {
		t.Errorf("refusal without a text: %s", m.raw)
	}
	w.expectClose(websocket.StatusTryAgainLater)
	return m
}

// dialWhenFree dials until the server has released a slot (the release follows the close
// handshake by a moment), bounded by wsTimeout. A ping tells an admitted socket (pong) from a
// refused one (the refusal comes first).
func dialWhenFree(t *testing.T, s *stack, name string) *wsClient {
	t.Helper()
	deadline := time.Now().Add(wsTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		c, _, err := websocket.Dial(ctx, wsURL(s), nil)
		cancel()
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		w := &wsClient{t: t, name: name, c: c}
		w.send(`{"type":"ping"}`)
		m := w.recv()
		if m.Type == "pong" {
			t.Cleanup(func() { _ = c.CloseNow() })
			return w
		}
		_ = c.CloseNow()
		if m.Code != "TOO_MANY_SOCKETS" || time.Now().After(deadline) {
			t.Fatalf("%s: after a socket closed, got %s", name, m.raw)
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
	return testmetrics.Int64(t, reader)["tuturu.gateway.rejections"]["reason="+reason]
}
