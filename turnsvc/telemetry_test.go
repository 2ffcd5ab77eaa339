package turnsvc

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testmetrics"
	"github.com/tuturu/tuturu/internal/testnet"
)

// TestTelemetry: a credential check that asks credsvc is the span `turn auth` (cache hits are
// not traced), and the metrics of docs/observability.md carry the counts, with no username or
// address as a label.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	cfg := testConfig(t, url)
	cfg.Telemetry = platform.Telemetry{
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		Meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}
	s, _ := startTurn(t, cfg)
	u, p := cred.issue("traced", time.Hour)
	relay, err := turnClient(t, "udp", s, u, p).Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if err := testnet.RelayRoundTrip(relay, testnet.UDPEchoPeer(t).LocalAddr(), "metered", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := turnClient(t, "udp", s, u, p).Allocate(); err != nil { // cached
		t.Fatalf("second Allocate: %v", err)
	}
	var auth []sdktrace.ReadOnlySpan
	for _, sp := range spans.Ended() {
		if sp.Name() == "turn auth" {
			auth = append(auth, sp)
		}
	}
	if len(auth) != 1 {
		t.Fatalf("%d `turn auth` spans, want 1 (the cached check is not traced)", len(auth))
	}
	if !hasAttr(auth[0].Attributes(), "tuturu.outcome", "valid") || !hasAttr(auth[0].Attributes(), "tuturu.participant.id", "traced") {
		t.Errorf("turn auth attributes = %v", auth[0].Attributes())
	}
	for _, a := range auth[0].Attributes() {
		if a.Value.Emit() == u {
			t.Errorf("the username is a span attribute: %v", a)
		}
	}

	got := testmetrics.Int64(t, reader)
	for name, byLabels := range got {
		for labels := range byLabels {
			for _, kv := range strings.Split(labels, ",") {
				if k, _, _ := strings.Cut(kv, "="); kv != "" && k != "result" && k != "reason" && k != "direction" {
					t.Errorf("%s has label %q", name, k)
				}
			}
		}
	}
	want := map[string]string{
		"tuturu.turn.auth":                "result=valid",
		"tuturu.turn.allocations":         "",
		"tuturu.turn.allocations.created": "",
		"tuturu.turn.relayed.bytes":       "direction=to_client",
		"tuturu.turn.relayed.packets":     "direction=from_client",
		"tuturu.turn.peers.denied":        "",
		"tuturu.turn.credsvc.connected":   "",
	}
	for name, labels := range want {
		if _, ok := got[name][labels]; !ok {
			t.Errorf("metric %s{%s} missing; got %v", name, labels, got[name])
		}
	}
	if got["tuturu.turn.auth"]["result=cached"] < 1 || got["tuturu.turn.allocations"][""] != 2 {
		t.Errorf("auth = %v, allocations = %v", got["tuturu.turn.auth"], got["tuturu.turn.allocations"])
	}
}

func hasAttr(attrs []attribute.KeyValue, key, value string) bool {
	for _, a := range attrs {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}
