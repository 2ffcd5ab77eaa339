package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testproc"
)

// Jaeger v1.75.0 (tools/jaeger/go.mod) as the trace backend of `tuturu all`: what the services
// export is read back through Jaeger's query API, as an operator would search it.

// jaegerOptIn is set by `make test-traces`: Jaeger's first build takes minutes, too long for
// `make test`.
const jaegerOptIn = "TUTURU_JAEGER"

// jaegerConfig is the collector configuration of the jaeger binary (v2): OTLP/HTTP in, memory
// storage, the query API; nothing else listens (no metrics endpoint, no sampling server).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: %q
    grpc:
      endpoint: %q
receivers:
  otlp:
    protocols:
      http:
        endpoint: %q
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaeger is a running Jaeger.
type jaeger struct {
	otlpURL  string // OTLP/HTTP receiver, for OTEL_EXPORTER_OTLP_ENDPOINT
	queryURL string // the query API and UI
	client   *http.Client
}

// startJaeger builds the pinned Jaeger (minutes the first time) and runs it on loopback ports
// until the test ends.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := testproc.GoTool(ctx, "../tools/jaeger/go.mod", "jaeger")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("jaeger built (or found in the build cache) in %v", time.Since(start).Round(time.Millisecond))

	otlp, query, queryGRPC := testnet.FreeAddr(t), testnet.FreeAddr(t), testnet.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, query, queryGRPC, otlp), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	// A bare environment: no OTEL_* or proxy of the developer's reaches it.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	logs := newLogBook()
	out := logs.writer("jaeger")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})

	ready := time.Now()
	j := &jaeger{otlpURL: "http://" + otlp, queryURL: "http://" + query, client: &http.Client{Timeout: 5 * time.Second}}
	// The collector logs this once every receiver and extension has started.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logs.text("jaeger"), "Everything is ready") {
		select {
		case err := <-exited:
			t.Fatalf("jaeger exited before it was ready (%v):\n%s", err, logs.text("jaeger"))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not ready within a minute:\n%s", logs.text("jaeger"))
		}
	}
	t.Logf("jaeger ready in %v", time.Since(ready).Round(time.Millisecond))
	return j
}

// jaegerTrace is a trace as the query API (/api/traces) returns it.
type jaegerTrace struct {
	TraceID   string
	Spans     []jaegerSpan
	Processes map[string]struct{ ServiceName string }
}

type jaegerSpan struct {
	TraceID, SpanID, OperationName, ProcessID string
	// The parent is the first CHILD_OF reference; span links are FOLLOWS_FROM references.
	References []struct{ RefType, TraceID, SpanID string }
	Tags       []struct {
		Key   string
		Value any
	}
}

func (s jaegerSpan) tag(key string) string {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID {
			return r.SpanID
		}
	}
	return ""
}

func (s jaegerSpan) links() []jaegerSpanRef {
	var out []jaegerSpanRef
	for _, r := range s.References {
		if r.RefType == "FOLLOWS_FROM" {
			out = append(out, jaegerSpanRef{r.TraceID, r.SpanID})
		}
	}
	return out
}

type jaegerSpanRef struct{ traceID, spanID string }

func (tr jaegerTrace) service(s jaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }

// spans returns the spans of service named name ("" for any name).
func (tr jaegerTrace) spans(service, name string) []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if tr.service(s) == service && (name == "" || s.OperationName == name) {
			out = append(out, s)
		}
	}
	return out
}

// under reports whether s descends from the span ancestor, following parent references.
func (tr jaegerTrace) under(s jaegerSpan, ancestor string) bool {
	byID := map[string]jaegerSpan{}
	for _, sp := range tr.Spans {
		byID[sp.SpanID] = sp
	}
	for range 64 { // a trace is never this deep; the bound guards against a cycle
		p := s.parent()
		if p == ancestor {
			return true
		}
		next, ok := byID[p]
		if !ok {
			return false
		}
		s = next
	}
	return false
}

// names lists the service/operation of spans, for messages.
func (tr jaegerTrace) names(spans []jaegerSpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, tr.service(s)+"/"+s.OperationName)
	}
	return out
}

// get reads one query API answer.
func (j *jaeger) get(path string, q url.Values) ([]jaegerTrace, error) {
	u := j.queryURL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	res, err := j.client.Get(u)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", u, res.StatusCode, b)
	}
	var body struct{ Data []jaegerTrace }
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return body.Data, nil
}

// search finds the traces with a span of service, named operation ("" for any) and carrying
// tags (nil for none), in the last hour.
func (j *jaeger) search(service, operation string, tags map[string]string) ([]jaegerTrace, error) {
	q := url.Values{"service": {service}, "lookback": {"1h"}, "limit": {"100"}}
	if operation != "" {
		q.Set("operation", operation)
	}
	if tags != nil {
		b, err := json.Marshal(tags)
		if err != nil {
			return nil, fmt.Errorf("tags %v: %w", tags, err)
		}
		q.Set("tags", string(b))
	}
	return j.get("/api/traces", q)
}

// trace reads one trace by id.
func (j *jaeger) trace(id string) (jaegerTrace, error) {
	trs, err := j.get("/api/traces/"+id, nil)
	if err != nil {
		return jaegerTrace{}, err
	}
	if len(trs) != 1 {
		return jaegerTrace{}, fmt.Errorf("trace %s: %d traces in the answer", id, len(trs))
	}
	return trs[0], nil
}

// await runs check until it passes: spans reach Jaeger when each service's batcher exports, so
// a trace fills up over a few hundred milliseconds. It fails the test with check's last error.
func await(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startAllExporting runs `tuturu all` exporting its traces to otlpURL.
func startAllExporting(t *testing.T, otlpURL string) *stack {
	t.Helper()
	env, _ := testproc.AllEnv(t)
	p := testproc.StartAll(t, tuturuBinary(t), append(env,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+otlpURL,
		"OTEL_METRICS_EXPORTER=none",  // this Jaeger takes traces only
		"OTEL_BSP_SCHEDULE_DELAY=100", // ms: export within the test's waits, not every 5 s
	))
	return &stack{GatewayURL: "http://" + p.Addr}
}

// TestJaegerTraces: `tuturu all` exporting to a real Jaeger. A call (two members join a PIN and
// exchange an offer and an answer) is found in Jaeger's query API as one trace per join, in
// which roomsvc's spans descend from the gateway's `signal join-pin`, and credsvc's too or,
// for a join that took pooled credentials, under the span the pool refill it links to ran
// under; the offer is one trace from the sender's gateway to the delivery at the receiver's.
// A third member refused with ROOM_FULL is found by the support code of its error frame alone.
func TestJaegerTraces(t *testing.T) {
	t.Parallel()
	if os.Getenv(jaegerOptIn) != "1" {
		t.Skip("needs " + jaegerOptIn + "=1 and a Jaeger build (minutes the first time): run it with `make test-traces`")
	}
	j := startJaeger(t)
	s := startAllExporting(t, j.otlpURL)

	pin := nextPIN()
	a, b := joinedPair(t, s, pin)
	offer := `{"type":"offer","sdp":"v=0\r\n"}`
	a.send(`{"type":"offer","data":` + offer + `}`)
	b.expect("offer")
	b.send(`{"type":"answer","data":{"type":"answer","sdp":"v=0\r\n"}}`)
	a.expect("answer")

	c := dialWS(t, s, "c", nil)
	c.send(`{"type":"join-pin","pin":"` + pin + `"}`)
	refused := c.expectError("", "ROOM_FULL")
	c.expectClose(websocket.StatusPolicyViolation)
	if len(refused.SupportCode) != 8 {
		t.Fatalf("ROOM_FULL frame without a support code: %s", refused.raw)
	}

	// Each successful join: its own trace, with roomsvc beneath the gateway's span.
	const within = 30 * time.Second
	var joins []jaegerTrace
	await(t, within, "two join traces in Jaeger", func() error {
		trs, err := j.search("gateway", "signal join-pin", nil)
		if err != nil {
			return err
		}
		joins = joins[:0]
		for _, tr := range trs {
			for _, sp := range tr.spans("gateway", "signal join-pin") {
				if sp.tag("tuturu.outcome") == "ok" {
					joins = append(joins, tr)
				}
			}
		}
		if len(joins) != 2 {
			return fmt.Errorf("%d traces with a successful signal join-pin, want 2", len(joins))
		}
		if joins[0].TraceID == joins[1].TraceID {
			return fmt.Errorf("both joins are in trace %s; each user action must be its own trace", joins[0].TraceID)
		}
		return nil
	})
	for _, join := range joins {
		await(t, within, "join trace "+join.TraceID, func() error { return j.checkJoin(t, join.TraceID) })
	}

	// The offer: the sender's gateway span, roomsvc's relay and the delivery to the receiver.
	await(t, within, "the offer's trace", func() error {
		trs, err := j.search("gateway", "signal offer", nil)
		if err != nil {
			return err
		}
		if len(trs) != 1 {
			return fmt.Errorf("%d traces with signal offer, want 1", len(trs))
		}
		tr := trs[0]
		sent := tr.spans("gateway", "signal offer")[0]
		room, delivered := tr.spans("roomsvc", ""), tr.spans("gateway", "deliver offer")
		if len(room) == 0 || len(delivered) != 1 || !tr.under(delivered[0], sent.SpanID) {
			return fmt.Errorf("offer trace %s: %v, want roomsvc spans and `deliver offer` under `signal offer`", tr.TraceID, tr.names(tr.Spans))
		}
		return nil
	})

	// The refused join, by its support code alone: what an operator types into the search.
	await(t, within, "the trace of support code "+refused.SupportCode, func() error {
		trs, err := j.search("gateway", "", map[string]string{"support.code": refused.SupportCode})
		if err != nil {
			return err
		}
		if len(trs) != 1 {
			return fmt.Errorf("%d traces tagged support.code=%s, want 1", len(trs), refused.SupportCode)
		}
		tr := trs[0]
		spans := tr.spans("gateway", "signal join-pin")
		if len(spans) != 1 || spans[0].tag("support.code") != refused.SupportCode ||
			spans[0].tag("tuturu.error.code") != "ROOM_FULL" || spans[0].tag("tuturu.outcome") != "room_full" {
			return fmt.Errorf("trace %s: %v, want one signal join-pin with support.code, tuturu.error.code=ROOM_FULL and tuturu.outcome=room_full", tr.TraceID, spans)
		}
		for _, join := range joins {
			if join.TraceID == tr.TraceID {
				return fmt.Errorf("the refused join shares trace %s with a successful one", tr.TraceID)
			}
		}
		var room []jaegerSpan
		for _, sp := range tr.spans("roomsvc", "") {
			if tr.under(sp, spans[0].SpanID) {
				room = append(room, sp)
			}
		}
		if len(room) == 0 {
			return fmt.Errorf("trace %s: %v, want roomsvc's refusal under signal join-pin", tr.TraceID, tr.names(tr.Spans))
		}
		return nil
	})
}

// checkJoin checks the trace of a successful join: roomsvc's spans descend from the gateway's
// `signal join-pin`, and credsvc's either do too or, when the enter took pooled credentials,
// descend from the span its link names (the refill's, in another trace).
func (j *jaeger) checkJoin(t *testing.T, traceID string) error {
	tr, err := j.trace(traceID)
	if err != nil {
		return err
	}
	gw := tr.spans("gateway", "signal join-pin")
	if len(gw) != 1 {
		return fmt.Errorf("%d signal join-pin spans in trace %s", len(gw), traceID)
	}
	join := gw[0]
	var room, creds, pooled []string
	var refills []jaegerSpanRef
	for _, sp := range tr.spans("roomsvc", "") {
		if !tr.under(sp, join.SpanID) {
			continue
		}
		room = append(room, sp.OperationName)
		if sp.tag("tuturu.credentials") == "pooled" {
			pooled = append(pooled, sp.OperationName)
			refills = append(refills, sp.links()...)
		}
	}
	for _, sp := range tr.spans("credsvc", "") {
		if tr.under(sp, join.SpanID) {
			creds = append(creds, sp.OperationName)
		}
	}
	if len(room) == 0 {
		return fmt.Errorf("trace %s: no roomsvc span under signal join-pin: %v", traceID, tr.names(tr.Spans))
	}
	if len(pooled) > 0 && len(refills) == 0 {
		return fmt.Errorf("trace %s: %v took pooled credentials but links to no refill", traceID, pooled)
	}
	for _, r := range refills {
		refill, err := j.trace(r.traceID)
		if err != nil {
			return fmt.Errorf("the refill trace %s that join trace %s links to: %w", r.traceID, traceID, err)
		}
		for _, sp := range refill.spans("credsvc", "") {
			if refill.under(sp, r.spanID) {
				creds = append(creds, "(pool refill) "+sp.OperationName)
			}
		}
	}
	if len(creds) == 0 {
		return fmt.Errorf("trace %s: no credsvc span under the join or under a refill it links to (roomsvc %v, links %v)", traceID, room, refills)
	}
	t.Logf("join trace %s: roomsvc %v, credsvc %v", traceID, room, creds)
	return nil
}
