package platform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// logLines decodes the JSON lines NewLogger wrote.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestLoggerAddsTraceAndSpanIDInsideASpan(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo)

	ctx, span := tp.Tracer("test").Start(context.Background(), "signal offer")
	sc := span.SpanContext()
	log.InfoContext(ctx, "inside")
	log.With("service", "gateway").InfoContext(ctx, "with attrs")
	log.DebugContext(ctx, "below the level")
	span.End()
	log.InfoContext(context.Background(), "outside")
	log.Info("no context")

	lines := logLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4 (debug filtered out): %v", len(lines), lines)
	}
	for _, l := range lines[:2] {
		if l["trace_id"] != sc.TraceID().String() || l["span_id"] != sc.SpanID().String() {
			t.Errorf("%q: trace_id=%v span_id=%v, want %s %s", l["msg"], l["trace_id"], l["span_id"], sc.TraceID(), sc.SpanID())
		}
	}
	if lines[1]["service"] != "gateway" {
		t.Errorf("With attributes lost: %v", lines[1])
	}
	for _, l := range lines[2:] {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("%q outside a span has trace_id %v", l["msg"], l["trace_id"])
		}
	}
}
