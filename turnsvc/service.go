// Package turnsvc is the TURN/STUN server (pion/turn), which validates credentials through the
// credential service and obeys its revocations.
package turnsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// Service is the TURN service.
type Service struct {
	cfg    Config
	set    settings
	log    *slog.Logger
	srv    *platform.Server
	lns    *listeners
	tcp    *trackingListener
	tlsLn  *trackingListener
	reg    *registry
	st     *stats
	creds  *credCache
	client credv1connect.CredentialServiceClient
	tracer trace.Tracer
	// guard keeps relays off the server's own addresses but its live relays (ownguard.go).
	guard *ownGuard
	// loops are the UDP sockets pion reads, each with its lookup budget (authbudget.go);
	// otherLoop serves a UDP client no loop claims (not expected). Set by startTURN.
	loops     []*fencedPacketConn
	otherLoop *loopBudget
	ipLimit   *clientLimits
	// refusedPeers answers a peer over TURN_MAX_PERMISSIONS (refusal.go).
	refusedPeers *refusal

	// proxyLn is TURN over TCP with PROXY headers from the edge; nil when not configured.
	proxyLn *trackingListener

	draining atomic.Bool
	turnv1connect.UnimplementedTurnAdminServiceHandler
}

// New validates cfg, binds the TURN listeners and the admin listener, and builds the service.
// Nothing is served until Run.
func New(cfg Config) (*Service, error) {
	set, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("turnsvc: bad configuration:\n%w", err)
	}
	log := cfg.Logger()
	ifaces, ifErr := interfaceIPs()
	tel := cfg.Telemetry.OrDefault()
	s := &Service{
		cfg:       cfg,
		set:       set,
		log:       log,
		st:        newStats(),
		tracer:    tel.Tracer.Tracer("github.com/tuturu/tuturu/turnsvc"),
		guard:     newOwnGuard(set, ifaces, ifErr, log),
		ipLimit:   newClientLimits(),
		otherLoop: newLoopBudget(cfg.AuthTimeout),
	}
	s.refusedPeers = refusedPeers(cfg.MaxPermissions)
	s.reg = newRegistry(s.st, cfg.UserQuota, cfg.MaxAllocations, cfg.MaxPermissions)
	s.reg.onReleased = s.released
	s.reg.onGuarded = s.guarded
	opts, err := platform.ClientOptions(tel, cfg.InternalToken)
	if err != nil {
		return nil, fmt.Errorf("turnsvc: %w", err)
	}
	s.client = credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), cfg.CredsvcURL, opts...)
	s.creds = newCredCache(s.validate)
	if err := registerMetrics(tel.Meter.Meter("github.com/tuturu/tuturu/turnsvc"), s.st, s.reg); err != nil {
		return nil, fmt.Errorf("turnsvc: %w", err)
	}

	n := cfg.UDPSockets
	if n == 0 {
		n = runtime.NumCPU()
	}
	lns, err := listen(context.Background(), set.listenIP.String(), cfg.Port, n, cfg.SocketBuffer, cfg.TLSPort, set.tls, s.log)
	if err != nil {
		return nil, fmt.Errorf("turnsvc: %w", err)
	}
	s.lns = lns
	s.tcp = newTrackingListener(lns.tcp, s.reg)
	if lns.tls != nil {
		s.tlsLn = newTrackingListener(lns.tls, s.reg)
	}

	srv, err := platform.NewServer("turnsvc", cfg.Addr, cfg.Listener, s.log)
	if err != nil {
		lns.close()
		return nil, err
	}
	admin, err := platform.HandlerOptions(cfg.Telemetry, cfg.AdminToken)
	if err != nil {
		lns.close()
		return nil, err
	}
	path, h := turnv1connect.NewTurnAdminServiceHandler(s, admin...)
	srv.Register(turnv1connect.TurnAdminServiceName, path, h)
	if s.proxyLn, err = s.listenProxy(); err != nil {
		lns.close()
		return nil, fmt.Errorf("turnsvc: %w", err)
	}
	s.srv = srv
	return s, nil
}

// Addr is the address the admin service listens on.
func (s *Service) Addr() string { return s.srv.Addr().String() }

// TURNAddr is the UDP address TURN clients reach.
func (s *Service) TURNAddr() *net.UDPAddr { return s.lns.udp[0].LocalAddr().(*net.UDPAddr) }

// TURNTCPAddr is the TCP address TURN clients reach.
func (s *Service) TURNTCPAddr() *net.TCPAddr { return s.lns.tcp.Addr().(*net.TCPAddr) }

// TURNTLSAddr is the TURN-over-TLS address, or nil when TLS is not configured.
func (s *Service) TURNTLSAddr() *net.TCPAddr {
	if s.lns.tls == nil {
		return nil
	}
	return s.lns.tls.Addr().(*net.TCPAddr)
}

// Run serves TURN and the admin RPCs until ctx ends. Then it refuses new allocations, lets
// live ones relay for up to DrainTimeout, and closes everything.
func (s *Service) Run(ctx context.Context) error {
	ts, err := s.startTURN()
	if err != nil {
		s.lns.close()
		if s.proxyLn != nil {
			_ = s.proxyLn.Close()
		}
		return fmt.Errorf("turnsvc: start TURN: %w", err)
	}
	s.log.Info("TURN serving", "udp", s.TURNAddr().String(), "udp_sockets", len(s.lns.udp),
		"tcp", s.TURNTCPAddr().String(), "tls", addrString(s.TURNTLSAddr()),
		"external_ip", s.cfg.ExternalIP, "relay_ports", fmt.Sprintf("%d-%d", s.cfg.MinPort, s.cfg.MaxPort), "realm", s.cfg.Realm)

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.watchRevocations(bg) })
	wg.Go(func() { s.sweepLoop(bg) })
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	adminErr := make(chan error, 1)
	go func() { adminErr <- s.srv.Serve(adminCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-adminErr:
		adminErr <- nil
	}
	s.drain()
	closeErr := ts.Close()
	s.tcp.closeConns()
	if s.tlsLn != nil {
		s.tlsLn.closeConns()
	}
	if s.proxyLn != nil {
		s.proxyLn.closeConns()
	}
	stopBG()
	stopAdmin()
	wg.Wait()
	if err := <-adminErr; err != nil && runErr == nil {
		runErr = err
	}
	if closeErr != nil {
		s.log.Debug("closing TURN sockets", "err", closeErr)
	}
	if runErr != nil {
		return fmt.Errorf("turnsvc: %w", runErr)
	}
	return nil
}

// drain refuses new allocations and waits for the live ones to end, at most DrainTimeout.
func (s *Service) drain() {
	s.draining.Store(true)
	live := s.reg.count()
	s.log.Info("draining: new allocations refused", "live", live, "timeout", s.cfg.DrainTimeout.String())
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for s.reg.count() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := s.reg.count(); n > 0 {
		s.log.Info("drain timeout: closing live allocations", "live", n)
	}
	s.reg.closeAll(reasonShutdown)
}

// startTURN starts pion on the bound sockets.
func (s *Service) startTURN() (*turn.Server, error) {
	gen := &relayGenerator{
		inner: &turn.RelayAddressGeneratorPortRange{
			RelayAddress: s.set.externalIP,
			Address:      s.set.listenIP.String(),
			MinPort:      uint16(s.cfg.MinPort),
			MaxPort:      uint16(s.cfg.MaxPort),
			// The range may be nearly full; try harder than pion's default 10 before failing.
			MaxRetries: 64,
		},
		reg:     s.reg,
		bitrate: s.cfg.MaxBitrate * 1000 / 8,
		guard:   s.guard,
	}
	cfg := turn.ServerConfig{
		Realm:         s.cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		LoggerFactory: pionLogs{s.log},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: s.allocationCreated,
			OnChannelCreated: func(_, _ net.Addr, _, _, _ string, relay, peer net.Addr, number uint16) {
				s.reg.channelCreated(relay, peer, number)
			},
			OnChannelDeleted: func(_, _ net.Addr, _, _, _ string, relay, peer net.Addr, number uint16) {
				s.reg.channelDeleted(relay, peer, number)
			},
			OnPermissionDeleted: func(src, _ net.Addr, _, _, _ string, _ net.Addr, peer net.IP) {
				if ip, ok := netip.AddrFromSlice(peer); ok {
					s.reg.removePeer(src, ip.Unmap())
				}
			},
		},
	}
	s.reg.udpOut, _ = s.lns.udp[0].(*net.UDPConn)
	for _, pc := range s.lns.udp {
		fc := newFencedPacketConn(pc, s.reg)
		fc.budget = newLoopBudget(s.cfg.AuthTimeout)
		s.loops = append(s.loops, fc)
		cfg.PacketConnConfigs = append(cfg.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: fc, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	cfg.ListenerConfigs = append(cfg.ListenerConfigs, turn.ListenerConfig{
		Listener: s.tcp, RelayAddressGenerator: gen, PermissionHandler: s.permit,
	})
	if s.tlsLn != nil {
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tlsLn, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	if s.proxyLn != nil {
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, turn.ListenerConfig{
			Listener: s.proxyLn, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	return turn.NewServer(cfg)
}

// authenticate is pion's AuthHandler. It runs on the read loop of the socket the request came
// in on: answers come from a live allocation or the cache; only a username never seen before
// waits for credsvc, within the lookup budgets (authbudget.go) and at most AuthTimeout.
func (s *Service) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	if key, ok := s.reg.liveKey(src, username); ok {
		s.st.authResult(resultCached)
		return key, true
	}
	if realm != s.cfg.Realm {
		s.st.authResult(resultMalformed)
		return nil, false
	}
	v, hit := s.creds.lookup(username)
	if !hit {
		v = s.lookupBudgeted(username, realm, src)
	}
	result := v.result
	if hit && v.valid() {
		result = resultCached
	}
	s.st.authResult(result)
	if !v.valid() {
		s.log.Debug("TURN credential refused", "result", v.result, "client", src.String())
		return nil, false
	}
	return v.key, true
}

// lookupBudgeted asks credsvc about a username the cache does not know, unless the username
// cannot be valid or the lookup is over budget: the read loop's share of waiting time, the
// client address's rate, the calls in flight. Over budget it answers throttled at once.
func (s *Service) lookupBudgeted(username, realm string, src net.Addr) verdict {
	if v, bad := s.creds.refuseLocally(username); bad {
		return v
	}
	now := time.Now()
	wait := s.cfg.AuthTimeout
	loop := s.loopOf(src)
	if loop != nil {
		if wait = min(wait, loop.grant(now)); wait == 0 {
			return verdict{result: resultThrottled}
		}
	}
	if !s.ipLimit.allow(src, now) {
		return verdict{result: resultThrottled}
	}
	v := s.creds.resolve(username, realm, wait)
	if loop != nil {
		loop.spend(time.Since(now))
	}
	return v
}

// loopOf returns the budget of the UDP read loop handling src's request: the socket whose
// last datagram handed to pion came from src (a read loop handles one datagram at a time, and
// fencedPacketConn hands out one *net.UDPAddr per client). TCP and TLS clients have a read
// loop of their own per connection, whose waiting stalls no one else: nil.
func (s *Service) loopOf(src net.Addr) *loopBudget {
	u, ok := src.(*net.UDPAddr)
	if !ok {
		return nil
	}
	for _, c := range s.loops {
		if c.cur.Load() == u {
			return c.budget
		}
	}
	return s.otherLoop
}

// quota is pion's QuotaHandler, called for Allocate only.
func (s *Service) quota(username, _ string, _ net.Addr) bool {
	switch {
	case s.draining.Load():
		return false
	case s.reg.userCount(username) >= s.cfg.UserQuota:
		s.log.Debug("allocation refused: per-username quota", "quota", s.cfg.UserQuota)
		return false
	case s.reg.full():
		s.log.Warn("allocation refused: TURN_MAX_ALLOCATIONS reached", "max", s.cfg.MaxAllocations)
		return false
	}
	return true
}

// permit is pion's PermissionHandler, called for CreatePermission and ChannelBind. Each refusal
// is recorded for the error response that follows (refusal.go).
func (s *Service) permit(src net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		s.st.peersDenied.Add(1)
		s.reg.refuse(src, refusedPolicy)
		return false
	}
	if neverRelayable(ip) {
		s.st.peersDenied.Add(1)
		s.reg.refuse(src, refusedGroup)
		s.log.Debug("peer refused: multicast or broadcast", "client", src.String(), "peer", ip.String())
		return false
	}
	if !s.set.policy.Allowed(ip) && !s.set.ownRelayIP(ip) {
		s.st.peersDenied.Add(1)
		s.reg.refuse(src, refusedPolicy)
		s.log.Debug("peer refused by the peer policy", "client", src.String(), "peer", ip.String())
		return false
	}
	if !s.reg.addPeer(src, ip.Unmap()) {
		s.reg.refuse(src, s.refusedPeers)
		s.log.Debug("peer refused: TURN_MAX_PERMISSIONS reached", "client", src.String(), "max", s.cfg.MaxPermissions)
		return false
	}
	return true
}

// allocationCreated attaches pion's new allocation to its owner, and closes it at once if a
// concurrent Allocate put the username over quota or a revocation arrived in between.
func (s *Service) allocationCreated(src, dst net.Addr, _, username, _ string, relay net.Addr, _ int) {
	udp, ok := relay.(*net.UDPAddr)
	if !ok {
		return
	}
	v, _ := s.creds.lookup(username)
	a, ok := s.reg.attach(udp.Port, src, s.protocol(src, dst), username, v.participant, v.key)
	if a == nil {
		return
	}
	switch {
	case !ok:
		a.close(reasonQuota)
	case s.creds.isRevoked(username, v.participant):
		a.close(reasonRevoked)
	case !v.valid():
		// Authenticated a moment ago, yet the cache no longer vouches for it: a participant
		// revocation dropped the entry (so its participant is unknown here and the check
		// above cannot match), or the credential expired just now.
		reason := reasonRevoked
		if v.result == resultExpired {
			reason = reasonEnded
		}
		a.close(reason)
	case s.draining.Load():
		a.close(reasonShutdown)
	default:
		s.log.Debug("allocation created", "protocol", a.protocol, "client", a.client, "relay", a.relay.String(), "participant", a.participant)
	}
}

// guarded logs the first datagram of an allocation dropped by the own-address guard
// (ownguard.go).
func (s *Service) guarded(a *allocation, peer netip.AddrPort) {
	// Only the relay address: a.client is set by attach, which this datagram may race.
	s.log.Debug("relay to a guarded peer refused (the server's own address off its relay ports, a broadcast or multicast)", "relay", a.relay.String(), "peer", peer.String())
}

func (s *Service) released(a *allocation, reason string) {
	s.log.Debug("allocation closed", "reason", reason, "client", a.client, "relay", a.relay.String(), "participant", a.participant)
}

func (s *Service) protocol(src, dst net.Addr) string {
	if _, ok := src.(*net.UDPAddr); ok {
		return "udp"
	}
	if s.lns.tls != nil && dst.String() == s.lns.tls.Addr().String() {
		return "tls"
	}
	// TURN relayed by the edge came over TLS; the edge terminated it.
	if s.proxyLn != nil && dst.String() == s.proxyLn.Addr().String() {
		return "tls"
	}
	return "tcp"
}

// sweepLoop forgets expired cache entries and revocations.
func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.creds.sweep()
		}
	}
}

func addrString(a *net.TCPAddr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// trackingListener remembers accepted connections, so that shutdown can close them: pion's
// per-connection read loops only end when their connection does.
type trackingListener struct {
	net.Listener
	reg   *registry // its fence, and the error responses (refusal.go)
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// firstRead bounds a new connection's silence (TLS handshake included): one that says
	// nothing is not a TURN client and must not hold a socket and a goroutine forever.
	firstRead time.Duration
	// idle is above the longest allocation lifetime (10 min), so a client that refreshes
	// never reaches it, while an abandoned connection is closed.
	idle time.Duration
}

func newTrackingListener(l net.Listener, reg *registry) *trackingListener {
	return &trackingListener{Listener: l, reg: reg, conns: map[net.Conn]struct{}{},
		firstRead: 10 * time.Second, idle: 15 * time.Minute}
}

// Accept waits out transient errors (out of file descriptors): pion's accept loop returns on
// the first error, which would end TURN over TCP or TLS for good.
func (l *trackingListener) Accept() (net.Conn, error) {
	var c net.Conn
	var err error
	for pause := time.Duration(0); ; {
		if c, err = l.Listener.Accept(); err == nil {
			break
		}
		if !platform.AcceptRetryable(err) {
			return nil, err
		}
		pause = platform.AcceptBackoff(pause)
		time.Sleep(pause)
	}
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return &trackedConn{Conn: c, l: l}, nil
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l     *trackingListener
	spoke bool // pion reads each connection from one goroutine
}

// Read applies the first-message and idle deadlines.
func (c *trackedConn) Read(p []byte) (int, error) {
	d := c.l.idle
	if !c.spoke {
		d = c.l.firstRead
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.spoke = true
	}
	return n, err
}

// Write marks the fence and gives error responses their ERROR-CODE (refusal.go): pion's
// STUNConn writes one STUN message or ChannelData frame per call.
func (c *trackedConn) Write(p []byte) (int, error) {
	out := p
	if isErrorResponse(p) {
		out = c.l.reg.answerError(p, c.RemoteAddr())
	}
	n, err := c.Conn.Write(out)
	c.l.reg.fence.mark(out)
	if err == nil {
		n = len(p)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c.Conn)
	c.l.mu.Unlock()
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
