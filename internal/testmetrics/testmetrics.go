// Package testmetrics reads what an OpenTelemetry manual reader collected, in the one shape the
// tests compare against. Imported only by tests.
package testmetrics

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Int64 collects r once and returns every int64 sum and gauge: metric name → label set
// ("k=v,k2=v2", keys sorted; "" without labels) → value.
func Int64(t testing.TB, r *sdkmetric.ManualReader) map[string]map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collecting metrics: %v", err)
	}
	out := map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			default:
				continue
			}
			byLabels := map[string]int64{}
			for _, dp := range points {
				byLabels[dp.Attributes.Encoded(attribute.DefaultEncoder())] += dp.Value
			}
			out[m.Name] = byLabels
		}
	}
	return out
}

// Total is a metric's value summed over all its label sets.
func Total(byLabels map[string]int64) int64 {
	var n int64
	for _, v := range byLabels {
		n += v
	}
	return n
}
