package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuturu/tuturu/gateway"
)

func TestBrowserMessageSizeLimit(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Limits.MaxMessageBytes = 1024 }})
	// Exactly the limit is fine.
	c := dialWS(t, s, "c", nil)
	pad := strings.Repeat(" ", 1024-len(`{"type":"ping"}`))
	c.send(`{"type":"ping"}` + pad)
	c.expect("pong")
	// One byte more closes with 1009, after a clear error.
	c.send(`{"type":"ping"}` + pad + " ")
	c.expectError("Message too big: the limit is 1024 bytes", "MESSAGE_TOO_BIG")
	c.expectClose(websocket.StatusMessageTooBig)

	// A member who sends a huge message leaves: the other is told.
	pin := nextPIN()
	a, b := joinedPair(t, s, pin)
	b.send(`{"type":"offer","data":{"sdp":"` + strings.Repeat("x", 4096) + `"}}`)
	b.expectError("", "MESSAGE_TOO_BIG")
	a.expect("peer-left")
}

func TestBrowserMessageRateLimit(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.Limits.MessagesPerSecond, c.Limits.MessageBurst = 1, 5
	}})
	c := dialWS(t, s, "c", nil)
	for range 5 {
		c.send(`{"type":"ping"}`)
		c.expect("pong")
	}
	c.send(`{"type":"ping"}`)
	c.expectError("Too many messages: slow down (at most 1 per second)", "RATE_LIMITED")
	c.expectClose(websocket.StatusPolicyViolation)
}

func TestBrowserJoinRateLimit(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.Limits.JoinsPerMinute, c.Limits.JoinBurst = 1, 3
	}})
	for range 3 {
		c := dialWS(t, s, "c", nil)
		c.join(nextPIN())
	}
	c := dialWS(t, s, "c", nil)
	c.send(`{"type":"join-pin","pin":"` + nextPIN() + `"}`)
	m := c.expectError("", "JOIN_RATE_LIMITED")
	if m.RetryAfterMs < 1000 || !strings.Contains(m.Error, "try again in") {
		t.Fatalf("join rate error without a usable retry hint: %s", m.raw)
	}
	c.expectClose(websocket.StatusTryAgainLater)
	// Trying again at once makes the wait longer (backoff), and resumes count too.
	c2 := dialWS(t, s, "c2", nil)
	c2.send(`{"type":"resume","token":"x"}`)
	m2 := c2.expectError("", "JOIN_RATE_LIMITED")
	if m2.RetryAfterMs <= m.RetryAfterMs {
		t.Fatalf("retry hint did not grow: %d then %d ms", m.RetryAfterMs, m2.RetryAfterMs)
	}
	c2.expectClose(websocket.StatusTryAgainLater)
}

func TestBrowserOrigin(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.AllowedOrigins = []string{"https://app.example.com"} }})
	dial := func(origin string) int {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		c, res, err := websocket.Dial(ctx, wsURL(s), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			_ = c.CloseNow()
			return http.StatusSwitchingProtocols
		}
		if res == nil {
			t.Fatalf("dial with Origin %s: %v", origin, err)
		}
		return res.StatusCode
	}
	if got := dial("https://evil.example"); got != http.StatusForbidden {
		t.Fatalf("foreign Origin: HTTP %d, want 403", got)
	}
	if got := dial("null"); got != http.StatusForbidden {
		t.Fatalf("null Origin: HTTP %d, want 403", got)
	}
	if got := dial(s.GatewayURL); got != http.StatusSwitchingProtocols {
		t.Fatalf("same-host Origin: HTTP %d, want 101", got)
	}
	if got := dial("https://app.example.com"); got != http.StatusSwitchingProtocols {
		t.Fatalf("listed Origin: HTTP %d, want 101", got)
	}
}

// TestBrowserKeepalive: ping/pong in the dialect, and WebSocket pings keep a live but silent
// socket open across several ping intervals.
func TestBrowserKeepalive(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.PingInterval, c.PingTimeout = 50*time.Millisecond, time.Second }})
	c := dialWS(t, s, "c", nil)
	c.join(nextPIN())
	// Reading answers the server's pings; nothing arrives and the socket stays up.
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.c.Read(context.Background())
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("silent but live socket ended: %v", err)
	case <-time.After(500 * time.Millisecond): // ten ping intervals
	}
	_ = c.c.CloseNow()
	<-errc
}
