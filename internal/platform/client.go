package platform

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
)

// NewH2CClient returns an HTTP client that speaks HTTP/2 without TLS (prior knowledge), which
// Connect needs for bidirectional streams between services.
func NewH2CClient() *http.Client {
	return &http.Client{Transport: WholeMessages(NewH2CTransport())}
}

// NewH2CTransport returns the transport under NewH2CClient, for callers that adjust it (tests
// that watch its connections) before wrapping it with WholeMessages.
func NewH2CTransport() *http.Transport {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Protocols:   protocols,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Idle connections between services are reused; HTTP/2 multiplexes calls on them.
		IdleConnTimeout: 90 * time.Second,
	}
}

// ClientOptions returns the options every inter-service Connect client uses: tracing and
// metrics through otelconnect, and the internal service token.
func ClientOptions(tel Telemetry, token string) ([]connect.ClientOption, error) {
	tel = tel.OrDefault()
	opts := []connect.ClientOption{
		// Calls between services are small and travel over loopback or a LAN: gzip (which
		// connect offers by default) cost more CPU per call set-up than anything else.
		connect.WithAcceptCompression("gzip", nil, nil),
	}
	if exportsNothing(tel) {
		return append(opts, connect.WithInterceptors(propagateOnly{tel.Propagator}, NewSendToken(token))), nil
	}
	otel, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(tel.Tracer),
		otelconnect.WithMeterProvider(tel.Meter),
		otelconnect.WithPropagator(tel.Propagator),
	)
	if err != nil {
		return nil, fmt.Errorf("otelconnect client interceptor: %w", err)
	}
	return append(opts, connect.WithInterceptors(otel, NewSendToken(token))), nil
}

// HandlerOptions returns the options every Connect handler uses: tracing and metrics through
// otelconnect (continuing the caller's trace, since callers are our own services or an
// operator), and a bearer-token check. Pass the internal token for internal services and the
// admin token for admin services.
func HandlerOptions(tel Telemetry, token string) ([]connect.HandlerOption, error) {
	tel = tel.OrDefault()
	if exportsNothing(tel) {
		return []connect.HandlerOption{connect.WithInterceptors(propagateOnly{tel.Propagator}, NewRequireToken(token))}, nil
	}
	otel, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(tel.Tracer),
		otelconnect.WithMeterProvider(tel.Meter),
		otelconnect.WithPropagator(tel.Propagator),
		otelconnect.WithTrustRemote(),
	)
	if err != nil {
		return nil, fmt.Errorf("otelconnect handler interceptor: %w", err)
	}
	return []connect.HandlerOption{connect.WithInterceptors(otel, NewRequireToken(token))}, nil
}
