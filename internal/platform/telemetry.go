package platform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is what a service needs to trace and measure itself. Services receive it in their
// config instead of reaching for OpenTelemetry's globals, so tests can hand in recorders.
type Telemetry struct {
	Tracer     trace.TracerProvider
	Meter      metric.MeterProvider
	Propagator propagation.TextMapPropagator
}

// NoTelemetry records nothing but still propagates trace context, so a caller's trace id
// flows through a service that exports nothing.
func NoTelemetry() Telemetry {
	return Telemetry{
		Tracer:     tracenoop.NewTracerProvider(),
		Meter:      metricnoop.NewMeterProvider(),
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// OrDefault fills unset fields with NoTelemetry's.
func (t Telemetry) OrDefault() Telemetry {
	d := NoTelemetry()
	if t.Tracer == nil {
		t.Tracer = d.Tracer
	}
	if t.Meter == nil {
		t.Meter = d.Meter
	}
	if t.Propagator == nil {
		t.Propagator = d.Propagator
	}
	return t
}

// SetupTelemetry builds exporters from the standard OTEL_* variables. With no OTLP endpoint
// configured (or OTEL_SDK_DISABLED=true, or the exporters set to none) nothing is exported and
// nothing fails. shutdown flushes what is buffered.
func SetupTelemetry(ctx context.Context, serviceName string, getenv func(string) string) (tel Telemetry, shutdown func(context.Context) error, err error) {
	tel = NoTelemetry()
	shutdown = func(context.Context) error { return nil }
	if v := getenv("OTEL_SDK_DISABLED"); v != "" {
		disabled, err := ParseBool(v)
		if err != nil {
			return tel, shutdown, fmt.Errorf("OTEL_SDK_DISABLED: %w", err)
		}
		if disabled {
			return tel, shutdown, nil
		}
	}
	wantTraces, err := wants(getenv, "TRACES")
	if err != nil {
		return tel, shutdown, err
	}
	wantMetrics, err := wants(getenv, "METRICS")
	if err != nil {
		return tel, shutdown, err
	}
	own := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(serviceName), semconv.ServiceNamespace("tuturu"))
	res, err := resource.Merge(resource.Default(), own)
	if err != nil {
		// A schema conflict with resource.Default loses its attributes (SDK, host), never ours:
		// without service.name every service would show up as unknown_service.
		res = own
	}
	var stops []func(context.Context) error
	if wantTraces {
		exp, err := traceExporter(ctx, getenv)
		if err != nil {
			return tel, shutdown, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		tel.Tracer = tp
		stops = append(stops, tp.Shutdown)
	}
	if wantMetrics {
		exp, err := metricExporter(ctx, getenv)
		if err != nil {
			for _, stop := range stops {
				_ = stop(ctx) // the tracer provider's batcher goroutine
			}
			return NoTelemetry(), shutdown, fmt.Errorf("OTLP metric exporter: %w", err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(15*time.Second))))
		tel.Meter = mp
		stops = append(stops, mp.Shutdown)
	}
	shutdown = func(ctx context.Context) error {
		var errs []error
		for _, stop := range stops {
			errs = append(errs, stop(ctx))
		}
		return errors.Join(errs...)
	}
	return tel, shutdown, nil
}

// wants reports whether a signal (TRACES or METRICS) should be exported over OTLP: an endpoint
// is configured for it and its OTEL_<signal>_EXPORTER is not "none". Any other exporter name
// is an error rather than a silent "export nothing".
func wants(getenv func(string) string, signal string) (bool, error) {
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_" + signal + "_EXPORTER"))); exp {
	case "", "otlp":
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("OTEL_%s_EXPORTER: %q is not supported (use otlp or none)", signal, exp)
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "", nil
}

func protocol(getenv func(string) string, signal string) string {
	if p := getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"); p != "" {
		return p
	}
	if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" {
		return p
	}
	return "http/protobuf"
}

// endpoint is the export URL for a signal as getenv sees it: the signal's own variable as
// is, or the base endpoint plus the signal's path (OTLP/HTTP) or as is (gRPC). It is passed to
// the exporters explicitly because they read the process environment, not getenv.
func endpoint(getenv func(string) string, signal, httpPath string) (string, error) {
	name, u := "OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT")
	if u == "" {
		name, u = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSuffix(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/")+httpPath
	}
	// The exporters would silently fall back to localhost on a URL they cannot use.
	if parsed, err := url.Parse(u); err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return "", fmt.Errorf("%s: %q is not a URL such as http://collector:4318", name, getenv(name))
	}
	return u, nil
}

// The exporters read headers, TLS, compression and timeout from the process's OTEL_* variables.
func traceExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	switch p := protocol(getenv, "TRACES"); p {
	case "grpc":
		u, err := endpoint(getenv, "TRACES", "")
		if err != nil {
			return nil, err
		}
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(u))
	case "http/protobuf":
		u, err := endpoint(getenv, "TRACES", "/v1/traces")
		if err != nil {
			return nil, err
		}
		return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u))
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not grpc or http/protobuf", p)
	}
}

func metricExporter(ctx context.Context, getenv func(string) string) (sdkmetric.Exporter, error) {
	switch p := protocol(getenv, "METRICS"); p {
	case "grpc":
		u, err := endpoint(getenv, "METRICS", "")
		if err != nil {
			return nil, err
		}
		return otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(u))
	case "http/protobuf":
		u, err := endpoint(getenv, "METRICS", "/v1/metrics")
		if err != nil {
			return nil, err
		}
		return otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(u))
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not grpc or http/protobuf", p)
	}
}
