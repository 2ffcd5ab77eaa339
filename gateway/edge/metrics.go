package edge

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tuturu/tuturu/internal/platform"
)

// instruments are the edge's metrics (docs/observability.md).
type instruments struct {
	connections metric.Int64Counter
	handshakes  metric.Int64Counter
	relays      metric.Int64UpDownCounter
	routeAttrs  map[string]metric.MeasurementOption
}

// Route labels of tuturu.edge.connections.
const (
	labelApp   = "app"
	labelTurn  = "turn"
	labelCover = "cover"
	labelACME  = "acme"
)

func newInstruments(tel platform.Telemetry) (*instruments, error) {
	m := tel.OrDefault().Meter.Meter("github.com/tuturu/tuturu/gateway/edge")
	in := &instruments{routeAttrs: map[string]metric.MeasurementOption{}}
	for _, r := range []string{labelApp, labelTurn, labelCover, labelACME} {
		in.routeAttrs[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", r)))
	}
	var err error
	if in.connections, err = m.Int64Counter("tuturu.edge.connections", metric.WithDescription("TLS connections accepted on the HTTPS port, by the route their name chose.")); err != nil {
		return nil, fmt.Errorf("metric tuturu.edge.connections: %w", err)
	}
	if in.handshakes, err = m.Int64Counter("tuturu.edge.handshake.failures", metric.WithDescription("TLS handshakes on the HTTPS port that failed (scanners, untrusted certificates, timeouts).")); err != nil {
		return nil, fmt.Errorf("metric tuturu.edge.handshake.failures: %w", err)
	}
	if in.relays, err = m.Int64UpDownCounter("tuturu.edge.turn.relays", metric.WithDescription("Open TURN-over-TLS connections relayed to turnsvc.")); err != nil {
		return nil, fmt.Errorf("metric tuturu.edge.turn.relays: %w", err)
	}
	return in, nil
}

func (in *instruments) routed(ctx context.Context, route string) {
	in.connections.Add(ctx, 1, in.routeAttrs[route])
}
