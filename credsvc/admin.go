package credsvc

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// RotateSecret makes a new random secret active; the previous one verifies until every
// credential it signed has expired.
func (s *Service) RotateSecret(ctx context.Context, _ *connect.Request[credv1.RotateSecretRequest]) (*connect.Response[credv1.RotateSecretResponse], error) {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	now := s.cfg.now()
	previous := s.keys.Load().active
	var err error
	// A key id collision (32 bits) is astronomically rare; a fresh secret resolves it.
	for range 3 {
		if err = s.applyPromote(generateSecret(), now); err == nil {
			break
		}
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("rotate secret: %w", err))
	}
	k := s.keys.Load()
	s.log.InfoContext(ctx, "secret rotated", "active_secret", k.active.ID, "previous_secret", previous.ID)
	if s.cfg.TurnSecret != "" {
		s.log.WarnContext(ctx, "TURN_SECRET is set: it becomes the active secret again at the next start, and a coturn sharing it no longer accepts new credentials until then")
	}
	return connect.NewResponse(&credv1.RotateSecretResponse{
		Active:   secretInfo(k.active, now),
		Previous: secretInfo(k.byID[previous.ID], now),
	}), nil
}

// ListSecrets lists the keyring, newest first, without the secrets.
func (s *Service) ListSecrets(_ context.Context, _ *connect.Request[credv1.ListSecretsRequest]) (*connect.Response[credv1.ListSecretsResponse], error) {
	now := s.cfg.now()
	var out []*credv1.SecretInfo
	for _, r := range s.keys.Load().list() {
		out = append(out, secretInfo(r, now))
	}
	return connect.NewResponse(&credv1.ListSecretsResponse{Secrets: out}), nil
}

// ListRevocations lists the revocations in force, oldest first.
func (s *Service) ListRevocations(_ context.Context, _ *connect.Request[credv1.ListRevocationsRequest]) (*connect.Response[credv1.ListRevocationsResponse], error) {
	return connect.NewResponse(&credv1.ListRevocationsResponse{Revocations: s.revs.list(s.cfg.now())}), nil
}

// RevokeParticipant revokes every credential of a participant; watchers hear of it at once.
func (s *Service) RevokeParticipant(ctx context.Context, req *connect.Request[credv1.RevokeParticipantRequest]) (*connect.Response[credv1.RevokeParticipantResponse], error) {
	p, err := s.participantRevocation(req.Msg.GetParticipantId(), req.Msg.GetReason(), "admin", s.cfg.now())
	if err != nil {
		return nil, err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("tuturu.participant.id", p.participant))
	if err := s.storeRevocations(ctx, []*revocationPut{p}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&credv1.RevokeParticipantResponse{Revocation: p.pb}), nil
}

// secretInfo describes a secret without the secret; nil for an empty record.
func secretInfo(r secretRecord, now time.Time) *credv1.SecretInfo {
	if r.ID == "" {
		return nil
	}
	return &credv1.SecretInfo{
		Id:        r.ID,
		State:     r.State.proto(),
		CreatedAt: timestamppb.New(r.Created),
		Age:       durationpb.New(max(now.Sub(r.Created), 0)),
	}
}
