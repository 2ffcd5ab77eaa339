package roomsvc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

// meters counts what the hub does, both as OpenTelemetry instruments (docs/observability.md)
// and as the totals GetStats reports.
type meters struct {
	joins      metric.Int64Counter
	resumes    metric.Int64Counter
	departures metric.Int64Counter
	setup      metric.Float64Histogram

	pinRooms, lobbyRooms atomic.Int64
	connected, held      atomic.Int64
	okJoins, okResumes   atomic.Uint64
	signals              atomic.Uint64

	mu         sync.Mutex
	rejections map[string]uint64
	departed   map[string]uint64

	// Attribute sets are built once: building one per join costs more than the join's
	// bookkeeping (a sort and allocations, even with a no-op meter).
	outcomeAttrs map[string]metric.MeasurementOption
	reasonAttrs  map[roomv1.LeaveReason]metric.MeasurementOption
}

func (m *meters) outcome(o string) metric.MeasurementOption {
	if opt, ok := m.outcomeAttrs[o]; ok {
		return opt
	}
	return metric.WithAttributes(attribute.String("outcome", o))
}

func (m *meters) reason(r roomv1.LeaveReason) metric.MeasurementOption {
	if opt, ok := m.reasonAttrs[r]; ok {
		return opt
	}
	return metric.WithAttributes(attribute.String("reason", r.String()))
}

func newMeters(tel platform.Telemetry) (*meters, error) {
	m := &meters{
		rejections:   map[string]uint64{},
		departed:     map[string]uint64{},
		outcomeAttrs: map[string]metric.MeasurementOption{},
		reasonAttrs:  map[roomv1.LeaveReason]metric.MeasurementOption{},
	}
	// The outcomes of joins and resumes; others get a set built on demand.
	for _, o := range []string{"ok", "bad_pin", "room_full", "lobby_full", "bad_lobby", "bad_peer_id", "peer_id_taken",
		"bad_token", "slot_gone", "not_joined", "bad_request", "unavailable", "credentials_unavailable"} {
		m.outcomeAttrs[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))
	}
	for v := range roomv1.LeaveReason_name {
		r := roomv1.LeaveReason(v)
		m.reasonAttrs[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r.String())))
	}
	meter := tel.OrDefault().Meter.Meter("github.com/tuturu/tuturu/roomsvc")
	var err error
	if m.joins, err = meter.Int64Counter("tuturu.room.joins", metric.WithDescription("Join attempts by outcome.")); err != nil {
		return nil, err
	}
	if m.resumes, err = meter.Int64Counter("tuturu.room.resumes", metric.WithDescription("Resume attempts by outcome.")); err != nil {
		return nil, err
	}
	if m.departures, err = meter.Int64Counter("tuturu.room.departures", metric.WithDescription("Members gone for good, by reason.")); err != nil {
		return nil, err
	}
	if m.setup, err = meter.Float64Histogram("tuturu.call.setup.duration", metric.WithUnit("s"),
		metric.WithDescription("From a PIN room becoming full to the first answer relayed."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	if _, err = meter.Int64ObservableGauge("tuturu.rooms", metric.WithDescription("Live rooms by kind."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(m.pinRooms.Load(), metric.WithAttributes(attribute.String("kind", "pin")))
			o.Observe(m.lobbyRooms.Load(), metric.WithAttributes(attribute.String("kind", "lobby")))
			return nil
		})); err != nil {
		return nil, err
	}
	if _, err = meter.Int64ObservableGauge("tuturu.room.members", metric.WithDescription("Live members by state."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(m.connected.Load(), metric.WithAttributes(attribute.String("state", "connected")))
			o.Observe(m.held.Load(), metric.WithAttributes(attribute.String("state", "held")))
			return nil
		})); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *meters) join(outcome string) {
	m.joins.Add(context.Background(), 1, m.outcome(outcome))
	if outcome == "ok" {
		m.okJoins.Add(1)
		return
	}
	m.reject(outcome)
}

func (m *meters) resume(outcome string) {
	m.resumes.Add(context.Background(), 1, m.outcome(outcome))
	if outcome == "ok" {
		m.okResumes.Add(1)
		return
	}
	m.reject(outcome)
}

func (m *meters) reject(outcome string) {
	m.mu.Lock()
	m.rejections[outcome]++
	m.mu.Unlock()
}

func (m *meters) depart(reason roomv1.LeaveReason) {
	name := reason.String()
	m.departures.Add(context.Background(), 1, m.reason(reason))
	m.mu.Lock()
	m.departed[name]++
	m.mu.Unlock()
}

func (m *meters) callSetUp(d time.Duration) {
	m.setup.Record(context.Background(), d.Seconds())
}

// observeRevocations reports the revocations waiting for credsvc as a gauge.
func (m *meters) observeRevocations(tel platform.Telemetry, pending func() int64) error {
	meter := tel.OrDefault().Meter.Meter("github.com/tuturu/tuturu/roomsvc")
	_, err := meter.Int64ObservableGauge("tuturu.room.revocations.pending",
		metric.WithDescription("Departed participants whose TURN credentials credsvc has not revoked yet."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(pending())
			return nil
		}))
	return err
}

func (m *meters) rooms(kind roomv1.RoomKind, delta int64) {
	if kind == roomv1.RoomKind_ROOM_KIND_LOBBY {
		m.lobbyRooms.Add(delta)
		return
	}
	m.pinRooms.Add(delta)
}

// stats returns the GetStats view.
func (m *meters) stats() *roomv1.GetStatsResponse {
	connected, held := m.connected.Load(), m.held.Load()
	s := &roomv1.GetStatsResponse{
		Rooms:       uint32(m.pinRooms.Load() + m.lobbyRooms.Load()),
		Members:     uint32(connected + held),
		HeldMembers: uint32(held),
		Joins:       m.okJoins.Load(),
		Resumes:     m.okResumes.Load(),
		Signals:     m.signals.Load(),
		Rejections:  map[string]uint64{},
		Departures:  map[string]uint64{},
	}
	m.mu.Lock()
	for k, v := range m.rejections {
		s.Rejections[k] = v
	}
	for k, v := range m.departed {
		s.Departures[k] = v
	}
	m.mu.Unlock()
	return s
}
