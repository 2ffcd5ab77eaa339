package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Browser tests run real Chromium against the real web client served by the gateway. Media must
// stay on loopback, so each test re-executes its own test binary inside a network namespace
// that has only `lo` (unshare -n), and the scenario runs there.
const (
	// browserChildEnv marks the re-executed test binary inside the namespace.
	browserChildEnv = "TUTURU_BROWSER_CHILD"
	// skipBrowserEnv=1 skips the browser tests explicitly; CI never sets it.
	skipBrowserEnv = "TUTURU_SKIP_BROWSER"
	// chromiumEnv names the browser binary when it is not `chromium` on PATH.
	chromiumEnv = "CHROMIUM"
	// browserTimeout bounds one whole scenario inside the namespace.
	browserTimeout = 150 * time.Second
)

// chromiumPath finds the browser, or says how to install it.
func chromiumPath() (string, error) {
	if p := os.Getenv(chromiumEnv); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", chromiumEnv, p, err)
		}
		return path, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("Chromium is not installed: run `make ensure-chromium` " +
		"(as root: apt-get update && apt-get install -y chromium), or set CHROMIUM to its path; " +
		"TUTURU_SKIP_BROWSER=1 skips the browser tests")
}

// browserScenario starts the services (with opt) and a Chromium for a browser test, bounded by
// browserTimeout, in the loopback-only namespace. In the parent, which runs the test there, ok is
// false and the test returns.
func browserScenario(t *testing.T, opt stackOptions) (s *stack, b *browser, ok bool) {
	t.Helper()
	if !inLoopbackNamespace(t) {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	return startStack(t, opt), startChromium(t, ctx), true
}

// browserSlots bounds the browser scenarios that run at once (the tests run in parallel).
var browserSlots = make(chan struct{}, max(1, runtime.NumCPU()))

// inLoopbackNamespace returns true in the child, where the scenario must run. In the parent it
// runs the child in a loopback-only network namespace, reports its output and result, and
// returns false.
func inLoopbackNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(browserChildEnv) == "1" {
		onlyLoopback(t)
		return true
	}
	if os.Getenv(skipBrowserEnv) == "1" {
		t.Skipf("%s=1: browser tests skipped on request", skipBrowserEnv)
	}
	if _, err := chromiumPath(); err != nil {
		t.Fatal(err)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) is needed to keep browser media on loopback: %v", err)
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("ip (iproute2) is needed to bring up lo in the test's network namespace: %v", err)
	}
	// Each scenario runs two or three browsers; more at once than the machine has cores only
	// slows them all towards their ICE and page timeouts.
	browserSlots <- struct{}{}
	defer func() { <-browserSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout+30*time.Second)
	defer cancel()
	// $0 is ip, $1 the test binary, the rest its flags.
	cmd := exec.CommandContext(ctx, unshare, "-n", "sh", "-c", `"$0" link set lo up && shift 0 && exec "$@"`,
		ip, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1",
		"-test.timeout", (browserTimeout + 15*time.Second).String())
	cmd.Env = append(os.Environ(), browserChildEnv+"=1")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("browser test in a loopback-only network namespace:\n%s", out)
	if err != nil {
		if started := strings.Contains(string(out), "=== RUN"); !started && (strings.Contains(string(out), "unshare failed") || strings.Contains(string(out), "Operation not permitted")) {
			t.Fatalf("cannot create a network namespace (unshare -n needs root or CAP_SYS_ADMIN): %v; "+
				"set %s=1 to skip the browser tests on this machine", err, skipBrowserEnv)
		}
		t.Fatalf("browser test failed in its namespace: %v (output above)", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("browser test did not report a pass (output above)")
	}
	return false
}

// onlyLoopback fails the child when it can see any interface but loopback: media must not leave.
func onlyLoopback(t *testing.T) {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("interfaces: %v", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			t.Fatalf("the browser test sees interface %s: it must run in a loopback-only namespace", i.Name)
		}
	}
}

// browser is one headless Chromium with fake camera and microphone.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// startChromium starts headless Chromium (flags for a sandbox-less container) with a fresh
// profile.
func startChromium(t *testing.T, ctx context.Context, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// Without it Chromium gathers no candidates on loopback and ICE never starts.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.WindowSize(1024, 720),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return &browser{t: t, ctx: bctx}
}

// page is one tab in its own browser context (separate storage, like a second person).
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
	mu   sync.Mutex
	logs []string
}

// openPage opens url in a new tab with the given viewport and collects its console. Each
// initScript runs in the page before its own scripts.
func (b *browser) openPage(name, url string, width, height int64, mobile bool, initScripts ...string) *page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &page{t: b.t, name: name, ctx: ctx}
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: open tab: %v", name, err)
	}
	for _, src := range initScripts {
		if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			b.t.Fatalf("%s: add init script: %v", name, err)
		}
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.logs = append(p.logs, m.String())
			p.mu.Unlock()
		}
	}()
	b.t.Cleanup(func() {
		if b.t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			b.t.Logf("%s console:\n  %s", name, strings.Join(p.logs, "\n  "))
		}
	})
	viewport := chromedp.EmulateViewport(width, height)
	if mobile {
		viewport = chromedp.EmulateViewport(width, height, chromedp.EmulateMobile, chromedp.EmulateScale(2))
	}
	if err := chromedp.Do(ctx, viewport, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("pin"))); err != nil {
		b.t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return p
}

// do runs void actions on the page and fails the test on error.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %q: %v", p.name, expr, err)
	}
	return v
}

// join types the PIN into the real form, as a person would, and presses Join.
func (p *page) join(pin string) {
	p.t.Helper()
	// Select what the field holds, so the typed PIN replaces it as it would for a person.
	eval[bool](p, `(document.getElementById('pin').select(), true)`)
	p.do("join "+pin,
		chromedp.SendKeys(chromedp.ID("pin"), pin),
		chromedp.Click(chromedp.ID("join")),
	)
}

// waitFor polls a JavaScript condition until it is true or d passes.
func (p *page) waitFor(what, cond string, d time.Duration) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		phase := eval[string](p, `document.body.dataset.phase + " / " + (document.getElementById('status').textContent || '-') + " / " + (document.getElementById('end-text').textContent || '-')`)
		p.t.Fatalf("%s: waiting for %s: %v (phase / status / message: %s)", p.name, what, err, phase)
	}
}

// waitPhase waits until the client's state machine is in phase.
func (p *page) waitPhase(phase string, d time.Duration) {
	p.t.Helper()
	p.waitFor("phase "+phase, fmt.Sprintf(`document.body.dataset.phase === %q`, phase), d)
}

// screenshot saves the viewport to artifacts/browser/<test>-<name>.png.
func (p *page) screenshot(name string) string {
	p.t.Helper()
	dir := os.Getenv("TUTURU_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	dir = filepath.Join(dir, "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatalf("artifacts: %v", err)
	}
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot %s: %v", p.name, name, err)
	}
	file := filepath.Join(dir, strings.ReplaceAll(p.t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatalf("write %s: %v", file, err)
	}
	return file
}

// videoStats is what the remote video element and the inbound video stream say.
type videoStats struct {
	Width, Height int
	Paused        bool
	Frames        int
}

const remoteVideoJS = `(async () => {
	const v = document.getElementById('remote-video');
	let frames = 0;
	const pc = window.tuturu && window.tuturu.pc();
	if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
	return { Width: v.videoWidth, Height: v.videoHeight, Paused: v.paused, Frames: frames };
})()`

// remoteVideo reads the remote video's size and decoded frames.
func (p *page) remoteVideo() videoStats { return eval[videoStats](p, remoteVideoJS) }

// expectRemoteFrames checks that the remote video plays and its decoded frames keep increasing.
func (p *page) expectRemoteFrames() {
	p.t.Helper()
	p.waitFor("remote video size", `document.getElementById('remote-video').videoWidth > 0`, 15*time.Second)
	first := p.remoteVideo()
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		now := p.remoteVideo()
		if now.Frames > first.Frames {
			if now.Width == 0 || now.Paused {
				p.t.Fatalf("%s: remote video %+v: frames are decoded but the element shows nothing", p.name, now)
			}
			p.t.Logf("%s: remote video %dx%d, frames decoded %d -> %d", p.name, now.Width, now.Height, first.Frames, now.Frames)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: remote video frames decoded did not increase: %+v then %+v", p.name, first, now)
		}
	}
}

// attr reads an attribute of an element by id ("" when absent).
func (p *page) attr(id, name string) string {
	return eval[string](p, fmt.Sprintf(`(document.getElementById(%q).getAttribute(%q) || '')`, id, name))
}

// text reads the text of an element by id.
func (p *page) text(id string) string {
	return eval[string](p, fmt.Sprintf(`document.getElementById(%q).textContent`, id))
}

// consoleHas reports whether a console line contains s.
func (p *page) consoleHas(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// chromedpClick clicks the element with the given id.
func chromedpClick(id string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.ID(id)) }
