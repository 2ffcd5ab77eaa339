package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// callPeer is a pion/webrtc peer that signals through the gateway's browser dialect, the way
// the web client does: the first member offers on peer-joined, candidates trickle both ways.
type callPeer struct {
	t    *testing.T
	name string
	s    *stack
	pc   *webrtc.PeerConnection
	info joinInfo

	mu      sync.Mutex // orders writes: an offer goes out before its own candidates
	ws      *websocket.Conn
	retired *websocket.Conn // the socket a resume moved away from
	cands   remoteCandidates
	chat    *webrtc.DataChannel // created by the offerer

	chatReady chan *webrtc.DataChannel

	errs      chan error
	peerLeft  chan struct{}
	connected chan struct{}
	channels  chan *webrtc.DataChannel // data channels opened by the remote side
	answers   chan struct{}            // one per answer applied (offerer)
	loopDone  chan struct{}
}

// loopbackAPI keeps ICE on 127.0.0.1: no other interface, no mDNS, loopback candidates on.
func loopbackAPI() *webrtc.API {
	se := loopbackSettings()
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// loopbackSettings are loopbackAPI's settings, for tests that add their own.
func loopbackSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// newCallPeer connects to /ws and joins pin; the peer connection uses the ICE servers and
// policy from the join answer.
func newCallPeer(t *testing.T, s *stack, name, pin string) *callPeer {
	t.Helper()
	return newCallPeerWith(t, s, name, pin, func(info joinInfo) (*webrtc.API, webrtc.Configuration) {
		return loopbackAPI(), iceConfig(info)
	})
}

// iceConfig is the peer connection configuration a join or resume answer asks for.
func iceConfig(info joinInfo) webrtc.Configuration {
	cfg := webrtc.Configuration{ICETransportPolicy: webrtc.NewICETransportPolicy(info.ICETransportPolicy)}
	for _, s := range info.ICEServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return cfg
}

// newCallPeerWith joins pin, then builds the peer connection from what setup makes of the
// join answer.
func newCallPeerWith(t *testing.T, s *stack, name, pin string, setup func(joinInfo) (*webrtc.API, webrtc.Configuration)) *callPeer {
	t.Helper()
	p := &callPeer{
		t: t, name: name, s: s,
		errs:      make(chan error, 16),
		peerLeft:  make(chan struct{}, 4),
		connected: make(chan struct{}),
		channels:  make(chan *webrtc.DataChannel, 4),
		answers:   make(chan struct{}, 16),
		chatReady: make(chan *webrtc.DataChannel, 1),
	}
	w := dialWS(t, s, name, nil)
	p.ws = w.c
	p.info = w.join(pin)
	p.newPeerConnection(setup(p.info))
	p.startLoop()
	return p
}

func (p *callPeer) newPeerConnection(api *webrtc.API, cfg webrtc.Configuration) {
	pc := newTestPeerConnection(p.t, p.name, api, cfg, p.connected)
	p.pc = pc
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		b, _ := json.Marshal(c.ToJSON())
		p.mu.Lock()
		defer p.mu.Unlock()
		p.sendLocked(`{"type":"ice-candidate","data":` + string(b) + `}`)
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { p.channels <- dc })
}

func (p *callPeer) sendLocked(msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := p.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		p.fail(fmt.Errorf("send: %w", err))
	}
}

func (p *callPeer) fail(err error) {
	select {
	case p.errs <- fmt.Errorf("%s: %w", p.name, err):
	default:
	}
}

// startLoop reads signaling messages until the socket ends.
func (p *callPeer) startLoop() {
	done := make(chan struct{})
	p.loopDone = done
	ws := p.ws
	go func() {
		defer close(done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m serverMsg
			if err := json.Unmarshal(b, &m); err != nil {
				p.fail(fmt.Errorf("bad JSON from gateway: %s", b))
				continue
			}
			p.handle(ws, m, b)
		}
	}()
}

// handle acts on a message that arrived on ws.
func (p *callPeer) handle(ws *websocket.Conn, m serverMsg, raw []byte) {
	switch m.Type {
	case "peer-joined":
		p.offer()
	case "offer":
		var sd webrtc.SessionDescription
		if err := json.Unmarshal(m.Data, &sd); err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		ans, err := p.cands.answer(p.pc, sd)
		if err != nil {
			p.fail(err)
			return
		}
		b, _ := json.Marshal(ans)
		p.sendLocked(`{"type":"answer","data":` + string(b) + `}`)
	case "answer":
		var sd webrtc.SessionDescription
		if err := json.Unmarshal(m.Data, &sd); err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.cands.setRemote(p.pc, sd); err != nil {
			p.fail(err)
			return
		}
		select {
		case p.answers <- struct{}{}:
		default:
		}
	case "ice-candidate":
		var c webrtc.ICECandidateInit
		if err := json.Unmarshal(m.Data, &c); err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.cands.add(p.pc, c); err != nil {
			p.fail(err)
		}
	case "peer-left":
		p.peerLeft <- struct{}{}
	case "pong":
	case "error":
		// A resume on a new socket moves the slot there and ends the old one this way.
		p.mu.Lock()
		moved := p.retired == ws
		p.mu.Unlock()
		if !moved || m.Code != "SERVICE_UNAVAILABLE" {
			p.fail(fmt.Errorf("error from the gateway: %s", raw))
		}
	default:
		p.fail(fmt.Errorf("unexpected message %s", raw))
	}
}

// newTestPeerConnection creates a peer connection that is closed when the test ends and
// closes connected the first time it connects.
func newTestPeerConnection(t *testing.T, name string, api *webrtc.API, cfg webrtc.Configuration, connected chan struct{}) *webrtc.PeerConnection {
	t.Helper()
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		t.Fatalf("%s: new peer connection: %v", name, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	return pc
}

// remoteCandidates holds the candidates that arrive before the remote description, which
// pion cannot add yet. Callers hold their peer's lock.
type remoteCandidates struct {
	ready   bool
	pending []webrtc.ICECandidateInit
}

func (r *remoteCandidates) add(pc *webrtc.PeerConnection, c webrtc.ICECandidateInit) error {
	if !r.ready {
		r.pending = append(r.pending, c)
		return nil
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("add candidate: %w", err)
	}
	return nil
}

// setRemote sets the remote description and adds the candidates held back for it; later
// candidates go straight to pc.
func (r *remoteCandidates) setRemote(pc *webrtc.PeerConnection, sd webrtc.SessionDescription) error {
	if err := pc.SetRemoteDescription(sd); err != nil {
		return fmt.Errorf("set %s: %w", sd.Type, err)
	}
	r.ready = true
	var errs []error
	for _, c := range r.pending {
		if err := pc.AddICECandidate(c); err != nil {
			errs = append(errs, fmt.Errorf("add candidate: %w", err))
		}
	}
	r.pending = nil
	return errors.Join(errs...)
}

// answer takes a remote offer and returns the local answer, already set.
func (r *remoteCandidates) answer(pc *webrtc.PeerConnection, offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	if err := r.setRemote(pc, offer); err != nil {
		return webrtc.SessionDescription{}, err
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("answer: %w", err)
	}
	return ans, nil
}

// offer creates an offer (a new one on renegotiation) and sends it before any of its
// candidates.
func (p *callPeer) offer() { p.offerWith(nil) }

// restartICE offers an ICE restart: new ICE credentials, candidates gathered again with the
// peer connection's current ICE servers.
func (p *callPeer) restartICE() { p.offerWith(&webrtc.OfferOptions{ICERestart: true}) }

func (p *callPeer) offerWith(opts *webrtc.OfferOptions) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.chat == nil {
		dc, err := p.pc.CreateDataChannel("chat", nil)
		if err != nil {
			p.fail(err)
			return
		}
		p.chat = dc
		p.chatReady <- dc
	}
	o, err := p.pc.CreateOffer(opts)
	if err == nil {
		err = p.pc.SetLocalDescription(o)
	}
	if err != nil {
		p.fail(fmt.Errorf("offer: %w", err))
		return
	}
	b, _ := json.Marshal(o)
	p.sendLocked(`{"type":"offer","data":` + string(b) + `}`)
}

// waitConnected waits for the peer connection, failing on any signaling error.
func (p *callPeer) waitConnected(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.connected:
	case err := <-p.errs:
		p.t.Fatal(err)
	case <-time.After(d):
		p.t.Fatalf("%s: not connected after %v (state %s)", p.name, d, p.pc.ConnectionState())
	}
}

// dropSocket kills the signaling socket without a close frame, as a network change would.
func (p *callPeer) dropSocket() {
	_ = p.ws.CloseNow()
	<-p.loopDone
}

// hangUp leaves the room for good, as the Hang up button does.
func (p *callPeer) hangUp() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendLocked(`{"type":"leave"}`)
}

// resume opens a new socket and takes the slot back with the latest resume token. The old
// socket may have dropped, or still be open (a renewal of the TURN credentials, as the web
// client makes before an ICE restart): the gateway then ends it, and its loop ignores that.
func (p *callPeer) resume() joinInfo {
	p.t.Helper()
	w := dialWS(p.t, p.s, p.name+"-resumed", nil)
	p.mu.Lock()
	p.retired = p.ws
	p.mu.Unlock()
	w.send(`{"type":"resume","token":"` + p.info.ResumeToken + `"}`)
	info := w.joinAnswer("resumed")
	p.mu.Lock()
	p.ws = w.c
	p.mu.Unlock()
	p.info.ResumeToken = info.ResumeToken // for the next drop
	p.startLoop()
	return info
}

// remoteChannel waits for a data channel label from the remote side.
func (p *callPeer) remoteChannel(label string, d time.Duration) *webrtc.DataChannel {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case dc := <-p.channels:
			if dc.Label() == label {
				return dc
			}
		case err := <-p.errs:
			p.t.Fatal(err)
		case <-deadline:
			p.t.Fatalf("%s: no data channel %q after %v", p.name, label, d)
		}
	}
}
