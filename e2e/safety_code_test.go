package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The safety code on the call screen, in real Chromium: the same words on both pages of an
// honest call, different words when the signaling path swaps a DTLS fingerprint.

// safetyWordCount is how many words the code has (CODE_WORDS in web/static/js/safety.js).
const safetyWordCount = 6

// TestSafetyCodeMatches: two pages in a direct call show the same safety code, made of words
// from the list, and each page's remote fingerprint is the other's own; the code is not shown
// while waiting, and goes away when the other person leaves.
func TestSafetyCodeMatches(t *testing.T) {
	t.Parallel()
	s, b, ok := browserScenario(t, stackOptions{})
	if !ok {
		return
	}
	url := s.GatewayURL + "/?debug=1"
	pin := nextPIN()

	alice := b.openPage("alice", url, 1024, 720, false)
	alice.join(pin)
	alice.waitPhase("waiting", uiTimeout)
	if shown := eval[bool](alice, `!document.getElementById('safety').hidden`); shown {
		t.Fatalf("alice: a safety code is shown while waiting alone: %q", alice.text("safety-words"))
	}
	bob := b.openPage("bob", url, 390, 844, true)
	bob.join(pin)
	for _, p := range []*page{alice, bob} {
		p.waitPhase("call", uiTimeout)
		waitSafetyCode(p)
	}
	alice.expectRemoteFrames()

	aw, bw := safetyWords(alice), safetyWords(bob)
	t.Logf("safety code: alice %q, bob %q", aw, bw)
	if aw != bw {
		t.Fatalf("an honest call shows different safety codes: alice %q, bob %q", aw, bw)
	}
	if hint := alice.text("safety-hint"); !strings.Contains(hint, "Compare these words with the other person") {
		t.Fatalf("the safety code's explanation reads %q", hint)
	}
	// The match means something only if each page hashed the other's real fingerprint.
	if al, br := pageFingerprint(alice, "currentLocalDescription"), pageFingerprint(bob, "currentRemoteDescription"); al != br {
		t.Fatalf("bob's remote fingerprint %s is not alice's own %s", br, al)
	}
	if bl, ar := pageFingerprint(bob, "currentLocalDescription"), pageFingerprint(alice, "currentRemoteDescription"); bl != ar {
		t.Fatalf("alice's remote fingerprint %s is not bob's own %s", ar, bl)
	}
	alice.screenshot("call")
	bob.screenshot("call-phone")

	alice.do("hang up", chromedpClick("hangup"))
	bob.waitPhase("waiting", uiTimeout)
	bob.waitFor("safety code gone", `document.getElementById('safety').hidden && document.getElementById('safety-words').textContent === ''`, uiTimeout)
}

// TestSafetyCodeTampered: bob's page reaches the gateway through a relay that replaces the DTLS
// fingerprint in the offer it passes on, as a signaling server in the middle would. Each page
// then hashes a different pair of fingerprints, and the two pages show different codes; the
// browser, holding the swapped fingerprint, refuses alice's DTLS certificate.
func TestSafetyCodeTampered(t *testing.T) {
	t.Parallel()
	if !inLoopbackNamespace(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	s := startStack(t, stackOptions{})
	mitm := startFingerprintSwapper(t, s)
	b := startChromium(t, ctx)
	pin := nextPIN()

	alice := b.openPage("alice", s.GatewayURL+"/?debug=1", 1024, 720, false)
	alice.join(pin)
	alice.waitPhase("waiting", uiTimeout)
	bob := b.openPage("bob", mitm.URL+"/?debug=1", 1024, 720, false)
	bob.join(pin)
	for _, p := range []*page{alice, bob} {
		waitSafetyCode(p)
	}

	if n := mitm.swapped.Load(); n == 0 {
		t.Fatalf("the relay swapped no fingerprint: the test did not tamper with anything")
	}
	al, br := pageFingerprint(alice, "currentLocalDescription"), pageFingerprint(bob, "currentRemoteDescription")
	if br != mitm.fake || al == br {
		t.Fatalf("bob's remote fingerprint is %s, want the swapped %s (alice's own is %s)", br, mitm.fake, al)
	}
	aw, bw := safetyWords(alice), safetyWords(bob)
	t.Logf("safety code: alice %q, bob %q", aw, bw)
	if aw == bw {
		t.Fatalf("a swapped fingerprint still shows the same safety code on both pages: %q", aw)
	}
	// The swapped fingerprint is the one the browser enforces: alice's certificate is refused.
	bob.waitFor("DTLS refused", `window.tuturu.pc().connectionState === 'failed'`, uiTimeout)
	t.Logf("phases after the refused handshake: alice %s, bob %s",
		eval[string](alice, `document.body.dataset.phase`), eval[string](bob, `document.body.dataset.phase`))
	alice.screenshot("tampered")
	bob.screenshot("tampered-bob")
}

// waitSafetyCode waits until the page shows a safety code.
func waitSafetyCode(p *page) {
	p.t.Helper()
	p.waitFor("safety code", `!document.getElementById('safety').hidden && document.getElementById('safety-words').textContent !== ''`, uiTimeout)
}

var safetyWordRE = regexp.MustCompile(`^[a-z]{3,7}$`)

// safetyWords reads the code the page shows and checks its shape.
func safetyWords(p *page) string {
	p.t.Helper()
	code := p.text("safety-words")
	words := strings.Fields(code)
	if len(words) != safetyWordCount {
		p.t.Fatalf("%s: safety code %q has %d words, want %d", p.name, code, len(words), safetyWordCount)
	}
	for _, w := range words {
		if !safetyWordRE.MatchString(w) {
			p.t.Fatalf("%s: safety code %q: %q is not a word of the list", p.name, code, w)
		}
	}
	return strings.Join(words, " ")
}

var fingerprintLineRE = regexp.MustCompile(`(?m)^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)`)

// pageFingerprint reads the SHA-256 fingerprint of one of the page's descriptions (upper case),
// failing if the description has none or several different ones.
func pageFingerprint(p *page, description string) string {
	p.t.Helper()
	sdp := eval[string](p, fmt.Sprintf(`window.tuturu.pc().%s.sdp`, description))
	found := ""
	for _, m := range fingerprintLineRE.FindAllStringSubmatch(sdp, -1) {
		fp := strings.ToUpper(m[1])
		if found != "" && fp != found {
			p.t.Fatalf("%s: %s has two fingerprints, %s and %s", p.name, description, found, fp)
		}
		found = fp
	}
	if found == "" {
		p.t.Fatalf("%s: %s has no sha-256 fingerprint:\n%s", p.name, description, sdp)
	}
	return found
}

// fingerprintSwapper stands between one page and the gateway as a signaling server in the
// middle would: it serves the web client from the gateway and relays the page's /ws frames
// both ways, replacing the DTLS fingerprint of every offer and answer sent to the page by a
// well-formed one that belongs to no certificate in the call.
type fingerprintSwapper struct {
	URL     string       // http://127.0.0.1:port, where the page is opened
	fake    string       // the fingerprint put in place of the real one
	swapped atomic.Int64 // descriptions changed so far
	gateway *stack
}

func startFingerprintSwapper(t *testing.T, s *stack) *fingerprintSwapper {
	t.Helper()
	target, err := url.Parse(s.GatewayURL)
	if err != nil {
		t.Fatalf("gateway URL: %v", err)
	}
	sum := sha256.Sum256([]byte("a certificate the other person does not hold"))
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	m := &fingerprintSwapper{fake: strings.Join(hexes, ":"), gateway: s}

	ctx, cancel := context.WithCancel(context.Background())
	var relays sync.WaitGroup
	mux := http.NewServeMux()
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		relays.Add(1)
		defer relays.Done()
		m.relay(ctx, t, w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: wsTimeout}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		cancel() // ends the relays: their reads and writes use ctx
		_ = srv.Close()
		done := make(chan struct{})
		go func() { relays.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(wsTimeout):
			t.Errorf("fingerprint swapper: relays did not end within %v", wsTimeout)
		}
	})
	m.URL = "http://" + ln.Addr().String()
	return m
}

// relay connects one page socket to the gateway and copies frames until either side ends.
func (m *fingerprintSwapper) relay(ctx context.Context, t *testing.T, w http.ResponseWriter, r *http.Request) {
	page, err := websocket.Accept(w, r, nil) // the page's Origin is this server's own host
	if err != nil {
		t.Logf("fingerprint swapper: accept: %v", err)
		return
	}
	defer page.CloseNow()
	dialCtx, cancelDial := context.WithTimeout(ctx, wsTimeout)
	gw, _, err := websocket.Dial(dialCtx, wsURL(m.gateway), &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {m.gateway.GatewayURL}}, // the gateway's own site
	})
	cancelDial()
	if err != nil {
		t.Logf("fingerprint swapper: dial the gateway: %v", err)
		_ = page.Close(websocket.StatusInternalError, "gateway unreachable")
		return
	}
	defer gw.CloseNow()
	page.SetReadLimit(1 << 20)
	gw.SetReadLimit(1 << 20)

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer stop()
		relayFrames(ctx, page, gw, nil)
	}()
	relayFrames(ctx, gw, page, m.swap)
}

// relayFrames copies frames from one socket to the other, through change when it is set, and
// passes a close on (a close frame from the page is its goodbye to the room).
func relayFrames(ctx context.Context, from, to *websocket.Conn, change func([]byte) []byte) {
	for {
		typ, frame, err := from.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				_ = to.Close(code, "")
			} else {
				_ = to.CloseNow()
			}
			return
		}
		if change != nil && typ == websocket.MessageText {
			frame = change(frame)
		}
		wctx, cancel := context.WithTimeout(ctx, wsTimeout)
		err = to.Write(wctx, typ, frame)
		cancel()
		if err != nil {
			_ = from.CloseNow()
			return
		}
	}
}

// swap replaces the fingerprint lines of an offer or answer; other frames pass unchanged.
func (m *fingerprintSwapper) swap(frame []byte) []byte {
	var msg map[string]json.RawMessage
	var typ string
	if json.Unmarshal(frame, &msg) != nil || json.Unmarshal(msg["type"], &typ) != nil || (typ != "offer" && typ != "answer") {
		return frame
	}
	var data map[string]json.RawMessage
	var sdp string
	if json.Unmarshal(msg["data"], &data) != nil || json.Unmarshal(data["sdp"], &sdp) != nil {
		return frame
	}
	swapped := fingerprintLineRE.ReplaceAllString(sdp, "a=fingerprint:sha-256 "+m.fake)
	if swapped == sdp {
		return frame
	}
	var err error
	if data["sdp"], err = json.Marshal(swapped); err != nil {
		return frame
	}
	if msg["data"], err = json.Marshal(data); err != nil {
		return frame
	}
	out, err := json.Marshal(msg)
	if err != nil {
		return frame
	}
	m.swapped.Add(1)
	return out
}
