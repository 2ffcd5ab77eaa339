package edge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tuturu/tuturu/internal/proxyproto"
)

// turnRelay pipes TURN over TLS, decrypted here, to turnsvc's TURN-over-TCP listener that
// reads PROXY protocol headers, so turnsvc sees (and rate-limits, logs, lists) the client's
// real address rather than the edge's.
//
// Terminating TLS here rather than passing it through lets one certificate machinery (ACME or
// files) serve every name, and keeps turnsvc free of certificates.
type turnRelay struct {
	upstream string
	log      *slog.Logger
	in       *instruments

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTurnRelay(upstream string, log *slog.Logger, in *instruments) *turnRelay {
	return &turnRelay{upstream: upstream, log: log, in: in, conns: map[net.Conn]struct{}{}}
}

// dialTimeout bounds the dial to turnsvc on loopback, which answers at once or not at all.
const dialTimeout = 5 * time.Second

// relay runs until either side closes.
func (r *turnRelay) relay(ctx context.Context, client net.Conn) {
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(ctx, "tcp", r.upstream)
	if err != nil {
		r.log.Warn("TURN over TLS: turnsvc unreachable", "upstream", r.upstream, "err", err)
		_ = client.Close()
		return
	}
	if !r.track(client, up) {
		return
	}
	defer r.untrack(client, up)
	r.in.relays.Add(ctx, 1)
	defer r.in.relays.Add(context.WithoutCancel(ctx), -1)
	hdr := proxyproto.AppendV2(nil, addrPort(client.RemoteAddr()), addrPort(client.LocalAddr()))
	if _, err := up.Write(hdr); err != nil {
		r.log.Warn("TURN over TLS: writing the PROXY header failed", "err", err)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side ending ends the relay: TURN over TCP has no use for half-closed streams.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(up, client)
	go pipe(client, up)
	<-done
	<-done
}

func (r *turnRelay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil { // draining
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	r.wg.Add(1)
	return true
}

func (r *turnRelay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	for _, c := range cs {
		_ = c.Close()
		delete(r.conns, c)
	}
	r.mu.Unlock()
	r.wg.Done()
}

// drain refuses new relays and waits for live ones to end until ctx ends, then closes them.
func (r *turnRelay) drain(ctx context.Context) {
	r.mu.Lock()
	live := r.conns
	r.conns = nil
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	r.log.Info("closing TURN over TLS connections still open after the drain timeout", "live", len(live)/2)
	for c := range live {
		_ = c.Close()
	}
	<-done
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
