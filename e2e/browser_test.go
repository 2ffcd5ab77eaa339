package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tuturu/tuturu/gateway"
)

// Each scenario runs in real headless Chromium against the real UI, in a loopback-only
// network namespace (see inLoopbackNamespace). Pages open with ?debug=1 so that the test can
// read the peer connection's stats and a failing run prints each page's action log.

// uiTimeout bounds each step a person would wait for (join, connect, leave).
const uiTimeout = 30 * time.Second

// TestChromiumCall: the screens of a direct call. A bad PIN shows the inline error; two
// pages type the same PIN, both reach the call screen with the remote video playing and the
// Direct badge; a third page on that PIN is told the call is full; a dropped signaling socket
// is resumed while the call keeps running; hang up on one, the other is told the peer left.
func TestChromiumCall(t *testing.T) {
	t.Parallel()
	s, b, ok := browserScenario(t, stackOptions{})
	if !ok {
		return
	}
	url := s.GatewayURL + "/?debug=1"
	pin := nextPIN()

	alice := b.openPage("alice", url, 1024, 720, false)
	if id := eval[string](alice, `document.activeElement.id`); id != "pin" {
		t.Fatalf("on load the focus is on %q, want the PIN field", id)
	}
	alice.do("make a new PIN", chromedpClick("new-pin"))
	if v := eval[string](alice, `document.getElementById('pin').value`); len(v) != 6 || strings.Trim(v, "0123456789") != "" {
		t.Fatalf("Make a new PIN filled in %q", v)
	}
	alice.screenshot("01-pin-entry")

	// A bad PIN never leaves the page: the inline error says what is wrong.
	alice.join("12a")
	alice.waitFor("inline PIN error", `!document.getElementById('pin-error').hidden`, uiTimeout)
	if code := alice.attr("pin-error", "data-code"); code != "PIN_TOO_SHORT" {
		t.Fatalf("bad PIN: error code %q, want PIN_TOO_SHORT", code)
	}
	if alice.attr("pin", "aria-invalid") != "true" {
		t.Fatalf("bad PIN: the field is not marked invalid")
	}
	if v := eval[string](alice, `document.getElementById('pin').value`); v != "12" {
		t.Fatalf("bad PIN: field holds %q, want the digits only (12)", v)
	}
	alice.screenshot("02-bad-pin")

	alice.join(pin)
	alice.waitPhase("waiting", uiTimeout)
	if got := alice.text("overlay-pin"); got != pin[:3]+" "+pin[3:] {
		t.Fatalf("waiting screen shows PIN %q", got)
	}
	if id := eval[string](alice, `document.activeElement.id`); id != "overlay-title" {
		t.Fatalf("waiting: focus on %q, want the screen's heading", id)
	}
	alice.screenshot("03-waiting")

	// Bob uses the keyboard only: type the PIN, press Enter.
	bob := b.openPage("bob", url, 390, 844, true)
	bob.do("type the PIN and press Enter", chromedp.SendKeys(chromedp.ID("pin"), pin+kb.Enter))
	alice.waitPhase("call", uiTimeout)
	bob.waitPhase("call", uiTimeout)
	if id := eval[string](bob, `document.activeElement.id`); id != "stage-title" {
		t.Fatalf("call: focus on %q, want the call screen's heading", id)
	}
	alice.expectRemoteFrames()
	bob.expectRemoteFrames()
	for _, p := range []*page{alice, bob} {
		p.waitFor("path badge", `document.getElementById('path-badge').dataset.path !== ''`, uiTimeout)
		if path := p.attr("path-badge", "data-path"); path != "direct" {
			t.Fatalf("%s: path %q, want direct", p.name, path)
		}
		if badge := p.text("path-badge"); badge != "Direct" {
			t.Fatalf("%s: badge says %q", p.name, badge)
		}
	}
	alice.waitFor("quality indicator", `document.getElementById('quality').dataset.level !== ''`, uiTimeout)
	alice.screenshot("04-call")
	bob.screenshot("04-call-phone")

	// A third person on the same PIN: the call is full, said on the PIN screen.
	carol := b.openPage("carol", url, 1024, 720, false)
	carol.join(pin)
	carol.waitFor("room full", `document.getElementById('pin-error').dataset.code === 'ROOM_FULL'`, uiTimeout)
	if msg := carol.text("pin-error"); !strings.Contains(msg, "Two people are already in the call") {
		t.Fatalf("room full message: %q", msg)
	}
	if phase := eval[string](carol, `document.body.dataset.phase`); phase != "pin" {
		t.Fatalf("room full: phase %q, want pin", phase)
	}
	carol.screenshot("05-room-full")

	// Alice's signaling socket drops: she resumes with her token, the call keeps running, and
	// Bob notices nothing.
	before := bob.remoteVideo().Frames
	eval[bool](alice, `(window.tuturu.dropSocket(), true)`)
	alice.waitFor("socket resumed", `document.body.dataset.socket === 'open'`, uiTimeout)
	if phase := eval[string](alice, `document.body.dataset.phase`); phase != "call" {
		t.Fatalf("alice after resume: phase %q, want call", phase)
	}
	if status := bob.attr("status", "data-code"); status != "" {
		t.Fatalf("bob was told something during alice's resume: %q", status)
	}
	bob.waitFor("frames after resume", `true`, time.Second)
	if after := bob.remoteVideo().Frames; after <= before {
		t.Fatalf("bob's video stopped during alice's resume: frames %d then %d", before, after)
	}

	// The network comes back (the online event): Alice, who made the offer, restarts ICE; the
	// call returns to the call screen with new ICE credentials and the video keeps playing.
	ufrag := `(window.tuturu.pc().localDescription.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1] || ''`
	oldUfrag := eval[string](alice, ufrag)
	before = bob.remoteVideo().Frames
	eval[bool](alice, `(window.dispatchEvent(new Event('online')), true)`)
	alice.waitFor("ICE restarted", `(`+ufrag+`) !== `+strconv.Quote(oldUfrag)+` && document.body.dataset.phase === 'call'`, uiTimeout)
	bob.waitPhase("call", uiTimeout)
	bob.waitFor("frames after the ICE restart", fmt.Sprintf(`(async () => {
		let f = 0;
		(await window.tuturu.pc().getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0; });
		return f > %d;
	})()`, before), uiTimeout)

	// Alice hangs up: Bob is told and waits in the room; Alice sees the call ended.
	alice.do("hang up", chromedpClick("hangup"))
	alice.waitPhase("ended", uiTimeout)
	if !eval[bool](alice, `document.getElementById('end-support').hidden`) {
		t.Fatalf("a hang-up shows a support code: %q", alice.text("end-support"))
	}
	bob.waitFor("peer left notice", `document.getElementById('status').dataset.code === 'peer-left'`, uiTimeout)
	bob.waitPhase("waiting", uiTimeout)
	if msg := bob.text("status"); !strings.Contains(msg, "The other person left the call") {
		t.Fatalf("bob's notice: %q", msg)
	}
	alice.screenshot("06-ended")
	bob.screenshot("06-peer-left-phone")
}

// TestChromiumRelayedCall: with FORCE_RELAY the client uses relay candidates only, the call
// goes through turnsvc, and both pages say Relayed.
func TestChromiumRelayedCall(t *testing.T) {
	t.Parallel()
	s, b, ok := browserScenario(t, stackOptions{Gateway: func(c *gateway.Config) { c.ForceRelay = true }})
	if !ok {
		return
	}
	url := s.GatewayURL + "/?debug=1"
	alice, bob := b.relayedCall(t, url)
	alice.expectRemoteFrames()
	bob.expectRemoteFrames()
	for _, p := range []*page{alice, bob} {
		p.waitFor("path badge", `document.getElementById('path-badge').dataset.path !== ''`, uiTimeout)
		if path := p.attr("path-badge", "data-path"); path != "relay" {
			t.Fatalf("%s: path %q, want relay", p.name, path)
		}
		if badge := p.text("path-badge"); badge != "Relayed" {
			t.Fatalf("%s: badge says %q", p.name, badge)
		}
	}
	alice.screenshot("call-relayed")
}

// relayedCall puts two desktop pages (alice first, then bob) in a call on a fresh PIN at url,
// a gateway with FORCE_RELAY, and checks that both peer connections use relay candidates only.
func (b *browser) relayedCall(t *testing.T, url string) (alice, bob *page) {
	t.Helper()
	pin := nextPIN()
	alice = b.openPage("alice", url, 1024, 720, false)
	alice.join(pin)
	alice.waitPhase("waiting", uiTimeout)
	bob = b.openPage("bob", url, 1024, 720, false)
	bob.join(pin)
	for _, p := range []*page{alice, bob} {
		p.waitPhase("call", uiTimeout)
		if policy := eval[string](p, `window.tuturu.pc().getConfiguration().iceTransportPolicy`); policy != "relay" {
			t.Fatalf("%s: iceTransportPolicy %q, want relay", p.name, policy)
		}
	}
	return alice, bob
}

// noCameraJS makes the page's browser behave as a computer without a camera: asking for
// video fails with NotFoundError, as Chromium reports it, while the microphone works.
const noCameraJS = `(() => {
	const md = navigator.mediaDevices;
	const gum = md.getUserMedia.bind(md);
	md.getUserMedia = (c) => (c && c.video)
		? Promise.reject(new DOMException('Requested device not found', 'NotFoundError'))
		: gum(c);
	const enumerate = md.enumerateDevices.bind(md);
	md.enumerateDevices = async () => (await enumerate()).filter((d) => d.kind !== 'videoinput');
})()`

// TestChromiumAudioOnly: a caller without a camera joins first (so it makes the offer) and is
// told it is on audio only; the call connects, it still sees the other person's video, and
// the other person receives its audio.
func TestChromiumAudioOnly(t *testing.T) {
	t.Parallel()
	s, b, ok := browserScenario(t, stackOptions{})
	if !ok {
		return
	}
	url := s.GatewayURL + "/?debug=1"
	pin := nextPIN()

	alice := b.openPage("alice", url, 1024, 720, false, noCameraJS)
	alice.join(pin)
	alice.waitPhase("waiting", uiTimeout)
	if code := alice.attr("status", "data-code"); code != "audio-only" {
		t.Fatalf("no camera: status %q, want audio-only", code)
	}
	bob := b.openPage("bob", url, 1024, 720, false)
	bob.join(pin)
	alice.waitPhase("call", uiTimeout)
	bob.waitPhase("call", uiTimeout)
	alice.expectRemoteFrames() // receiving video without sending any
	if !eval[bool](alice, `document.getElementById('camera').disabled && document.getElementById('self-view').hidden`) {
		t.Fatalf("no camera: the camera button should be disabled and the self-view hidden")
	}
	bob.waitFor("audio from alice", `(async () => {
		let packets = 0;
		(await window.tuturu.pc().getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived || 0; });
		return packets > 0;
	})()`, uiTimeout)
	alice.screenshot("audio-only")

	// A caller who refuses the camera and microphone gets a screen that says how to allow them.
	carol := b.openPage("carol", url, 390, 844, true, deniedJS)
	carol.join(nextPIN())
	carol.waitPhase("error", uiTimeout)
	if code := carol.attr("screen-end", "data-code"); code != "MEDIA_DENIED" {
		t.Fatalf("denied media: error %q, want MEDIA_DENIED", code)
	}
	if msg := carol.text("end-text"); !strings.Contains(msg, "site settings") {
		t.Fatalf("denied media: %q does not say what to do", msg)
	}
	if id := eval[string](carol, `document.activeElement.id`); id != "end-title" {
		t.Fatalf("error screen: focus on %q, want its heading", id)
	}
	// Even a failure that never reached the server has a support code: the call's trace's.
	if code := carol.attr("end-support", "data-code"); len(code) != 8 || !strings.Contains(carol.text("end-support"), "Support code: "+code) {
		t.Fatalf("denied media: support line %q (code %q)", carol.text("end-support"), code)
	}
	carol.screenshot("media-denied-phone")
}

// deniedJS makes the page's browser refuse camera and microphone, as when the caller clicks
// Block on the permission prompt.
const deniedJS = `navigator.mediaDevices.getUserMedia = () =>
	Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));`
