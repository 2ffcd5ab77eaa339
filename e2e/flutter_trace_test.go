package e2e

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestFlutterMessageTraced: Flutter frames get the same spans as browser messages: `signal
// new`, and an offer carrying a traceparent is one trace from `signal offer` through roomsvc
// to `deliver offer` at the receiver; no span attribute carries the SDP.
func TestFlutterMessageTraced(t *testing.T) {
	t.Parallel()
	spans := &spanLog{recs: map[string]*tracetest.SpanRecorder{}}
	s := startStack(t, stackOptions{Telemetry: spans.telemetry})
	a := dialFlutter(t, s, "ta")
	a.expectPeers("ta")
	b := dialFlutter(t, s, "tb")
	b.expectPeers("ta", "tb")
	a.expectPeers("ta", "tb")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	a.send(`{"type":"offer","data":{"to":"tb","from":"ta","description":{"type":"offer","sdp":"v=0 SECRET-SDP"}},"traceparent":"00-` + traceID + `-00f067aa0ba902b7-01"}`)
	b.expect("offer")

	want := map[string]bool{"signal new": false, "signal offer": false, "deliver offer": false, "deliver peers": false}
	deadline := time.Now().Add(wsTimeout)
	for time.Now().Before(deadline) {
		for _, sp := range spans.ended("gateway") {
			if _, ok := want[sp.Name()]; ok && (sp.Name() == "signal new" || sp.Name() == "deliver peers" || sp.SpanContext().TraceID().String() == traceID) {
				want[sp.Name()] = true
			}
			for _, kv := range sp.Attributes() {
				if strings.Contains(kv.Value.Emit(), "SECRET-SDP") {
					t.Fatalf("span %s carries the SDP in %s", sp.Name(), kv.Key)
				}
			}
		}
		all := true
		for _, seen := range want {
			all = all && seen
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("no gateway span %q (in the client's trace where it applies)", name)
		}
	}
	var inTrace bool
	for _, sp := range spans.ended("roomsvc") {
		inTrace = inTrace || sp.SpanContext().TraceID().String() == traceID
	}
	if !inTrace {
		t.Error("roomsvc recorded no span in the client's trace")
	}
}
