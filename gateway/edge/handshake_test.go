package edge

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/testtls"
)

// TestHandshakeDeadlines: a client that sends nothing, or only part of its ClientHello, is
// disconnected after HelloTimeout even while HandshakeTimeout is long; one that sends its
// hello and then stalls, after HandshakeTimeout. Connections that completed the handshake
// keep no deadline.
func TestHandshakeDeadlines(t *testing.T) {
	const short = 300 * time.Millisecond
	ca := testtls.NewCA(t)
	certFile, keyFile := certFiles(t)
	ca.Issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	start := func(helloTimeout, handshakeTimeout time.Duration) *running {
		return startEdge(t, Config{
			CertFile: certFile, KeyFile: keyFile,
			TurnUpstream: turnUpstream(t),
			App:          appHandler(),
			HelloTimeout: helloTimeout, HandshakeTimeout: handshakeTimeout,
		})
	}
	// Only the hello deadline is short: a close within the test's 10 s bound is its doing.
	e := start(short, time.Minute)
	hello := clientHello(t, testApp)

	t.Run("silent client", func(t *testing.T) {
		expectClosedByServer(t, dialRaw(t, e.Addr()))
	})
	t.Run("partial ClientHello", func(t *testing.T) {
		c := dialRaw(t, e.Addr())
		if _, err := c.Write(hello[:len(hello)/2]); err != nil {
			t.Fatal(err)
		}
		expectClosedByServer(t, c)
	})
	t.Run("ClientHello trickled byte by byte", func(t *testing.T) {
		c := dialRaw(t, e.Addr())
		// Well within the read deadline per byte, but the deadline is for the whole hello.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, b := range hello {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(short / 10)
			}
		}()
		expectClosedByServer(t, c)
		_ = c.Close()
		<-done
	})
	t.Run("ClientHello then silence", func(t *testing.T) {
		// Only the whole-handshake deadline is short here.
		e := start(time.Minute, short)
		c := dialRaw(t, e.Addr())
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
		expectClosedByServer(t, c) // after the server's flight, which is discarded
	})

	t.Run("handshaken connections keep no deadline", func(t *testing.T) {
		app, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: ca.Pool, ServerName: testApp, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer app.Close()
		turn, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: ca.Pool, ServerName: testTurn})
		if err != nil {
			t.Fatal(err)
		}
		defer turn.Close()
		_ = turn.SetDeadline(time.Now().Add(10 * time.Second))
		tr := bufio.NewReader(turn)
		if _, err := tr.ReadString('\n'); err != nil { // turnsvc's greeting: the relay is up
			t.Fatal(err)
		}

		time.Sleep(3 * short) // well past the hello deadline

		_ = app.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(app, "GET / HTTP/1.1\r\nHost: "+testApp+"\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatalf("app connection: %v", err)
		}
		b, err := io.ReadAll(app)
		if !strings.Contains(string(b), "the app via HTTP/1.1") {
			t.Fatalf("app connection after the deadlines: %q, %v", b, err)
		}
		if _, err := io.WriteString(turn, "stun bytes"); err != nil {
			t.Fatalf("TURN connection: %v", err)
		}
		buf := make([]byte, 10)
		if _, err := io.ReadFull(tr, buf); err != nil || string(buf) != "stun bytes" {
			t.Fatalf("TURN relay after the deadlines: %q, %v", buf, err)
		}
	})
}

// clientHello returns the first TLS record a real Go client sends for name: its ClientHello.
func clientHello(t *testing.T, name string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake() }()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 22 || body[0] != 1 {
		t.Fatalf("first record is not a ClientHello: % x", hdr)
	}
	return append(hdr, body...)
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// expectClosedByServer reads (and discards) until the server closes c, failing if the test's
// own 10 s bound runs out first.
func expectClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after 10 s: the server set no deadline")
	}
}
