package turnsvc

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tuturu/tuturu/internal/proxyproto"
)

// proxyHeaderTimeout bounds how long a connection on the PROXY-protocol listener may take to
// send its header; the edge sends it at once.
const proxyHeaderTimeout = 10 * time.Second

// listenProxy binds the TURN-over-TCP listener whose connections start with a PROXY protocol
// header (from the edge, which terminates TURN over TLS on 443), so that allocations, logs
// and limits see the client's real address. Nil when not configured.
func (s *Service) listenProxy() (*trackingListener, error) {
	ln := s.cfg.ProxyProtocolListener
	if ln == nil {
		if s.cfg.ProxyProtocolAddr == "" {
			return nil, nil
		}
		var err error
		if ln, err = net.Listen("tcp", s.cfg.ProxyProtocolAddr); err != nil {
			return nil, fmt.Errorf("TURN_PROXY_PROTOCOL_ADDR: listen on %s: %w", s.cfg.ProxyProtocolAddr, err)
		}
	}
	return newTrackingListener(proxyproto.NewListener(ln, proxyHeaderTimeout, s.log), s.reg), nil
}

// TURNProxyAddr is the PROXY-protocol TURN-over-TCP address, or nil when there is none.
func (s *Service) TURNProxyAddr() net.Addr {
	if s.proxyLn == nil {
		return nil
	}
	return s.proxyLn.Addr()
}

// checkProxyAddr accepts "" or a loopback ip:port: whoever reaches this listener chooses the
// client address turnsvc believes, so only the edge on the same host may.
func checkProxyAddr(addr string) error {
	if addr == "" {
		return nil
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("%q must be a loopback address such as 127.0.0.1:9104 (whoever connects there chooses the client address turnsvc believes)", addr)
	}
	return nil
}
