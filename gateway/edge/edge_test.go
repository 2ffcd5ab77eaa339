package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/internal/proxyproto"
	"github.com/tuturu/tuturu/internal/testtls"
)

// appHandler is a small real app: a page and a WebSocket echo, like the gateway's / and /ws.
func appHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "the app via "+r.Proto)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		_ = c.Write(ctx, typ, append([]byte("echo "), msg...))
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	return mux
}

// turnUpstream is a stand-in for turnsvc's PROXY-protocol listener: it answers each
// connection with the client address it was told, then echoes.
func turnUpstream(t *testing.T) string {
	t.Helper()
	ln := proxyproto.NewListener(listenLoopback(t), 5*time.Second, nil)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, c.RemoteAddr().String()+"\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// startFileEdge runs an edge with a certificate from files for the three test names.
func startFileEdge(t *testing.T) (*running, *testtls.CA, string, string) {
	ca := testtls.NewCA(t)
	certFile, keyFile := certFiles(t)
	ca.Issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	e := startEdge(t, Config{
		CertFile: certFile, KeyFile: keyFile,
		TurnUpstream: turnUpstream(t),
		App:          appHandler(),
		HSTSMaxAge:   time.Hour,
	})
	e.pool = ca.Pool
	return e, ca, certFile, keyFile
}

func TestSNIRouting(t *testing.T) {
	e, _, _, _ := startFileEdge(t)

	t.Run("app over HTTP/1.1 and HTTP/2 with security headers", func(t *testing.T) {
		for _, h2 := range []bool{false, true} {
			resp, err := httpsClient(e.Addr(), e.pool, h2).Get("https://" + testApp + "/")
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			want := "HTTP/1.1"
			if h2 {
				want = "HTTP/2.0"
			}
			if body != "the app via "+want {
				t.Errorf("h2=%v: body %q", h2, body)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600" {
				t.Errorf("HSTS %q", got)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, part := range []string{"default-src 'self'", "connect-src 'self' wss:", "media-src 'self' blob:", "img-src 'self' data:", "script-src 'self'"} {
				if !strings.Contains(csp, part) {
					t.Errorf("CSP %q lacks %q", csp, part)
				}
			}
			if strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP allows inline code: %q", csp)
			}
		}
	})

	t.Run("app WebSocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "wss://"+testApp+"/ws", &websocket.DialOptions{HTTPClient: httpsClient(e.Addr(), e.pool, true)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil || string(msg) != "echo hi" {
			t.Fatalf("read %q, %v", msg, err)
		}
	})

	t.Run("bare domain and unknown names get the cover page", func(t *testing.T) {
		for _, name := range []string{testDomain, "other.example", "A-B.tuturu.test"} {
			cfg := &tls.Config{RootCAs: e.pool, ServerName: name}
			if name != testDomain {
				// Unknown names get the bare domain's certificate, as from a default host.
				cfg.ServerName = ""
				cfg.InsecureSkipVerify = true
			}
			c := httpsClient(e.Addr(), e.pool, false)
			c.Transport.(*http.Transport).TLSClientConfig = cfg
			resp, err := c.Get("https://" + name + "/")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != 200 || !strings.Contains(body, "Welcome") {
				t.Errorf("%s: %d %q", name, resp.StatusCode, body)
			}
			// The app's paths do not exist there.
			resp, err = c.Get("https://" + name + "/ws")
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s/ws: status %d, want 404", name, resp.StatusCode)
			}
		}
	})

	t.Run("no SNI gets the cover page with the bare domain's certificate", func(t *testing.T) {
		conn, err := tls.Dial("tcp", e.Addr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.ConnectionState().PeerCertificates[0].VerifyHostname(testDomain); err != nil {
			t.Errorf("certificate without SNI: %v", err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(conn)
		if !strings.Contains(string(b), "Welcome") {
			t.Errorf("response %q", b)
		}
	})

	t.Run("TURN name is piped to turnsvc with the client's address", func(t *testing.T) {
		conn, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: e.pool, ServerName: testTurn})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if p := conn.ConnectionState().NegotiatedProtocol; p != "" {
			t.Errorf("ALPN %q on the TURN name", p)
		}
		r := bufio.NewReader(conn)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(line), conn.LocalAddr().String(); got != want {
			t.Errorf("turnsvc saw %s, want the client's %s", got, want)
		}
		_, _ = io.WriteString(conn, "stun bytes")
		buf := make([]byte, 10)
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "stun bytes" {
			t.Errorf("echo %q, %v", buf, err)
		}
	})
}

func TestTurnNameWithoutUpstreamIsCover(t *testing.T) {
	ca := testtls.NewCA(t)
	certFile, keyFile := certFiles(t)
	ca.Issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	e := startEdge(t, Config{CertFile: certFile, KeyFile: keyFile, App: appHandler()})
	resp, err := httpsClient(e.Addr(), ca.Pool, false).Get("https://" + testTurn + "/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, "Welcome") {
		t.Errorf("TURN name without upstream: %q", body)
	}
}

func TestHTTPRedirects(t *testing.T) {
	e, _, _, _ := startFileEdge(t)
	_, port, _ := net.SplitHostPort(e.Addr())
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cases := []struct {
		method, host, path string
		code               int
		location           string
	}{
		{"GET", testApp, "/room?x=1", 301, "https://" + testApp + ":" + port + "/room?x=1"},
		{"HEAD", testDomain, "/", 301, "https://" + testDomain + ":" + port + "/"},
		{"POST", testApp + ":80", "/api", 308, "https://" + testApp + ":" + port + "/api"},
		{"GET", "evil.example", "/phish", 301, "https://" + testDomain + ":" + port + "/"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, "http://"+e.HTTPAddr()+c.path, nil)
		req.Host = c.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || resp.Header.Get("Location") != c.location {
			t.Errorf("%s %s%s: %d %q, want %d %q", c.method, c.host, c.path, resp.StatusCode, resp.Header.Get("Location"), c.code, c.location)
		}
	}
}

func TestCertificateFilesReload(t *testing.T) {
	e, ca, certFile, keyFile := startFileEdge(t)
	e.certs.(*fileCerts).interval = 0
	serial := func() int64 {
		conn, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: ca.Pool, ServerName: testApp})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d, want 2", s)
	}
	// A live connection made with the old certificate survives the swap.
	live, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: ca.Pool, ServerName: testTurn})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	_ = live.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(live)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	// mtime granularity may hide a rewrite within the same tick; the size changes with the
	// extra name anyway.
	ca.Issue(t, certFile, keyFile, 3, testDomain, testApp, testTurn, "x.tuturu.test")
	if s := serial(); s != 3 {
		t.Errorf("after the files changed: serial %d, want 3", s)
	}
	// A broken pair keeps the last good certificate.
	if err := writeFile(keyFile, "not a key"); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 3 {
		t.Errorf("after a bad key: serial %d, want 3", s)
	}
	_, _ = io.WriteString(live, "still here")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "still here" {
		t.Errorf("live connection after reload: %q %v", buf, err)
	}
}

func TestShutdownEndsRelays(t *testing.T) {
	ca := testtls.NewCA(t)
	certFile, keyFile := certFiles(t)
	ca.Issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	cfg := Config{
		Domain: testDomain, CertFile: certFile, KeyFile: keyFile, App: appHandler(),
		TurnUpstream: turnUpstream(t), DrainTimeout: 200 * time.Millisecond,
		HTTPSListener: listenLoopback(t),
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	conn, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: ca.Pool, ServerName: testTurn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("relayed connection still open after the drain timeout")
	}
	if _, err := net.DialTimeout("tcp", e.Addr(), time.Second); err == nil {
		t.Error("HTTPS port still accepting after stop")
	}
}
