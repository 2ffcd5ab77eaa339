package turnsvc

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// stats holds the counters behind GetStats and the metrics. Hot-path traffic counters live on
// each allocation (no shared cache line per packet); totals add the closed allocations' figures
// to the live ones when read.
type stats struct {
	created     atomic.Uint64
	peersDenied atomic.Uint64
	connected   atomic.Bool // the revocation feed is up

	mu     sync.Mutex
	closed map[string]uint64 // by reason
	auth   map[string]uint64 // by result
}

func newStats() *stats {
	return &stats{closed: map[string]uint64{}, auth: map[string]uint64{}}
}

func (s *stats) authResult(result string) {
	s.mu.Lock()
	s.auth[result]++
	s.mu.Unlock()
}

func (s *stats) closedReason(reason string) {
	s.mu.Lock()
	s.closed[reason]++
	s.mu.Unlock()
}

func (s *stats) snapshot() (closed, auth map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.closed), maps.Clone(s.auth)
}

// registerMetrics exposes the counters as observable instruments (docs/observability.md), read
// only when the exporter collects, so relaying a packet costs no metric call.
func registerMetrics(m metric.Meter, st *stats, reg *registry) error {
	allocs, err := m.Int64ObservableUpDownCounter("tuturu.turn.allocations", metric.WithDescription("Live TURN allocations."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	created, err := m.Int64ObservableCounter("tuturu.turn.allocations.created", metric.WithDescription("TURN allocations created."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	closed, err := m.Int64ObservableCounter("tuturu.turn.allocations.closed", metric.WithDescription("TURN allocations closed, by reason."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	bytes, err := m.Int64ObservableCounter("tuturu.turn.relayed.bytes", metric.WithUnit("By"), metric.WithDescription("Bytes relayed, by direction."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	packets, err := m.Int64ObservableCounter("tuturu.turn.relayed.packets", metric.WithDescription("Packets relayed, by direction."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	auth, err := m.Int64ObservableCounter("tuturu.turn.auth", metric.WithDescription("TURN credential checks, by result."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	denied, err := m.Int64ObservableCounter("tuturu.turn.peers.denied", metric.WithDescription("Peer addresses refused by the peer policy."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	connected, err := m.Int64ObservableGauge("tuturu.turn.credsvc.connected", metric.WithDescription("1 while the revocation feed from credsvc is connected."))
	if err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	toClient := metric.WithAttributes(attribute.String("direction", "to_client"))
	fromClient := metric.WithAttributes(attribute.String("direction", "from_client"))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		t := reg.totals()
		o.ObserveInt64(allocs, int64(t.live))
		o.ObserveInt64(created, int64(st.created.Load()))
		o.ObserveInt64(bytes, int64(t.bytesTo), toClient)
		o.ObserveInt64(bytes, int64(t.bytesFrom), fromClient)
		o.ObserveInt64(packets, int64(t.pktsTo), toClient)
		o.ObserveInt64(packets, int64(t.pktsFrom), fromClient)
		o.ObserveInt64(denied, int64(st.peersDenied.Load()))
		var c int64
		if st.connected.Load() {
			c = 1
		}
		o.ObserveInt64(connected, c)
		cl, au := st.snapshot()
		for reason, n := range cl {
			o.ObserveInt64(closed, int64(n), metric.WithAttributes(attribute.String("reason", reason)))
		}
		for result, n := range au {
			o.ObserveInt64(auth, int64(n), metric.WithAttributes(attribute.String("result", result)))
		}
		return nil
	}, allocs, created, closed, bytes, packets, auth, denied, connected)
	if err != nil {
		return fmt.Errorf("metric callback: %w", err)
	}
	return nil
}
