package turnsvc

import (
	"context"
	"math/rand/v2"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// validate asks credsvc about a username: the `turn auth` span.
func (s *Service) validate(ctx context.Context, username, realm string) verdict {
	ctx, span := s.tracer.Start(ctx, "turn auth", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	res, err := s.client.Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: username, Realm: realm}))
	if err != nil {
		span.SetStatus(codes.Error, "credsvc Validate failed")
		span.SetAttributes(attribute.String("tuturu.outcome", resultUnavailable))
		s.log.WarnContext(ctx, "credsvc Validate failed; the credential is refused until credsvc answers",
			"code", connect.CodeOf(err).String(), "err", err)
		return verdict{result: resultUnavailable}
	}
	m := res.Msg
	v := verdict{participant: m.GetParticipantId()}
	if t := m.GetExpiresAt(); t != nil {
		v.expires = t.AsTime()
	}
	switch m.GetVerdict() {
	case credv1.Verdict_VERDICT_VALID:
		v.result, v.key = resultValid, m.GetKey()
		if len(v.key) == 0 {
			v = verdict{result: resultUnavailable}
			s.log.ErrorContext(ctx, "credsvc said VALID without a key; refusing the credential")
		}
		if v.expires.IsZero() {
			// Without an expiry from credsvc, trust the one in the username.
			v.expires, _ = usernameExpiry(username)
		}
	case credv1.Verdict_VERDICT_EXPIRED:
		v.result = resultExpired
	case credv1.Verdict_VERDICT_REVOKED:
		v.result = resultRevoked
	case credv1.Verdict_VERDICT_UNKNOWN_SECRET:
		v.result = resultUnknownSecret
	default:
		v.result = resultMalformed
	}
	span.SetAttributes(attribute.String("tuturu.outcome", v.result))
	if v.participant != "" {
		span.SetAttributes(attribute.String("tuturu.participant.id", v.participant))
	}
	return v
}

// watchRevocations follows credsvc's revocation feed until ctx ends, reconnecting with
// exponential backoff. Each revocation drops cache entries and closes live allocations.
func (s *Service) watchRevocations(ctx context.Context) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 10 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		err := s.followRevocations(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			break
		}
		if s.st.connected.Swap(false) {
			s.log.Warn("revocation feed from credsvc lost; confirmed credentials keep working, new ones are refused until it answers",
				"code", connect.CodeOf(err).String(), "err", err)
		} else {
			s.log.Debug("revocation feed from credsvc unavailable", "err", err, "retry_in", backoff.String())
		}
		// Jitter keeps many turnsvc instances from reconnecting in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
	s.st.connected.Store(false)
}

// followRevocations reads one WatchRevocations stream until it ends.
func (s *Service) followRevocations(ctx context.Context, onMessage func()) error {
	stream, err := s.client.WatchRevocations(ctx, connect.NewRequest(&credv1.WatchRevocationsRequest{}))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
		msg := stream.Msg()
		onMessage()
		if !s.st.connected.Swap(true) {
			s.log.Info("revocation feed from credsvc connected")
		}
		s.applyRevocations(msg.GetRevocations(), msg.GetSnapshot())
	}
	if err := stream.Err(); err != nil {
		return err
	}
	return connect.NewError(connect.CodeUnavailable, errFeedEnded)
}

// applyRevocations updates the cache and closes the live allocations each revocation covers.
func (s *Service) applyRevocations(list []*credv1.Revocation, snapshot bool) {
	if snapshot {
		users, parts := map[string]time.Time{}, map[string]time.Time{}
		for _, r := range list {
			exp := r.GetExpiresAt().AsTime()
			if r.GetExpiresAt() == nil {
				exp = time.Time{}
			}
			if u := r.GetUsername(); u != "" {
				users[u] = exp
			}
			if p := r.GetParticipantId(); p != "" {
				parts[p] = exp
			}
		}
		s.creds.replaceRevocations(users, parts)
	}
	for _, r := range list {
		u, p := r.GetUsername(), r.GetParticipantId()
		if u == "" && p == "" {
			continue
		}
		if !snapshot {
			exp := time.Time{}
			if r.GetExpiresAt() != nil {
				exp = r.GetExpiresAt().AsTime()
			}
			s.creds.revoke(u, p, exp)
		}
		if n := s.reg.closeMatching(u, p, reasonRevoked); n > 0 {
			s.log.Info("closed allocations of a revoked credential", "allocations", n, "participant", p, "reason", r.GetReason())
		}
	}
}
