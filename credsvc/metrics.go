package credsvc

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tuturu/tuturu/internal/platform"
)

// metrics are credsvc's instruments, named as in docs/observability.md.
type metrics struct {
	issued      metric.Int64Counter
	validations metric.Int64Counter
	revocations metric.Int64Counter
}

func newMetrics(tel platform.Telemetry) (*metrics, error) {
	m := tel.OrDefault().Meter.Meter("github.com/tuturu/tuturu/credsvc")
	var err error
	var out metrics
	if out.issued, err = m.Int64Counter("tuturu.cred.issued", metric.WithDescription("TURN credentials issued")); err != nil {
		return nil, fmt.Errorf("metric tuturu.cred.issued: %w", err)
	}
	if out.validations, err = m.Int64Counter("tuturu.cred.validations", metric.WithDescription("TURN usernames validated, by verdict")); err != nil {
		return nil, fmt.Errorf("metric tuturu.cred.validations: %w", err)
	}
	if out.revocations, err = m.Int64Counter("tuturu.cred.revocations", metric.WithDescription("revocations stored, by reason")); err != nil {
		return nil, fmt.Errorf("metric tuturu.cred.revocations: %w", err)
	}
	return &out, nil
}

func (m *metrics) validated(ctx context.Context, verdict string) {
	m.validations.Add(ctx, 1, metric.WithAttributes(attribute.String("verdict", verdict)))
}

func (m *metrics) revoked(ctx context.Context, reason string) {
	m.revocations.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reasonLabel(reason))))
}

// reasonLabel turns a caller's free-text reason into a bounded metric label.
func reasonLabel(reason string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(reason) {
		if b.Len() >= 32 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "unspecified"
	}
	return b.String()
}
