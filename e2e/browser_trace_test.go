package e2e

import (
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestBrowserMessageTraced: an offer that carries the browser's traceparent is one trace from
// the sender's gateway span (`signal offer`) through roomsvc to the delivery at the receiver
// (`deliver offer`), and no span carries the PIN.
func TestBrowserMessageTraced(t *testing.T) {
	t.Parallel()
	spans := &spanLog{recs: map[string]*tracetest.SpanRecorder{}}
	s := startStack(t, stackOptions{Telemetry: spans.telemetry})
	pin := nextPIN()
	a, b := joinedPair(t, s, pin)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	a.send(`{"type":"offer","data":{"type":"offer","sdp":"v=0"},"traceparent":"00-` + traceID + `-00f067aa0ba902b7-01"}`)
	b.expect("offer")

	find := func(service, name string) sdktrace.ReadOnlySpan {
		deadline := time.Now().Add(wsTimeout)
		for time.Now().Before(deadline) {
			for _, sp := range spans.ended(service) {
				if sp.Name() == name && sp.SpanContext().TraceID().String() == traceID {
					return sp
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: no span %q in the browser's trace", service, name)
		return nil
	}
	signal := find("gateway", "signal offer")
	if signal.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("signal offer's parent is %s, want the browser's span", signal.Parent().SpanID())
	}
	deliver := find("gateway", "deliver offer")
	if deliver.SpanContext().SpanID() == signal.SpanContext().SpanID() {
		t.Fatal("deliver and signal are one span")
	}
	var inTrace int
	for _, sp := range spans.ended("roomsvc") {
		if sp.SpanContext().TraceID().String() == traceID {
			inTrace++
		}
	}
	if inTrace == 0 {
		t.Fatal("roomsvc recorded no span in the browser's trace")
	}
	attrs := map[string]string{}
	for _, kv := range signal.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["tuturu.message.type"] != "offer" || attrs["tuturu.participant.id"] == "" || attrs["tuturu.room.id"] == "" {
		t.Fatalf("signal offer attributes: %v", attrs)
	}
	for _, service := range []string{"gateway", "roomsvc", "credsvc"} {
		for _, sp := range spans.ended(service) {
			for _, kv := range sp.Attributes() {
				if strings.Contains(kv.Value.Emit(), pin) {
					t.Fatalf("%s span %q attribute %s carries the PIN", service, sp.Name(), kv.Key)
				}
			}
		}
	}
}
