package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// apiTurnAnswer is the draft-uberti-behave-turn-rest answer flutter-webrtc apps read.
type apiTurnAnswer struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	TTL      int64    `json:"ttl"`
	URIs     []string `json:"uris"`
}

// apiError is the JSON body of every /api/turn refusal.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// apiTurn serves GET /api/turn?service=turn&username=<u>. The credential comes from credsvc
// (Issue with the username as participant), so turnsvc accepts it and it can be revoked like
// any other. It is not tied to a room member: see docs/protocol.md for the trade-off.
type apiTurn struct {
	g       *Gateway
	limiter *joinLimiter
	origins []string // allowed besides the request's own host
}

func newAPITurn(g *Gateway) *apiTurn {
	f := g.cfg.Flutter
	origins := g.cfg.AllowedOrigins
	if len(f.APITurnCORSOrigins) > 0 {
		origins = f.APITurnCORSOrigins
	}
	return &apiTurn{
		g: g,
		// The join limiter's token bucket and growing back-off, with the endpoint's own rate.
		limiter: newJoinLimiter(Limits{JoinsPerMinute: f.APITurnPerMinute, JoinBurst: f.APITurnBurst, JoinBackoffMax: g.cfg.Limits.JoinBackoffMax}),
		origins: origins,
	}
}

func (a *apiTurn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store") // a credential must not sit in a shared cache
	h.Add("Vary", "Origin")
	if a.g.cfg.Flutter.APITurnOff {
		writeJSON(w, http.StatusNotFound, apiError{"/api/turn is turned off on this server", "DISABLED"})
		return
	}
	if !originAllowed(r, a.origins) {
		a.g.instruments.reject(r.Context(), rejectOrigin)
		writeJSON(w, http.StatusForbidden, apiError{"origin not allowed: call /api/turn from this site, or add the origin to API_TURN_CORS_ORIGINS", "ORIGIN_NOT_ALLOWED"})
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		h.Set("Access-Control-Allow-Origin", o)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{"use GET /api/turn?service=turn&username=<name>", "METHOD_NOT_ALLOWED"})
		return
	}
	if r.Method == http.MethodOptions { // CORS preflight
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	ctx, span := a.g.instruments.tracer.Start(r.Context(), "api turn", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	status, outcome := a.serve(ctx, w, r)
	span.SetAttributes(attrOutcome.String(outcome))
	if status != http.StatusOK {
		span.SetStatus(codes.Error, outcome)
	}
}

// serve checks the request and answers it; it returns the status and the span's outcome.
func (a *apiTurn) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) (int, string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return refuseAPI(w, http.StatusBadRequest, "bad_request", "the query string is not valid", "INVALID_QUERY")
	}
	service, username := q["service"], q["username"]
	switch {
	case len(service) != 1 || service[0] != "turn":
		return refuseAPI(w, http.StatusBadRequest, "bad_request", "service must be turn, given once", "INVALID_SERVICE")
	case len(username) != 1 || username[0] == "":
		return refuseAPI(w, http.StatusBadRequest, "bad_request", "username is required, given once", "INVALID_USERNAME")
	}
	if ok, wait := a.limiter.allow(clientAddr(r), time.Now()); !ok {
		a.g.instruments.reject(ctx, rejectRate)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		return refuseAPI(w, http.StatusTooManyRequests, "rate", "too many requests from your address: try again later", "RATE_LIMITED")
	}
	ictx, cancel := context.WithTimeout(ctx, a.g.cfg.RPCTimeout)
	defer cancel()
	res, err := a.g.creds.Issue(ictx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: username[0]}))
	if err != nil {
		switch code := connect.CodeOf(err); code {
		case connect.CodeInvalidArgument:
			// credsvc's text says what is wrong with the name (length, spaces, control characters).
			var ce *connect.Error
			text := "username is not valid"
			if errors.As(err, &ce) {
				text = "username is not valid: " + truncate(ce.Message(), 200)
			}
			return refuseAPI(w, http.StatusBadRequest, "bad_request", text, "INVALID_USERNAME")
		case connect.CodeFailedPrecondition:
			return refuseAPI(w, http.StatusForbidden, "revoked", "credentials for this username are revoked", "REVOKED")
		default:
			a.g.cfg.Logger().WarnContext(ctx, "credential service failed an /api/turn request", "code", code.String(), "err", err)
			return refuseAPI(w, http.StatusServiceUnavailable, "unavailable", "TURN credentials are unavailable: please try again shortly", "SERVICE_UNAVAILABLE")
		}
	}
	m := res.Msg
	writeJSON(w, http.StatusOK, apiTurnAnswer{
		Username: m.GetUsername(),
		Password: m.GetPassword(),
		TTL:      int64(m.GetTtl().AsDuration() / time.Second),
		URIs:     append([]string{}, m.GetTurnUrls()...), // [] rather than null when there are none
	})
	return http.StatusOK, "ok"
}

func refuseAPI(w http.ResponseWriter, status int, outcome, text, code string) (int, string) {
	writeJSON(w, status, apiError{Error: text, Code: code})
	return status, outcome
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(mustJSON(v), '\n'))
}
