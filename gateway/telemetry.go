package gateway

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tuturu/tuturu/internal/platform"
)

// Span attribute keys (docs/observability.md).
const (
	attrMessageType   = attribute.Key("tuturu.message.type")
	attrRole          = attribute.Key("tuturu.role")
	attrParticipantID = attribute.Key("tuturu.participant.id")
	attrRoomID        = attribute.Key("tuturu.room.id")
	attrOutcome       = attribute.Key("tuturu.outcome")
	attrErrorCode     = attribute.Key("tuturu.error.code") // the machine code of an error sent to the client
)

// Rejection reasons, the label of tuturu.gateway.rejections.
const (
	rejectOrigin   = "origin"
	rejectRate     = "rate"
	rejectJoinRate = "join_rate"
	rejectSize     = "size"
	rejectInvalid  = "invalid"
	// rejectJoinTimeout: a socket closed because it did not join within WS_JOIN_TIMEOUT.
	rejectJoinTimeout = "join_timeout"
	// rejectSockets: an upgrade refused because the address holds WS_MAX_SOCKETS_PER_ADDRESS.
	rejectSockets = "sockets"
	// rejectSlow: a socket disconnected because it did not read its events.
	rejectSlow = "slow"
	// rejectFull: an upgrade refused because the gateway holds as many sockets as it can.
	rejectFull = "full"
)

// instruments are the gateway's tracer and metrics.
type instruments struct {
	tracer      trace.Tracer
	propagator  propagation.TextMapPropagator
	connections metric.Int64UpDownCounter
	messages    metric.Int64Counter
	rejections  metric.Int64Counter
	// Attribute sets built once: the hot path adds to counters without allocating.
	browserDialect metric.MeasurementOption
	flutterDialect metric.MeasurementOption
	typeAttrs      map[string]metric.MeasurementOption
	rejectAttrs    map[string]metric.MeasurementOption
}

func newInstruments(tel platform.Telemetry) (*instruments, error) {
	tel = tel.OrDefault()
	m := tel.Meter.Meter("github.com/tuturu/tuturu/gateway")
	in := &instruments{
		tracer:         tel.Tracer.Tracer("github.com/tuturu/tuturu/gateway"),
		propagator:     tel.Propagator,
		browserDialect: metric.WithAttributeSet(attribute.NewSet(attribute.String("dialect", "browser"))),
		flutterDialect: metric.WithAttributeSet(attribute.NewSet(attribute.String("dialect", "flutter"))),
		typeAttrs:      map[string]metric.MeasurementOption{},
		rejectAttrs:    map[string]metric.MeasurementOption{},
	}
	var err error
	if in.connections, err = m.Int64UpDownCounter("tuturu.gateway.connections", metric.WithDescription("Open WebSocket connections.")); err != nil {
		return nil, fmt.Errorf("metric tuturu.gateway.connections: %w", err)
	}
	if in.messages, err = m.Int64Counter("tuturu.gateway.messages", metric.WithDescription("WebSocket messages received, by type.")); err != nil {
		return nil, fmt.Errorf("metric tuturu.gateway.messages: %w", err)
	}
	if in.rejections, err = m.Int64Counter("tuturu.gateway.rejections", metric.WithDescription("Clients refused or disconnected for breaking a limit or the protocol.")); err != nil {
		return nil, fmt.Errorf("metric tuturu.gateway.rejections: %w", err)
	}
	for _, t := range append([]string{typeJoinPin, typeOffer, typeAnswer, typeICECandidate, typeLeave, typePing, typeResume, typeSelfTest}, flutterClientTypes...) {
		in.typeAttrs[t] = metric.WithAttributeSet(attribute.NewSet(attribute.String("type", t)))
	}
	for _, r := range []string{rejectOrigin, rejectRate, rejectJoinRate, rejectSize, rejectInvalid, rejectJoinTimeout, rejectSockets, rejectSlow, rejectFull} {
		in.rejectAttrs[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	return in, nil
}

func (in *instruments) countMessage(ctx context.Context, typ string) {
	if o, ok := in.typeAttrs[typ]; ok {
		in.messages.Add(ctx, 1, o)
	}
}

func (in *instruments) reject(ctx context.Context, reason string) {
	in.rejections.Add(ctx, 1, in.rejectAttrs[reason])
}

// mapCarrier adapts a trace_context map to the propagator.
type mapCarrier = propagation.MapCarrier

// browserParent returns ctx continued from the browser's traceparent, when it sent one.
func (in *instruments) browserParent(ctx context.Context, m *browserMsg) context.Context {
	return in.clientParent(ctx, m.Traceparent, m.Tracestate)
}

// clientParent returns ctx continued from a client's W3C trace context, when it sent one.
func (in *instruments) clientParent(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := mapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return in.propagator.Extract(ctx, c)
}

// injectTo returns the W3C trace context of ctx's span, or nil when there is no span to carry.
func (in *instruments) inject(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := mapCarrier{}
	in.propagator.Inject(ctx, c)
	return c
}
