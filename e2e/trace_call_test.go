package e2e

import (
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/internal/platform"
)

// spanLog records every service's spans in memory.
type spanLog struct {
	mu   sync.Mutex
	recs map[string]*tracetest.SpanRecorder
}

func (l *spanLog) telemetry(service string) platform.Telemetry {
	rec := tracetest.NewSpanRecorder()
	l.mu.Lock()
	l.recs[service] = rec
	l.mu.Unlock()
	return platform.Telemetry{
		Tracer:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)),
		Propagator: propagation.TraceContext{},
	}
}

// ended returns the ended spans of one service.
func (l *spanLog) ended(service string) []sdktrace.ReadOnlySpan {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recs[service].Ended()
}

// under reports whether span descends from ancestor, following parent links across services.
func (l *spanLog) under(span sdktrace.ReadOnlySpan, ancestor trace.SpanID) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, service := range []string{"gateway", "roomsvc", "credsvc", "turnsvc"} {
		for _, sp := range l.ended(service) {
			byID[sp.SpanContext().SpanID()] = sp
		}
	}
	for range 64 { // a trace is never this deep; the bound guards against a cycle
		parent := span.Parent().SpanID()
		if parent == ancestor {
			return true
		}
		next, ok := byID[parent]
		if !ok {
			return false
		}
		span = next
	}
	return false
}

// TestCallTraces: a relayed call through every service yields, for each join, one trace in
// which roomsvc's and credsvc's spans descend from the gateway's `signal join-pin` span; and the
// TURN credential checks are traced under turnsvc (`turn auth`), with credsvc's Validate
// beneath them.
func TestCallTraces(t *testing.T) {
	t.Parallel()
	spans := &spanLog{recs: map[string]*tracetest.SpanRecorder{}}
	s := startStack(t, stackOptions{
		Telemetry: spans.telemetry,
		Gateway:   func(c *gateway.Config) { c.ForceRelay = true },
	})
	pin := nextPIN()
	a := newCallPeer(t, s, "a", pin)
	b := newCallPeer(t, s, "b", pin)
	a.waitConnected(connectTimeout)
	b.waitConnected(connectTimeout)

	// Spans end asynchronously (a stream's server span, the batcher): wait, bounded.
	var joins []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		joins = joins[:0]
		for _, sp := range spans.ended("gateway") {
			if sp.Name() == "signal join-pin" {
				joins = append(joins, sp)
			}
		}
		if len(joins) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(joins) != 2 {
		t.Fatalf("%d `signal join-pin` spans in the gateway, want 2", len(joins))
	}
	if joins[0].SpanContext().TraceID() == joins[1].SpanContext().TraceID() {
		t.Fatal("two joins share one trace; each user action must be its own trace")
	}
	// roomsvc's spans descend from each join. So do credsvc's when the join's credentials were
	// issued for it; an enter that took pooled credentials links to the pool refill instead,
	// and credsvc's spans descend from that.
	for _, join := range joins {
		var found []string
		var refills []trace.SpanContext
		for _, sp := range spans.ended("roomsvc") {
			if sp.SpanContext().TraceID() == join.SpanContext().TraceID() && spans.under(sp, join.SpanContext().SpanID()) {
				found = append(found, sp.Name())
				for _, l := range sp.Links() {
					refills = append(refills, l.SpanContext)
				}
			}
		}
		if len(found) == 0 {
			t.Errorf("join trace %s: no roomsvc span descends from the gateway's signal join-pin", join.SpanContext().TraceID())
		}
		var creds []string
		for _, sp := range spans.ended("credsvc") {
			if sp.SpanContext().TraceID() == join.SpanContext().TraceID() && spans.under(sp, join.SpanContext().SpanID()) {
				creds = append(creds, sp.Name())
			}
			for _, r := range refills {
				if sp.SpanContext().TraceID() == r.TraceID() && spans.under(sp, r.SpanID()) {
					creds = append(creds, "(pool refill) "+sp.Name())
				}
			}
		}
		if len(creds) == 0 {
			t.Errorf("join trace %s: no credsvc span under the join or under a pool refill it links to", join.SpanContext().TraceID())
		}
		t.Logf("join trace %s: roomsvc %v, credsvc %v", join.SpanContext().TraceID(), found, creds)
	}

	var auths int
	for _, auth := range spans.ended("turnsvc") {
		if auth.Name() != "turn auth" {
			continue
		}
		auths++
		var validate bool
		for _, sp := range spans.ended("credsvc") {
			if sp.SpanContext().TraceID() == auth.SpanContext().TraceID() && spans.under(sp, auth.SpanContext().SpanID()) {
				validate = true
			}
		}
		if !validate {
			t.Errorf("turn auth span %s has no credsvc span beneath it (the Validate call)", auth.SpanContext().SpanID())
		}
	}
	if auths == 0 {
		t.Fatal("a relayed call produced no `turn auth` span in turnsvc")
	}
}
