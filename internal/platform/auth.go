package platform

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

var (
	errMissingToken = errors.New("missing bearer token: send the header 'authorization: Bearer <token>'")
	errWrongToken   = errors.New("bearer token is not valid for this service")
)

// RequireToken is a handler interceptor that admits only calls carrying
// `authorization: Bearer <token>`: missing → Unauthenticated, wrong → PermissionDenied.
type RequireToken struct {
	token []byte
}

// NewRequireToken returns an interceptor that checks for token.
func NewRequireToken(token string) *RequireToken {
	return &RequireToken{token: []byte(token)}
}

func (r *RequireToken) check(h http.Header) error {
	auth := h.Get("Authorization")
	if auth == "" {
		return connect.NewError(connect.CodeUnauthenticated, errMissingToken)
	}
	got, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return connect.NewError(connect.CodeUnauthenticated, errMissingToken)
	}
	if subtle.ConstantTimeCompare([]byte(got), r.token) != 1 {
		return connect.NewError(connect.CodePermissionDenied, errWrongToken)
	}
	return nil
}

// WrapUnary implements connect.Interceptor.
func (r *RequireToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := r.check(req.Header()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (r *RequireToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (r *RequireToken) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := r.check(conn.RequestHeader()); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// SendToken is a client interceptor that adds `authorization: Bearer <token>` to every call.
type SendToken struct {
	value string
}

// NewSendToken returns an interceptor that sends token.
func NewSendToken(token string) *SendToken {
	return &SendToken{value: "Bearer " + token}
}

// WrapUnary implements connect.Interceptor.
func (s *SendToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			req.Header().Set("Authorization", s.value)
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (s *SendToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", s.value)
		return conn
	}
}

// WrapStreamingHandler implements connect.Interceptor.
func (s *SendToken) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
