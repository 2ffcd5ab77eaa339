package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// flutterCallPeer is a pion/webrtc peer that signals like the flutter-webrtc demo app: it
// registers with `new`, offers to an id from `peers`, and addresses every offer, answer and
// candidate to that id with its own id as `from`.
type flutterCallPeer struct {
	t    *testing.T
	name string // also the peer id
	pc   *webrtc.PeerConnection
	ws   *websocket.Conn

	mu      sync.Mutex // orders writes: an offer goes out before its own candidates
	remote  string     // the peer id of the other side, once known
	session string
	cands   remoteCandidates

	errs      chan error
	peers     chan []flutterPeerInfo
	connected chan struct{}
	channels  chan *webrtc.DataChannel
}

// newFlutterCallPeer connects, registers id and builds a peer connection with cfg.
func newFlutterCallPeer(t *testing.T, s *stack, id string, cfg webrtc.Configuration) *flutterCallPeer {
	t.Helper()
	p := &flutterCallPeer{
		t: t, name: id,
		errs:      make(chan error, 16),
		peers:     make(chan []flutterPeerInfo, 16),
		connected: make(chan struct{}),
		channels:  make(chan *webrtc.DataChannel, 4),
	}
	pc := newTestPeerConnection(t, id, loopbackAPI(), cfg, p.connected)
	p.pc = pc
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.sendLocked("candidate", map[string]any{
			"to": p.remote, "from": p.name, "session_id": p.session,
			"candidate": map[string]any{"sdpMLineIndex": init.SDPMLineIndex, "sdpMid": init.SDPMid, "candidate": init.Candidate},
		})
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { p.channels <- dc })

	w := dialWS(t, s, id, nil)
	p.ws = w.c
	p.mu.Lock()
	p.sendLocked("new", map[string]any{"id": id, "name": id, "user_agent": "pion/webrtc"})
	p.mu.Unlock()
	go p.loop()
	return p
}

func (p *flutterCallPeer) sendLocked(typ string, data any) {
	b, err := json.Marshal(map[string]any{"type": typ, "data": data})
	if err != nil {
		p.fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := p.ws.Write(ctx, websocket.MessageText, b); err != nil {
		p.fail(fmt.Errorf("send %s: %w", typ, err))
	}
}

func (p *flutterCallPeer) fail(err error) {
	select {
	case p.errs <- fmt.Errorf("%s: %w", p.name, err):
	default:
	}
}

func (p *flutterCallPeer) loop() {
	for {
		_, b, err := p.ws.Read(context.Background())
		if err != nil {
			return
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil {
			p.fail(fmt.Errorf("bad JSON from gateway: %s", b))
			continue
		}
		p.handle(m, b)
	}
}

// signalData is the data of an offer, answer or candidate as the demo app sends it.
type signalData struct {
	To          string                     `json:"to"`
	From        string                     `json:"from"`
	SessionID   string                     `json:"session_id"`
	Description *webrtc.SessionDescription `json:"description"`
	Candidate   *webrtc.ICECandidateInit   `json:"candidate"`
}

func (p *flutterCallPeer) handle(m serverMsg, raw []byte) {
	switch m.Type {
	case "peers":
		var list []flutterPeerInfo
		if err := json.Unmarshal(m.Data, &list); err != nil {
			p.fail(err)
			return
		}
		p.peers <- list
	case "offer", "answer", "candidate":
		var d signalData
		if err := json.Unmarshal(m.Data, &d); err != nil {
			p.fail(err)
			return
		}
		if d.To != p.name {
			p.fail(fmt.Errorf("got a %s addressed to %q", m.Type, d.To))
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		switch m.Type {
		case "offer":
			p.remote, p.session = d.From, d.SessionID
			ans, err := p.cands.answer(p.pc, *d.Description)
			if err != nil {
				p.fail(err)
				return
			}
			p.sendLocked("answer", map[string]any{"to": p.remote, "from": p.name, "session_id": p.session,
				"description": map[string]string{"sdp": ans.SDP, "type": ans.Type.String()}})
		case "answer":
			if err := p.cands.setRemote(p.pc, *d.Description); err != nil {
				p.fail(err)
			}
		case "candidate":
			if err := p.cands.add(p.pc, *d.Candidate); err != nil {
				p.fail(err)
			}
		}
	case "keepalive", "leave", "bye":
	default:
		p.fail(fmt.Errorf("unexpected message %s", raw))
	}
}

// waitPeers waits for a peers list with n entries.
func (p *flutterCallPeer) waitPeers(n int) {
	p.t.Helper()
	deadline := time.After(connectTimeout)
	for {
		select {
		case list := <-p.peers:
			if len(list) == n {
				return
			}
		case err := <-p.errs:
			p.t.Fatal(err)
		case <-deadline:
			p.t.Fatalf("%s: no peers list of %d", p.name, n)
		}
	}
}

// call offers to the peer id `to` with a data channel, as the demo's invite() does.
func (p *flutterCallPeer) call(to string) *webrtc.DataChannel {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remote, p.session = to, p.name+"-"+to
	dc, err := p.pc.CreateDataChannel("chat", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	o, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(o)
	}
	if err != nil {
		p.t.Fatalf("offer: %v", err)
	}
	p.sendLocked("offer", map[string]any{"to": to, "from": p.name, "session_id": p.session, "media": "data",
		"description": map[string]string{"sdp": o.SDP, "type": o.Type.String()}})
	return dc
}

func (p *flutterCallPeer) waitConnected() {
	p.t.Helper()
	select {
	case <-p.connected:
	case err := <-p.errs:
		p.t.Fatal(err)
	case <-time.After(connectTimeout):
		p.t.Fatalf("%s: not connected (state %s)", p.name, p.pc.ConnectionState())
	}
}

func (p *flutterCallPeer) remoteChannel() *webrtc.DataChannel {
	p.t.Helper()
	select {
	case dc := <-p.channels:
		return dc
	case err := <-p.errs:
		p.t.Fatal(err)
	case <-time.After(connectTimeout):
		p.t.Fatalf("%s: no data channel", p.name)
	}
	return nil
}

// TestFlutterCall: two pion peers speaking the Flutter dialect connect through tuturu on
// loopback and exchange data both ways.
func TestFlutterCall(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	a := newFlutterCallPeer(t, s, "alice", webrtc.Configuration{})
	a.waitPeers(1)
	b := newFlutterCallPeer(t, s, "bob", webrtc.Configuration{})
	b.waitPeers(2)
	a.waitPeers(2)
	chat := a.call("bob")
	a.waitConnected()
	b.waitConnected()
	exchange(t, chat, b.remoteChannel(), "flutter", 10)
}

// TestFlutterCallRelayOnly: the same call with TURN credentials from /api/turn and a relay-only
// ICE policy: both ends' selected candidates are relays on turnsvc, which accepted the
// credentials through credsvc.
func TestFlutterCallRelayOnly(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	cfgFor := func(user string) webrtc.Configuration {
		c := fetchTurn(t, s, user) // as the demo app does before connecting
		return webrtc.Configuration{
			ICETransportPolicy: webrtc.ICETransportPolicyRelay,
			ICEServers:         []webrtc.ICEServer{{URLs: c.URIs[:1], Username: c.Username, Credential: c.Password}},
		}
	}
	a := newFlutterCallPeer(t, s, "alice", cfgFor("alice"))
	a.waitPeers(1)
	b := newFlutterCallPeer(t, s, "bob", cfgFor("bob"))
	b.waitPeers(2)
	a.waitPeers(2)
	chat := a.call("bob")
	a.waitConnected()
	b.waitConnected()
	exchange(t, chat, b.remoteChannel(), "relayed", 10)
	for _, p := range []*flutterCallPeer{a, b} {
		pair, err := selectedPair(p.pc)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Fatalf("%s: local candidate %s, want relay", p.name, pair.Local.Typ)
		}
	}
}
