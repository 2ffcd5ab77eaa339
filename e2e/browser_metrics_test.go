package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testmetrics"
)

// TestGatewayMetrics: connections, messages by type and rejections by reason are counted
// under the names of docs/observability.md, with no PIN or address among the labels.
func TestGatewayMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	s := startStack(t, stackOptions{
		Gateway: func(c *gateway.Config) { c.Limits.MaxMessageBytes = 1024 },
		Telemetry: func(service string) platform.Telemetry {
			if service != "gateway" {
				return platform.Telemetry{}
			}
			return platform.Telemetry{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}
		},
	})
	pin := nextPIN()
	a := dialWS(t, s, "a", nil)
	a.join(pin)
	a.send(`{"type":"ping"}`)
	a.expect("pong")
	bad := dialWS(t, s, "bad", nil)
	bad.send(`{"type":"nope"}`)
	bad.expectError("", "INVALID_MESSAGE")
	bad.expectClose(websocket.StatusPolicyViolation)
	big := dialWS(t, s, "big", nil)
	big.send(`{"type":"ping","pad":"` + strings.Repeat("x", 2000) + `"}`)
	big.expectError("", "MESSAGE_TOO_BIG")
	big.expectClose(websocket.StatusMessageTooBig)
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if _, res, err := websocket.Dial(ctx, wsURL(s), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}); err == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin admitted: %v", err)
	}

	sums := map[string]map[string]int64{} // metric -> label set -> value
	deadline := time.Now().Add(wsTimeout)
	for time.Now().Before(deadline) {
		sums = testmetrics.Int64(t, reader)
		if sums["tuturu.gateway.rejections"]["reason=size"] == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]map[string]int64{
		"tuturu.gateway.rejections": {"reason=origin": 1, "reason=invalid": 1, "reason=size": 1},
		"tuturu.gateway.messages":   {"type=join-pin": 1, "type=ping": 1},
	}
	for name, byLabel := range want {
		for l, v := range byLabel {
			if got := sums[name][l]; got != v {
				t.Errorf("%s{%s} = %d, want %d (all: %v)", name, l, got, v, sums[name])
			}
		}
	}
	if got := sums["tuturu.gateway.connections"]["dialect=browser"]; got < 1 {
		t.Errorf("tuturu.gateway.connections{dialect=browser} = %d with a socket open", got)
	}
	for name, byLabel := range sums {
		for l := range byLabel {
			if l != "" && !allowedLabel(l) {
				t.Errorf("%s has label set %q", name, l)
			}
		}
	}
}

// allowedLabel accepts the gateway's label keys, and none that could carry a PIN or address.
func allowedLabel(l string) bool {
	for _, prefix := range []string{"reason=", "type=", "dialect="} {
		if len(l) > len(prefix) && l[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}
