package e2e

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tuturu/tuturu/gateway"
)

// logBook keeps every service's log lines, for tests that look for what a service logged.
type logBook struct {
	mu    sync.Mutex
	lines map[string]*bytes.Buffer
}

func newLogBook() *logBook { return &logBook{lines: map[string]*bytes.Buffer{}} }

// writer is a stackOptions.Logs.
func (l *logBook) writer(service string) io.Writer {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines[service] = &bytes.Buffer{}
	return logWriter{l, service}
}

type logWriter struct {
	l       *logBook
	service string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.l.lines[w.service].Write(p)
}

// text is what service has logged so far.
func (l *logBook) text(service string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.lines[service]; b != nil {
		return b.String()
	}
	return ""
}

// waitLine waits (bounded) for a line of service's log that contains every one of parts, and
// returns it.
func (l *logBook) waitLine(t *testing.T, service string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(wsTimeout)
	for {
		for _, line := range strings.Split(l.text(service), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no line with %q:\n%s", service, parts, l.text(service))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spanWithSupportCode waits (bounded) for the gateway span named name that carries code as
// support.code, and returns it with its attributes.
func spanWithSupportCode(t *testing.T, spans *spanLog, name, code string) (sdktrace.ReadOnlySpan, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(wsTimeout)
	for time.Now().Before(deadline) {
		for _, sp := range spans.ended("gateway") {
			attrs := map[string]string{}
			for _, kv := range sp.Attributes() {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
			if sp.Name() == name && attrs["support.code"] == code {
				return sp, attrs
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no gateway span %q with support.code=%s", name, code)
	return nil, nil
}

// TestBrowserErrorSupportCode: every error frame carries a support code, which the span of the
// action that failed carries as support.code and the gateway's log line as support_code. A
// join refused with ROOM_FULL under the browser's traceparent gets the code of that trace (the
// one the client would compute itself), on the `signal join-pin` span; a join and leave that
// went well carry the code of their trace too; an error outside any action (a message over the
// size limit) gets a `gateway error` span of its own. No log line carries the PIN.
func TestBrowserErrorSupportCode(t *testing.T) {
	t.Parallel()
	spans := &spanLog{recs: map[string]*tracetest.SpanRecorder{}}
	logs := newLogBook()
	s := startStack(t, stackOptions{
		Telemetry: spans.telemetry,
		Logs:      logs.writer,
		Gateway:   func(c *gateway.Config) { c.Limits.MaxMessageBytes = 1024 },
	})
	pin := nextPIN()
	joinedPair(t, s, pin)

	// The trace id's first 40 bits, in the support alphabet (web/test/helpers.test.js has the
	// same vector).
	const traceID, wantCode = "4bf92f3577b34da6a3ce929d0e0e4736", "BHWLYFDR"
	c := dialWS(t, s, "c", nil)
	c.send(`{"type":"join-pin","pin":"` + pin + `","traceparent":"00-` + traceID + `-00f067aa0ba902b7-01"}`)
	m := c.expectError("", "ROOM_FULL")
	if m.SupportCode != wantCode {
		t.Fatalf("ROOM_FULL frame: supportCode %q, want %s (from the trace id): %s", m.SupportCode, wantCode, m.raw)
	}
	c.expectClose(websocket.StatusPolicyViolation)
	sp, attrs := spanWithSupportCode(t, spans, "signal join-pin", wantCode)
	if sp.SpanContext().TraceID().String() != traceID || attrs["tuturu.error.code"] != "ROOM_FULL" || attrs["tuturu.outcome"] != "room_full" {
		t.Fatalf("join-pin span: trace %s, attributes %v", sp.SpanContext().TraceID(), attrs)
	}
	line := logs.waitLine(t, "gateway", `"support_code":"`+wantCode+`"`)
	if !strings.Contains(line, `"code":"ROOM_FULL"`) || !strings.Contains(line, `"trace_id":"`+traceID+`"`) {
		t.Fatalf("log line for the refused join: %s", line)
	}

	// A call's own join and leave carry the code of the trace the client sent, so a failure
	// the page detects itself (it shows that code) finds them.
	const callTrace, callCode = "ffffffffff0000000000000000000001", "ZZZZZZZZ"
	tp := `"traceparent":"00-` + callTrace + `-00f067aa0ba902b7-01"`
	e := dialWS(t, s, "e", nil)
	e.send(`{"type":"join-pin","pin":"` + nextPIN() + `",` + tp + `}`)
	e.expect("join-pin")
	e.send(`{"type":"leave",` + tp + `}`)
	for _, name := range []string{"signal join-pin", "signal leave"} {
		if _, attrs := spanWithSupportCode(t, spans, name, callCode); attrs["tuturu.outcome"] != "ok" || attrs["tuturu.error.code"] != "" {
			t.Fatalf("%s of a call that went well: attributes %v", name, attrs)
		}
	}

	// Too big: refused before any action span, so the error has a span of its own.
	d := dialWS(t, s, "d", nil)
	d.send(`{"type":"ping"}` + strings.Repeat(" ", 1024))
	big := d.expectError("", "MESSAGE_TOO_BIG")
	if len(big.SupportCode) != 8 {
		t.Fatalf("MESSAGE_TOO_BIG frame has no support code: %s", big.raw)
	}
	_, attrs = spanWithSupportCode(t, spans, "gateway error", big.SupportCode)
	if attrs["tuturu.error.code"] != "MESSAGE_TOO_BIG" {
		t.Fatalf("gateway error span attributes: %v", attrs)
	}
	logs.waitLine(t, "gateway", `"support_code":"`+big.SupportCode+`"`, `"code":"MESSAGE_TOO_BIG"`)

	// The error's text names the PIN; the log line must not (a bare 6-digit search would also
	// match timestamps).
	if strings.Contains(logs.text("gateway"), "Room "+pin) || strings.Contains(logs.text("gateway"), `"pin"`) {
		t.Fatalf("the gateway logged the PIN:\n%s", logs.text("gateway"))
	}
}

// TestChromiumSupportCode: a third person joining a full room is told so on the PIN screen
// with a support code, and that code finds the refused join: the gateway's `signal join-pin`
// span in the page's own trace carries it as support.code, and the gateway's log line as
// support_code.
func TestChromiumSupportCode(t *testing.T) {
	t.Parallel()
	if !inLoopbackNamespace(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	spans := &spanLog{recs: map[string]*tracetest.SpanRecorder{}}
	logs := newLogBook()
	s := startStack(t, stackOptions{Telemetry: spans.telemetry, Logs: logs.writer})
	pin := nextPIN()
	joinedPair(t, s, pin) // the room is full

	b := startChromium(t, ctx)
	carol := b.openPage("carol", s.GatewayURL+"/?debug=1", 1024, 720, false)
	carol.join(pin)
	carol.waitFor("room full with a support code", `document.getElementById('pin-error').dataset.code === 'ROOM_FULL' && !document.getElementById('pin-support').hidden`, uiTimeout)
	code := carol.attr("pin-support", "data-code")
	if len(code) != 8 || strings.Trim(code, "23456789ABCDEFGHJKLMNPQRSTUVWXYZ") != "" {
		t.Fatalf("support code %q is not 8 symbols of the support alphabet", code)
	}
	if text := carol.text("pin-support"); !strings.Contains(text, "Support code: "+code) {
		t.Fatalf("support line: %q", text)
	}
	carol.screenshot("room-full-support-code")

	sp, attrs := spanWithSupportCode(t, spans, "signal join-pin", code)
	if attrs["tuturu.error.code"] != "ROOM_FULL" {
		t.Fatalf("join-pin span attributes: %v", attrs)
	}
	pageTrace := eval[string](carol, `window.tuturu.state().trace || ''`)
	if !strings.Contains(pageTrace, "-"+sp.SpanContext().TraceID().String()+"-") {
		t.Fatalf("the span with the code is in trace %s, the page's call is %q", sp.SpanContext().TraceID(), pageTrace)
	}
	logs.waitLine(t, "gateway", `"support_code":"`+code+`"`, `"code":"ROOM_FULL"`)
}

// TestChromiumSupportCodeClientFailure: a failure only the page sees (the other member never
// answers, so the page gives up after its negotiation timeout) shows the code of the call's
// trace, and that code finds the call's join and the leave the page sent on failing, both in
// the page's trace.
func TestChromiumSupportCodeClientFailure(t *testing.T) {
	t.Parallel() // mostly waits out the page's 30 s negotiation timeout, in a network namespace of its own
	if !inLoopbackNamespace(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	spans := &spanLog{recs: map[string]*tracetest.SpanRecorder{}}
	s := startStack(t, stackOptions{Telemetry: spans.telemetry})
	pin := nextPIN()
	first := dialWS(t, s, "silent", nil)
	first.join(pin) // and never offers

	b := startChromium(t, ctx)
	p := b.openPage("caller", s.GatewayURL+"/?debug=1", 1024, 720, false)
	p.join(pin)
	p.waitPhase("negotiating", uiTimeout)
	p.waitPhase("error", 45*time.Second) // the page's 30 s negotiation timeout
	if code := p.attr("screen-end", "data-code"); code != "NEGOTIATION_TIMEOUT" {
		t.Fatalf("error %q, want NEGOTIATION_TIMEOUT", code)
	}
	code := p.attr("end-support", "data-code")
	if len(code) != 8 {
		t.Fatalf("no support code on the error screen: %q", p.text("end-support"))
	}
	pageTrace := eval[string](p, `window.tuturu.state().trace || ''`)
	for _, name := range []string{"signal join-pin", "signal leave"} {
		sp, _ := spanWithSupportCode(t, spans, name, code)
		if !strings.Contains(pageTrace, "-"+sp.SpanContext().TraceID().String()+"-") {
			t.Fatalf("%s with the code is in trace %s, the page's call is %q", name, sp.SpanContext().TraceID(), pageTrace)
		}
	}
	p.screenshot("negotiation-timeout-support-code")
}
