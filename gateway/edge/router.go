package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/tuturu/tuturu/internal/platform"
)

const acmeALPN = acme.ALPNProto

func wantsACME(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, acmeALPN)
}

// route is where a connection goes once its handshake names a host.
type route int

const (
	routeCover route = iota
	routeApp
	routeTurn
)

func (e *Edge) routeOf(serverName string) route {
	switch strings.ToLower(serverName) {
	case e.cfg.AppName():
		return routeApp
	case e.cfg.TurnName():
		if e.cfg.TurnUpstream != "" {
			return routeTurn
		}
	}
	return routeCover
}

// acceptTLS accepts connections on the HTTPS port and routes each after its handshake.
func (e *Edge) acceptTLS(ctx context.Context) error {
	base := &tls.Config{GetConfigForClient: e.tlsConfig}
	var pause time.Duration
	for {
		c, err := e.tlsLn.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			// Out of file descriptors is transient: returning would take the gateway down.
			if platform.AcceptRetryable(err) {
				pause = platform.AcceptBackoff(pause)
				e.log.Warn("accept failed on the HTTPS port; retrying", "err", err, "retry_in", pause.String())
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		e.conns.Add(1)
		go func() {
			defer e.conns.Done()
			e.handle(ctx, c, base)
		}()
	}
}

// handle completes the handshake and hands the connection to its route. The ClientHello must
// arrive within HelloTimeout (a read deadline, which tlsConfig clears once the hello is read),
// the whole handshake within HandshakeTimeout; routed connections carry no deadline of ours.
func (e *Edge) handle(ctx context.Context, c net.Conn, base *tls.Config) {
	_ = c.SetReadDeadline(time.Now().Add(e.cfg.HelloTimeout))
	tc := tls.Server(c, base)
	hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		// Scanners and clients that do not trust the name's certificate end here; at debug
		// level only, since anyone can cause it.
		e.log.Debug("TLS handshake failed", "err", err)
		e.in.handshakes.Add(ctx, 1)
		_ = tc.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{}) // tlsConfig cleared it already; routed connections must not inherit it
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == acmeALPN {
		e.in.routed(ctx, labelACME)
		_ = tc.Close() // the CA only checks the certificate
		return
	}
	switch e.routeOf(st.ServerName) {
	case routeApp:
		e.in.routed(ctx, labelApp)
		e.app.deliver(tc)
	case routeTurn:
		e.in.routed(ctx, labelTurn)
		e.turn.relay(ctx, tc)
	default:
		e.in.routed(ctx, labelCover)
		e.cover.deliver(tc)
	}
}

// connListener is a net.Listener fed with connections that are already accepted and
// handshaken, so that an http.Server can serve one route.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to the server, or closes it when the server has stopped.
func (l *connListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
