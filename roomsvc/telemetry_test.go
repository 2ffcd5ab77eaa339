package roomsvc

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

func TestTracesAndMetrics(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	ts := startService(t, func(c *Config) {
		c.Telemetry = platform.Telemetry{
			Tracer:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
			Meter:      sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
			Propagator: propagation.TraceContext{},
		}
	})
	a, _ := ts.join(t, nil, enterPIN("909090"))
	b, _ := ts.join(t, nil, enterPIN("909090"))
	a.next()

	// The gateway's span for the offer.
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	offer := signal("offer", `{"sdp":"secret sdp"}`, "")
	offer.TraceContext = map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"}
	a.send(offer)
	ev := b.next()
	tp := ev.GetTraceContext()["traceparent"]
	if !strings.Contains(tp, traceID) || strings.Contains(tp, parentID) {
		t.Fatalf("delivered offer carries traceparent %q, want trace %s under roomsvc's span", tp, traceID)
	}
	b.send(signal("answer", "a", ""))
	a.next()
	b.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
	b.ended()
	a.next() // peer_left

	var offerSpan sdktrace.ReadOnlySpan
	names := map[string]bool{}
	for _, s := range spans.Ended() {
		names[s.Name()] = true
		if s.Name() == "room signal offer" {
			offerSpan = s
		}
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "909090") || strings.Contains(kv.Value.Emit(), "secret sdp") {
				t.Errorf("span %q attribute %s leaks a PIN or SDP", s.Name(), kv.Key)
			}
		}
	}
	for _, want := range []string{"room enter", "room signal offer", "room signal answer", "room leave"} {
		if !names[want] {
			t.Errorf("no span %q; got %v", want, names)
		}
	}
	if offerSpan == nil {
		t.FailNow()
	}
	if offerSpan.Parent().SpanID().String() != parentID || offerSpan.SpanContext().TraceID().String() != traceID {
		t.Fatalf("offer span parent %v, want the gateway's span", offerSpan.Parent())
	}
	if !strings.Contains(tp, offerSpan.SpanContext().SpanID().String()) {
		t.Fatalf("delivered event's parent %q is not the offer span %s", tp, offerSpan.SpanContext().SpanID())
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	for _, name := range []string{"tuturu.rooms", "tuturu.room.members", "tuturu.room.joins", "tuturu.room.departures", "tuturu.call.setup.duration"} {
		if got[name] == nil {
			t.Errorf("metric %s not recorded; got %v", name, got)
		}
	}
	if h, ok := got["tuturu.call.setup.duration"].(metricdata.Histogram[float64]); !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 {
		t.Errorf("call set-up duration = %v, want one observation", got["tuturu.call.setup.duration"])
	}
	a.send(leave(roomv1.LeaveReason_LEAVE_REASON_HUNG_UP))
	a.ended()
}
