package platform

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP collector: it decodes what the exporters send over
// OTLP/HTTP (protobuf) and, when started with grpc, over OTLP/gRPC.
type otlpReceiver struct {
	url string // base URL, as OTEL_EXPORTER_OTLP_ENDPOINT

	mu      sync.Mutex
	traces  []*coltracepb.ExportTraceServiceRequest
	metrics []*colmetricpb.ExportMetricsServiceRequest
	paths   []string
}

func newOTLPHTTPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	handle := func(newReq func() proto.Message, keep func(proto.Message), resp proto.Message) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			body := io.Reader(req.Body)
			if req.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(req.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				body = zr
			}
			b, err := io.ReadAll(io.LimitReader(body, 16<<20))
			msg := newReq()
			if err == nil {
				err = proto.Unmarshal(b, msg)
			}
			if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
				t.Errorf("receiver: bad OTLP request to %s (%s): %v", req.URL.Path, req.Header.Get("Content-Type"), err)
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			r.mu.Lock()
			r.paths = append(r.paths, req.URL.Path)
			keep(msg)
			r.mu.Unlock()
			out, _ := proto.Marshal(resp)
			w.Header().Set("Content-Type", "application/x-protobuf")
			_, _ = w.Write(out)
		}
	}
	traces := handle(func() proto.Message { return &coltracepb.ExportTraceServiceRequest{} },
		func(m proto.Message) { r.traces = append(r.traces, m.(*coltracepb.ExportTraceServiceRequest)) },
		&coltracepb.ExportTraceServiceResponse{})
	metrics := handle(func() proto.Message { return &colmetricpb.ExportMetricsServiceRequest{} },
		func(m proto.Message) { r.metrics = append(r.metrics, m.(*colmetricpb.ExportMetricsServiceRequest)) },
		&colmetricpb.ExportMetricsServiceResponse{})
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", traces)
	mux.Handle("POST /custom/traces", traces)
	mux.Handle("POST /v1/metrics", metrics)
	srv := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// grpcTraceReceiver serves the OTLP/gRPC trace service.
type grpcTraceReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	r *otlpReceiver
}

func (g grpcTraceReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	g.r.traces = append(g.r.traces, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func newOTLPGRPCReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{url: "http://" + ln.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcTraceReceiver{r: r})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return r
}

func (r *otlpReceiver) snapshot() (traces []*coltracepb.ExportTraceServiceRequest, metrics []*colmetricpb.ExportMetricsServiceRequest, paths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(traces, r.traces...), append(metrics, r.metrics...), append(paths, r.paths...)
}

// envFrom is a getenv over a fixed map, so a test never depends on the process environment.
func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func resourceAttr(res *resourcepb.Resource, key string) string {
	for _, kv := range res.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func spanAttr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// emit records one span and one counter increment, then flushes with shutdown.
func emit(t *testing.T, tel Telemetry, shutdown func(context.Context) error) trace.SpanContext {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, span := tel.Tracer.Tracer("test").Start(ctx, "signal join-pin")
	span.SetAttributes(attribute.String("tuturu.outcome", "ok"))
	sc := span.SpanContext()
	span.End()
	counter, err := tel.Meter.Meter("test").Int64Counter("tuturu.test.events")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 3)
	// shutdown flushes the batch span processor and collects metrics once more.
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	return sc
}

func TestTelemetryExportsOverOTLPHTTP(t *testing.T) {
	r := newOTLPHTTPReceiver(t)
	tel, shutdown, err := SetupTelemetry(context.Background(), "credsvc", envFrom(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": r.url,
	}))
	if err != nil {
		t.Fatal(err)
	}
	sc := emit(t, tel, shutdown)
	if !sc.IsValid() || !sc.IsSampled() {
		t.Fatalf("span context %v: want a sampled, recorded span", sc)
	}
	traces, metrics, _ := r.snapshot()

	var found bool
	for _, req := range traces {
		for _, rs := range req.GetResourceSpans() {
			if got := resourceAttr(rs.GetResource(), "service.name"); got != "credsvc" {
				t.Errorf("service.name = %q, want credsvc", got)
			}
			if got := resourceAttr(rs.GetResource(), "service.namespace"); got != "tuturu" {
				t.Errorf("service.namespace = %q, want tuturu", got)
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					if s.GetName() == "signal join-pin" && trace.TraceID(s.GetTraceId()) == sc.TraceID() &&
						trace.SpanID(s.GetSpanId()) == sc.SpanID() && spanAttr(s.GetAttributes(), "tuturu.outcome") == "ok" {
						found = true
					}
				}
			}
		}
	}
	if !found {
		t.Errorf("span %s not received; got %d trace requests", sc.TraceID(), len(traces))
	}

	found = false
	for _, req := range metrics {
		for _, rm := range req.GetResourceMetrics() {
			if resourceAttr(rm.GetResource(), "service.name") != "credsvc" {
				t.Errorf("metrics resource service.name = %q", resourceAttr(rm.GetResource(), "service.name"))
			}
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					if m.GetName() != "tuturu.test.events" {
						continue
					}
					sum := m.GetSum()
					if sum == nil || !sum.GetIsMonotonic() || len(sum.GetDataPoints()) != 1 || sum.GetDataPoints()[0].GetAsInt() != 3 {
						t.Errorf("tuturu.test.events = %v, want a monotonic sum of 3", m)
					}
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("metric tuturu.test.events not received; got %d metric requests", len(metrics))
	}
}

func TestTelemetrySignalEndpointIsUsedAsIs(t *testing.T) {
	// A signal-specific endpoint is the full URL (OTLP spec): no /v1/traces is appended.
	r := newOTLPHTTPReceiver(t)
	tel, shutdown, err := SetupTelemetry(context.Background(), "gateway", envFrom(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": r.url + "/custom/traces",
		"OTEL_METRICS_EXPORTER":              "none",
	}))
	if err != nil {
		t.Fatal(err)
	}
	emit(t, tel, shutdown)
	traces, metrics, paths := r.snapshot()
	if len(traces) == 0 || len(metrics) != 0 {
		t.Fatalf("got %d trace and %d metric requests, want traces only", len(traces), len(metrics))
	}
	for _, p := range paths {
		if p != "/custom/traces" {
			t.Errorf("request to %s, want /custom/traces", p)
		}
	}
}

func TestTelemetryExportsOverOTLPGRPC(t *testing.T) {
	r := newOTLPGRPCReceiver(t)
	tel, shutdown, err := SetupTelemetry(context.Background(), "turnsvc", envFrom(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": r.url,
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_METRICS_EXPORTER":       "none",
	}))
	if err != nil {
		t.Fatal(err)
	}
	sc := emit(t, tel, shutdown)
	traces, _, _ := r.snapshot()
	if len(traces) == 0 {
		t.Fatal("no trace request over gRPC")
	}
	rs := traces[0].GetResourceSpans()[0]
	if got := resourceAttr(rs.GetResource(), "service.name"); got != "turnsvc" {
		t.Errorf("service.name = %q, want turnsvc", got)
	}
	if got := trace.TraceID(rs.GetScopeSpans()[0].GetSpans()[0].GetTraceId()); got != sc.TraceID() {
		t.Errorf("trace id %s, want %s", got, sc.TraceID())
	}
}

func TestTelemetryNothingConfiguredStillPropagates(t *testing.T) {
	tel, shutdown, err := SetupTelemetry(context.Background(), "roomsvc", envFrom(nil))
	if err != nil {
		t.Fatalf("no OTEL_* set must not fail: %v", err)
	}
	// A caller's trace flows through a service that records nothing.
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := tel.Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": parent})
	ctx, span := tel.Tracer.Tracer("test").Start(ctx, "work")
	if span.IsRecording() {
		t.Error("span is recording with no exporter configured")
	}
	out := propagation.MapCarrier{}
	tel.Propagator.Inject(ctx, out)
	span.End()
	if !strings.Contains(out["traceparent"], "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("traceparent %q lost the caller's trace id", out["traceparent"])
	}
	counter, err := tel.Meter.Meter("test").Int64Counter("tuturu.test.events")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestTelemetryExporterNoneAndSDKDisabled(t *testing.T) {
	for _, tc := range []struct {
		name                string
		env                 map[string]string
		wantTraces, wantMet bool
	}{
		{"traces none", map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false, true},
		{"metrics none", map[string]string{"OTEL_METRICS_EXPORTER": "none"}, true, false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOTLPHTTPReceiver(t)
			tc.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = r.url
			tel, shutdown, err := SetupTelemetry(context.Background(), "gateway", envFrom(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			emit(t, tel, shutdown)
			// shutdown has flushed: what did not arrive was never sent.
			traces, metrics, _ := r.snapshot()
			if got := len(traces) > 0; got != tc.wantTraces {
				t.Errorf("traces exported = %v, want %v", got, tc.wantTraces)
			}
			if got := len(metrics) > 0; got != tc.wantMet {
				t.Errorf("metrics exported = %v, want %v", got, tc.wantMet)
			}
		})
	}
}

func TestTelemetryBadProtocolIsAClearError(t *testing.T) {
	_, _, err := SetupTelemetry(context.Background(), "gateway", envFrom(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
	}))
	if err == nil {
		t.Fatal("OTEL_EXPORTER_OTLP_PROTOCOL=http/json accepted")
	}
	for _, want := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", `"http/json"`, "grpc", "http/protobuf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestTelemetryBadEndpointIsAClearError(t *testing.T) {
	// Without a scheme the exporters would quietly send to localhost instead.
	for _, tc := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "lgtm:4318"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://lgtm/v1/traces"},
	} {
		_, _, err := SetupTelemetry(context.Background(), "gateway", envFrom(map[string]string{tc.name: tc.value}))
		if err == nil {
			t.Errorf("%s=%s accepted", tc.name, tc.value)
			continue
		}
		if !strings.Contains(err.Error(), tc.name+": ") || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%s=%s: error %q does not name the variable and its value", tc.name, tc.value, err)
		}
	}
}

func TestTelemetryUnknownValuesAreErrors(t *testing.T) {
	// A typo must not quietly turn telemetry off.
	for _, tc := range []struct{ name, value string }{
		{"OTEL_TRACES_EXPORTER", "otpl"},
		{"OTEL_METRICS_EXPORTER", "prometheus"},
		{"OTEL_SDK_DISABLED", "maybe"},
	} {
		_, _, err := SetupTelemetry(context.Background(), "gateway", envFrom(map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
			tc.name:                       tc.value,
		}))
		if err == nil || !strings.Contains(err.Error(), tc.name+": ") || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%s=%s: error %v, want one naming the variable and its value", tc.name, tc.value, err)
		}
	}
	// The values the OTel specification defines still work, in any case.
	for _, env := range []map[string]string{
		{"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_METRICS_EXPORTER": "none", "OTEL_SDK_DISABLED": "false"},
		{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "whatever"}, // disabled: nothing else is read
	} {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4318"
		_, shutdown, err := SetupTelemetry(context.Background(), "gateway", envFrom(env))
		if err != nil {
			t.Errorf("%v: %v", env, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = shutdown(ctx) // nothing was recorded, so nothing is sent
		cancel()
	}
}
