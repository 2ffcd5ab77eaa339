package gateway

import (
	"context"
	"crypto/rand"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Support codes (docs/operations.md): every error frame carries a short code the user can read
// out, and the span of the action that failed carries it as support.code, so an operator
// finds the trace (and the log line) from what the user says.

// attrSupportCode is deliberately outside the tuturu.* namespace: it is what an operator
// types into a trace search, and the same key the web client documents.
const attrSupportCode = attribute.Key("support.code")

// supportAlphabet has 32 symbols and none of 0/O or 1/I, so a code read over the phone or
// copied by hand cannot be mistaken. web/static/js/trace.js has the same alphabet.
const supportAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// supportCodeLen symbols of 5 bits: 40 bits of the trace id, unique enough to pick one trace
// among a service's within the search window, short enough to read out.
const supportCodeLen = 8

// supportCodeOf is the support code of a trace: its first 40 bits in supportAlphabet. The
// client computes the same code from the trace id it sent, for failures it detects itself.
func supportCodeOf(id trace.TraceID) string {
	var v uint64
	for _, b := range id[:5] {
		v = v<<8 | uint64(b)
	}
	out := make([]byte, supportCodeLen)
	for i := supportCodeLen - 1; i >= 0; i-- {
		out[i] = supportAlphabet[v&31]
		v >>= 5
	}
	return string(out)
}

// randomSupportCode is the code of an error that no trace records (tracing is off): only the
// log line carries it.
func randomSupportCode() string {
	var id trace.TraceID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return supportCodeOf(id)
}

// markSupport records an error's support code on the span of the action in ctx, or on a span
// of its own when the error belongs to no action (a limit broken between messages, a timer,
// a refused upgrade), logs it at level and returns it. The log line carries the machine code
// only: the error's text may hold the PIN.
func (g *Gateway) markSupport(ctx context.Context, level slog.Level, code, participant string) string {
	span := trace.SpanFromContext(ctx)
	if !span.SpanContext().IsValid() {
		var own trace.Span
		ctx, own = g.instruments.tracer.Start(ctx, "gateway error", trace.WithSpanKind(trace.SpanKindServer))
		defer own.End()
		span = own
	}
	sc := randomSupportCode()
	if span.SpanContext().IsValid() {
		sc = supportCodeOf(span.SpanContext().TraceID())
		span.SetAttributes(attrSupportCode.String(sc), attrErrorCode.String(code))
	}
	g.cfg.Logger().Log(ctx, level, "error sent to the client", "code", code, "support_code", sc, "participant", participant)
	return sc
}

// writeError writes e, with its support code, in the dialect d (the join timer passes the one
// it read under joinMu).
func (s *session) writeError(ctx context.Context, level slog.Level, d dialect, e wireError) {
	e.SupportCode = s.g.markSupport(ctx, level, e.Code, s.participant)
	s.write(d.errorFrame(e))
}

// sendError writes an error that leaves the socket open. It is logged at debug: a client can
// repeat it at its message rate, and its span carries the code anyway. An error that closes
// the socket (fail, refuse) happens once a socket and is logged at info.
func (s *session) sendError(ctx context.Context, e wireError) {
	s.writeError(ctx, slog.LevelDebug, s.dialect, e)
}

// tagClientTrace puts the support code of a client's trace on the span of its action, so a
// failure the client detects later (it shows the code of the trace it sent) finds that span.
func tagClientTrace(span trace.Span, traceparent string) {
	if traceparent != "" && span.SpanContext().IsValid() {
		span.SetAttributes(attrSupportCode.String(supportCodeOf(span.SpanContext().TraceID())))
	}
}
