// Package edge is the gateway's public TLS front: certificates from an ACME CA or from files,
// port 80 for ACME challenges and redirects, and port 443 routed by the name in the TLS
// ClientHello: the app, TURN over TLS (handed to turnsvc with a PROXY protocol header) and a
// cover page for the bare domain and every unknown name.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Handshake deadlines, so that silent or slow connections cannot pile up before routing (each
// holds a descriptor, a goroutine and TLS buffers). A client sends its ClientHello at once,
// in one or two packets: 10 s covers a slow mobile link and sheds silent and trickling
// clients 6 times sooner than the whole-handshake bound. That bound stays a minute because an
// ACME order in progress can hold the first handshake of a name for a few seconds, longer
// with a slow CA.
const (
	defaultHelloTimeout     = 10 * time.Second
	defaultHandshakeTimeout = time.Minute
)

// Edge serves HTTPS and TURN over TLS on one port.
type Edge struct {
	cfg   Config
	log   *slog.Logger
	certs certSource
	acme  *acmeCerts // nil when certificates come from files

	tlsLn  net.Listener
	httpLn net.Listener // nil when HTTP_ADDR is empty

	app, cover *connListener
	turn       *turnRelay
	in         *instruments
	conns      sync.WaitGroup
}

// New validates cfg, prepares certificates and binds the listeners. Nothing is served until
// Run.
func New(cfg Config) (*Edge, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("edge: bad configuration:\n%w", err)
	}
	in, err := newInstruments(cfg.Telemetry)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e := &Edge{cfg: cfg, log: cfg.Logger().With("component", "edge"), in: in}
	names := []string{cfg.Domain, cfg.AppName()}
	if cfg.TurnUpstream != "" {
		names = append(names, cfg.TurnName())
	}
	if cfg.CertFile != "" {
		fc, err := newFileCerts(cfg.CertFile, cfg.KeyFile, e.log)
		if err != nil {
			return nil, fmt.Errorf("edge: %w", err)
		}
		e.certs = fc
	} else {
		e.acme = newACMECerts(&cfg, names)
		e.certs = e.acme
	}

	if e.tlsLn = cfg.HTTPSListener; e.tlsLn == nil {
		if e.tlsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
			return nil, fmt.Errorf("edge: %s: listen on %s: %w", envHTTPSAddr, cfg.HTTPSAddr, err)
		}
	}
	if e.httpLn = cfg.HTTPListener; e.httpLn == nil && cfg.HTTPAddr != "" {
		if e.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			_ = e.tlsLn.Close()
			return nil, fmt.Errorf("edge: %s: listen on %s: %w", envHTTPAddr, cfg.HTTPAddr, err)
		}
	}
	e.app = newConnListener(e.tlsLn.Addr())
	e.cover = newConnListener(e.tlsLn.Addr())
	e.turn = newTurnRelay(cfg.TurnUpstream, e.log, in)
	return e, nil
}

// Addr is the HTTPS address.
func (e *Edge) Addr() string { return e.tlsLn.Addr().String() }

// HTTPAddr is the plain-HTTP address, or "" when there is none.
func (e *Edge) HTTPAddr() string {
	if e.httpLn == nil {
		return ""
	}
	return e.httpLn.Addr().String()
}

// known reports whether name is one the edge serves (after lower-casing).
func (e *Edge) known(name string) bool {
	return name == e.cfg.Domain || name == e.cfg.AppName() || (e.cfg.TurnUpstream != "" && name == e.cfg.TurnName())
}

// Run serves until ctx ends, then stops accepting, lets requests and relayed TURN connections
// finish for up to DrainTimeout, and closes what is left.
func (e *Edge) Run(ctx context.Context) error {
	hsts := int(e.cfg.HSTSMaxAge / time.Second)
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			// Idle keep-alive connections cost a goroutine and a TLS state each.
			IdleTimeout: 2 * time.Minute,
			ErrorLog:    slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
			BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
	}
	appSrv := newServer(secureHeaders(e.cfg.App, hsts, contentSecurityPolicy))
	coverSrv := newServer(secureHeaders(coverHandler(), hsts, ""))
	servers := []*http.Server{appSrv, coverSrv}
	errc := make(chan error, 4)
	go func() { errc <- serveHTTP(appSrv, e.app) }()
	go func() { errc <- serveHTTP(coverSrv, e.cover) }()
	running := 2
	if e.httpLn != nil {
		_, port, _ := net.SplitHostPort(e.tlsLn.Addr().String())
		httpsPort, _ := strconv.Atoi(port)
		var h http.Handler = redirectHandler(e.known, e.cfg.Domain, httpsPort)
		if e.acme != nil {
			h = e.acme.m.HTTPHandler(h)
		}
		redirSrv := newServer(h)
		servers = append(servers, redirSrv)
		go func() { errc <- serveHTTP(redirSrv, e.httpLn) }()
		running++
	}
	go func() { errc <- e.acceptTLS(ctx) }()
	running++
	e.log.Info("edge serving", "https", e.Addr(), "http", e.HTTPAddr(), "domain", e.cfg.Domain,
		"app", e.cfg.AppName(), "turn", turnName(&e.cfg), "certificates", e.certKind())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		running--
	}
	_ = e.tlsLn.Close()
	stopCtx, cancel := context.WithTimeout(context.Background(), e.cfg.DrainTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(stopCtx); err != nil {
			_ = s.Close()
		}
	}
	e.turn.drain(stopCtx)
	for range running {
		if err := <-errc; err != nil && runErr == nil {
			runErr = err
		}
	}
	e.conns.Wait()
	e.log.Info("edge stopped")
	if runErr != nil {
		return fmt.Errorf("edge: %w", runErr)
	}
	return nil
}

func serveHTTP(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func turnName(c *Config) string {
	if c.TurnUpstream == "" {
		return ""
	}
	return c.TurnName()
}

func (e *Edge) certKind() string {
	if e.acme != nil {
		dir := e.cfg.directory()
		if dir == "" {
			dir = "letsencrypt"
		}
		return "acme " + dir
	}
	return "files"
}

// tlsConfig returns the configuration for one ClientHello: the ALPN protocols depend on the
// route, certificates on the name.
func (e *Edge) tlsConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	// The ClientHello is in: the hello deadline set by handle is done, and what is left of
	// the handshake (ACME included) runs under HandshakeTimeout.
	_ = hello.Conn.SetReadDeadline(time.Time{})
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: e.certs.GetCertificate,
	}
	switch {
	case e.acme != nil && wantsACME(hello):
		cfg.NextProtos = []string{acmeALPN}
	case e.routeOf(hello.ServerName) == routeTurn:
		// TURN clients send no ALPN, or "stun.turn" (RFC 7443); neither needs an answer.
	default:
		// HTTP/2 is safe for the WebSocket: Go's server does not offer extended CONNECT
		// (RFC 8441) unless GODEBUG asks, so browsers open /ws over HTTP/1.1.
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	return cfg, nil
}
