package credsvc_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tuturu/tuturu/credsvc"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testmetrics"
)

func TestTelemetry(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	tel := platform.NoTelemetry()
	tel.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tel.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	e := newEnv(t)
	n := e.start(func(c *credsvc.Config) { c.Telemetry = tel })
	c := n.internal(t, nil)
	cred := issue(t, c, "uma")
	validateVerdict(t, c, cred.GetUsername())
	validateVerdict(t, c, "garbage")
	if _, err := c.Revoke(ctx(t), connect.NewRequest(&credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: "uma"}, Reason: "left"})); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	got := testmetrics.Int64(t, reader)
	for _, want := range [][2]string{
		{"tuturu.cred.issued", ""},
		{"tuturu.cred.validations", "verdict=valid"},
		{"tuturu.cred.validations", "verdict=malformed"},
		{"tuturu.cred.revocations", "reason=left"},
	} {
		if v := got[want[0]][want[1]]; v != 1 {
			t.Errorf("metric %s{%s} = %d, want 1 (all: %v)", want[0], want[1], v, got)
		}
	}

	var issueSpan sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == "tuturu.cred.v1.CredentialService/Issue" {
			issueSpan = s
		}
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, cred.GetPassword()) || strings.Contains(v, cred.GetUsername()) {
				t.Errorf("span %s attribute %s carries the credential", s.Name(), kv.Key)
			}
		}
	}
	if issueSpan == nil {
		t.Fatalf("no Issue server span among %d spans", len(spans.Ended()))
	}
	want := map[attribute.Key]string{"tuturu.participant.id": "uma", "tuturu.outcome": "ok"}
	for _, kv := range issueSpan.Attributes() {
		if w, ok := want[kv.Key]; ok && kv.Value.Emit() == w {
			delete(want, kv.Key)
		}
	}
	if len(want) != 0 {
		t.Errorf("Issue span lacks %v; has %v", want, issueSpan.Attributes())
	}
}

// The issued counter counts a batch's credentials; batch spans carry counts, never the
// participant ids of their items.
func TestBatchTelemetry(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	tel := platform.NoTelemetry()
	tel.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tel.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	n := newEnv(t).start(func(c *credsvc.Config) { c.Telemetry = tel })
	c := n.internal(t, nil)
	issueBatch(t, c, []*credv1.IssueRequest{{ParticipantId: "vera"}, {ParticipantId: ""}, {ParticipantId: "walt"}})
	revokeBatch(t, c, []*credv1.RevokeRequest{byParticipant("vera"), {}, byParticipant("walt")})

	got := testmetrics.Int64(t, reader)
	issued, revoked := testmetrics.Total(got["tuturu.cred.issued"]), testmetrics.Total(got["tuturu.cred.revocations"])
	if issued != 2 || revoked != 2 {
		t.Errorf("issued = %d, revocations = %d; want 2 each (the items that succeeded)", issued, revoked)
	}

	found := map[string]bool{}
	for _, s := range spans.Ended() {
		name := s.Name()
		if name != "tuturu.cred.v1.CredentialService/IssueBatch" && name != "tuturu.cred.v1.CredentialService/RevokeBatch" {
			continue
		}
		found[name] = true
		attrs := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			attrs[kv.Key] = kv.Value.Emit()
			if v := kv.Value.Emit(); strings.Contains(v, "vera") || strings.Contains(v, "walt") {
				t.Errorf("span %s attribute %s names a participant: %s", name, kv.Key, v)
			}
		}
		if attrs["tuturu.batch.items"] != "3" || attrs["tuturu.batch.refused"] != "1" {
			t.Errorf("span %s: items %q refused %q, want 3 and 1", name, attrs["tuturu.batch.items"], attrs["tuturu.batch.refused"])
		}
	}
	if len(found) != 2 {
		t.Errorf("batch spans found: %v, want IssueBatch and RevokeBatch", found)
	}
}
