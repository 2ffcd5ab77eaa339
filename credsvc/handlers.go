package credsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// maxReasonLen bounds the free-text reason of a revocation.
const maxReasonLen = 200

// watchBatch caps how many pending revocations one stream message carries.
const watchBatch = 256

// Issue returns the ICE servers with a fresh TURN credential for one participant.
func (s *Service) Issue(ctx context.Context, req *connect.Request[credv1.IssueRequest]) (*connect.Response[credv1.IssueResponse], error) {
	res, err := s.issue(req.Msg, s.cfg.now())
	span := trace.SpanFromContext(ctx)
	// The participant id is recorded only once it has passed its checks.
	participant := attribute.String("tuturu.participant.id", req.Msg.GetParticipantId())
	switch {
	case err == nil:
		s.metrics.issued.Add(ctx, 1)
		span.SetAttributes(participant, attribute.String("tuturu.outcome", "ok"))
		return connect.NewResponse(res), nil
	case connect.CodeOf(err) == connect.CodeFailedPrecondition:
		span.SetAttributes(participant, attribute.String("tuturu.outcome", "revoked"))
	}
	return nil, err
}

// issue builds the credential for one request, as of now: what Issue returns, and each item of
// IssueBatch. Its errors are Connect errors.
func (s *Service) issue(req *credv1.IssueRequest, now time.Time) (*credv1.IssueResponse, error) {
	participant := req.GetParticipantId()
	if err := checkParticipant(participant); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	ttl := s.cfg.TTL
	if d := req.GetTtl(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("ttl: %w", err))
		}
		if ttl = d.AsDuration(); ttl < time.Second {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("ttl must be at least 1s (got %s)", ttl))
		}
		// Capped rather than refused: the caller gets the longest lifetime allowed and sees it in ttl.
		ttl = min(ttl, s.cfg.MaxTTL)
	}
	if rec, revoked := s.revs.participantRevoked(participant, now); revoked {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("participant %q is revoked until %s", participant, rec.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	active := s.keys.Load().active
	expiry := now.Add(ttl).Truncate(time.Second)
	username := formatUsername(expiry, participant, active.ID)
	pass := password(active.Secret, username)

	turnURLs := s.turnURLs()
	var ice []*credv1.IceServer
	if len(s.cfg.STUNServers) > 0 {
		ice = append(ice, &credv1.IceServer{Urls: s.cfg.STUNServers})
	}
	ice = append(ice, &credv1.IceServer{Urls: turnURLs, Username: username, Credential: pass})
	return &credv1.IssueResponse{
		IceServers: ice,
		Username:   username,
		Password:   pass,
		ExpiresAt:  timestamppb.New(expiry),
		Ttl:        durationpb.New(ttl),
		TurnUrls:   turnURLs,
	}, nil
}

// turnURLs are the TURN URLs handed out: UDP and TCP on TurnPort (UDP on TurnUDPPort if set),
// TLS on TurnsPort if set.
func (s *Service) turnURLs() []string {
	hostPort := net.JoinHostPort(s.cfg.TurnHost, strconv.Itoa(s.cfg.TurnPort))
	udp := hostPort
	if s.cfg.TurnUDPPort > 0 {
		udp = net.JoinHostPort(s.cfg.TurnHost, strconv.Itoa(s.cfg.TurnUDPPort))
	}
	urls := []string{"turn:" + udp + "?transport=udp", "turn:" + hostPort + "?transport=tcp"}
	if s.cfg.TurnsPort > 0 {
		host := s.cfg.TurnsHost
		if host == "" {
			host = s.cfg.TurnHost
		}
		urls = append(urls, "turns:"+net.JoinHostPort(host, strconv.Itoa(s.cfg.TurnsPort))+"?transport=tcp")
	}
	return urls
}

// Validate tells turnsvc whether a username is valid now and, if so, its long-term key. A
// refusal is a verdict, not an error: only a broken request is an error.
func (s *Service) Validate(ctx context.Context, req *connect.Request[credv1.ValidateRequest]) (*connect.Response[credv1.ValidateResponse], error) {
	res := s.validate(req.Msg.GetUsername(), req.Msg.GetRealm())
	verdict := verdictLabel(res.Verdict)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("tuturu.outcome", verdict))
	if res.ParticipantId != "" {
		span.SetAttributes(attribute.String("tuturu.participant.id", res.ParticipantId))
	}
	s.metrics.validated(ctx, verdict)
	return connect.NewResponse(res), nil
}

func (s *Service) validate(username, realm string) *credv1.ValidateResponse {
	c, err := parseUsername(username)
	if err != nil {
		return &credv1.ValidateResponse{Verdict: credv1.Verdict_VERDICT_MALFORMED}
	}
	res := &credv1.ValidateResponse{ExpiresAt: timestamppb.New(c.Expiry), ParticipantId: c.Participant}
	now := s.cfg.now()
	// Expiry first: for an old credential "expired" is the useful answer, whether or not
	// its secret has been retired since.
	if !now.Before(c.Expiry) {
		res.Verdict = credv1.Verdict_VERDICT_EXPIRED
		return res
	}
	secret, ok := s.keys.Load().verifier(c.KeyID)
	if !ok {
		res.Verdict = credv1.Verdict_VERDICT_UNKNOWN_SECRET
		return res
	}
	if s.revs.revoked(c, now) {
		res.Verdict = credv1.Verdict_VERDICT_REVOKED
		return res
	}
	res.Verdict = credv1.Verdict_VERDICT_VALID
	res.Key = longTermKey(username, realm, password(secret.Secret, username))
	return res
}

// verdictLabel is the metric and span value of a verdict.
func verdictLabel(v credv1.Verdict) string {
	switch v {
	case credv1.Verdict_VERDICT_VALID:
		return "valid"
	case credv1.Verdict_VERDICT_MALFORMED:
		return "malformed"
	case credv1.Verdict_VERDICT_UNKNOWN_SECRET:
		return "unknown_secret"
	case credv1.Verdict_VERDICT_EXPIRED:
		return "expired"
	case credv1.Verdict_VERDICT_REVOKED:
		return "revoked"
	}
	return "unspecified"
}

// Revoke refuses a username, or every credential of a participant, until they would have
// expired anyway.
func (s *Service) Revoke(ctx context.Context, req *connect.Request[credv1.RevokeRequest]) (*connect.Response[credv1.RevokeResponse], error) {
	p, err := s.revocation(req.Msg, s.cfg.now())
	if err != nil {
		return nil, err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("tuturu.participant.id", p.participant))
	if err := s.storeRevocations(ctx, []*revocationPut{p}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&credv1.RevokeResponse{Revocation: p.pb}), nil
}

// revocation checks one RevokeRequest and builds the revocation it asks for, as of now: what
// Revoke stores, and each item of RevokeBatch. Its errors are InvalidArgument.
func (s *Service) revocation(req *credv1.RevokeRequest, now time.Time) (*revocationPut, error) {
	switch t := req.GetTarget().(type) {
	case *credv1.RevokeRequest_Username:
		return usernameRevocation(t.Username, req.GetReason(), now)
	case *credv1.RevokeRequest_ParticipantId:
		return s.participantRevocation(t.ParticipantId, req.GetReason(), "unspecified", now)
	}
	return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("revoke needs a username or a participant_id"))
}

// usernameRevocation refuses one username until its own expiry.
func usernameRevocation(username, reason string, now time.Time) (*revocationPut, error) {
	c, err := parseUsername(username)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("username: %w", err))
	}
	if reason, err = checkReason(reason, "unspecified"); err != nil {
		return nil, err
	}
	return &revocationPut{
		key:         prefixUsername + username,
		rec:         revocationRecord{RevokedAt: now, ExpiresAt: c.Expiry, Reason: reason},
		participant: c.Participant,
	}, nil
}

// participantRevocation refuses every credential of a participant.
func (s *Service) participantRevocation(participant, reason, defaultReason string, now time.Time) (*revocationPut, error) {
	if err := checkParticipant(participant); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	reason, err := checkReason(reason, defaultReason)
	if err != nil {
		return nil, err
	}
	return &revocationPut{
		key: prefixParticipant + participant,
		// Every credential the participant holds expires within MaxTTL of now.
		rec:         revocationRecord{RevokedAt: now, ExpiresAt: now.Add(s.cfg.MaxTTL), Reason: reason},
		participant: participant,
	}, nil
}

// storeRevocations writes checked revocations in one transaction, announces them to the
// watchers, and counts and logs each. On an error (Internal) none was stored.
func (s *Service) storeRevocations(ctx context.Context, puts []*revocationPut) error {
	if err := s.revs.add(puts); err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("revoke: %w", err))
	}
	for _, p := range puts {
		s.metrics.revoked(ctx, p.rec.Reason)
		what := "participant revoked"
		if strings.HasPrefix(p.key, prefixUsername) {
			// The username is not secret, but it is a credential half: log whose it was, not it.
			what = "credential revoked"
		}
		s.log.InfoContext(ctx, what, "participant", p.participant, "reason", p.rec.Reason,
			"until", p.pb.GetExpiresAt().AsTime())
	}
	return nil
}

func checkReason(reason, def string) (string, error) {
	if len(reason) > maxReasonLen {
		return "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("reason is longer than %d bytes", maxReasonLen))
	}
	if reason == "" {
		return def, nil
	}
	return reason, nil
}

// WatchRevocations sends every revocation in force, then each new one, until the caller goes
// away or the service stops (Unavailable).
func (s *Service) WatchRevocations(ctx context.Context, _ *connect.Request[credv1.WatchRevocationsRequest], stream *connect.ServerStream[credv1.WatchRevocationsResponse]) error {
	w, snapshot, err := s.revs.watch(s.cfg.now())
	if err != nil {
		return err
	}
	defer s.revs.unwatch(w)
	if err := stream.Send(&credv1.WatchRevocationsResponse{Revocations: snapshot, Snapshot: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return w.err
		case revs := <-w.ch:
			// Copied: the published slices are shared with the other watchers.
			batch := slices.Clone(revs)
		drain: // a burst goes out in as few messages as it takes
			for len(batch) < watchBatch {
				select {
				case revs := <-w.ch:
					batch = append(batch, revs...)
				default:
					break drain
				}
			}
			for len(batch) > 0 {
				n := min(len(batch), watchBatch)
				if err := stream.Send(&credv1.WatchRevocationsResponse{Revocations: batch[:n]}); err != nil {
					return err
				}
				batch = batch[n:]
			}
		}
	}
}
