package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tuturu/tuturu/gateway"
	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

type apiTurnAnswer struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	TTL      int64    `json:"ttl"`
	URIs     []string `json:"uris"`
}

type apiTurnError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// getAPITurn calls the gateway's /api/turn with a query and optional Origin.
func getAPITurn(t *testing.T, s *stack, method, query, origin string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.GatewayURL+"/api/turn"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s /api/turn%s: %v", method, query, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// fetchTurn gets credentials the way the demo app does, and checks the answer's shape.
func fetchTurn(t *testing.T, s *stack, username string) apiTurnAnswer {
	t.Helper()
	res, body := getAPITurn(t, s, http.MethodGet, "?service=turn&username="+username, "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/api/turn: HTTP %d %s", res.StatusCode, body)
	}
	var a apiTurnAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("/api/turn body %s: %v", body, err)
	}
	return a
}

// TestAPITurnIssuesCredsvcCredentials: /api/turn answers the TURN REST shape with a credential
// credsvc issued: `<expiry>:<username>:<key id>`, expiry in the future, and a password that is
// base64(HMAC-SHA1) of the username under credsvc's secret, which Validate proves by returning
// the long-term key MD5(username:realm:password). Checked with a Connect and a gRPC client.
func TestAPITurnIssuesCredsvcCredentials(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	a := fetchTurn(t, s, "flutter-webrtc")
	m := regexp.MustCompile(`^(\d+):flutter-webrtc:[0-9a-f]{8}$`).FindStringSubmatch(a.Username)
	if m == nil {
		t.Fatalf("username %q is not <expiry>:flutter-webrtc:<key id>", a.Username)
	}
	expiry, _ := strconv.ParseInt(m[1], 10, 64)
	now := time.Now().Unix()
	if expiry <= now || a.TTL <= 0 || expiry > now+a.TTL+1 {
		t.Fatalf("expiry %d, ttl %d, now %d", expiry, a.TTL, now)
	}
	if raw, err := base64.StdEncoding.DecodeString(a.Password); err != nil || len(raw) != 20 {
		t.Fatalf("password %q is not padded base64 of a SHA-1 HMAC (%v)", a.Password, err)
	}
	if len(a.URIs) == 0 || !strings.HasPrefix(a.URIs[0], "turn:127.0.0.1:") || !strings.HasSuffix(a.URIs[0], "?transport=udp") {
		t.Fatalf("uris %v", a.URIs)
	}
	for _, proto := range []struct {
		name string
		opts []connect.ClientOption
	}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}} {
		t.Run(proto.name, func(t *testing.T) {
			opts, err := platform.ClientOptions(platform.Telemetry{}, s.InternalToken)
			if err != nil {
				t.Fatal(err)
			}
			c := credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), s.CredsvcURL, append(opts, proto.opts...)...)
			ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
			defer cancel()
			res, err := c.Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: a.Username, Realm: "tuturu"}))
			if err != nil {
				t.Fatal(err)
			}
			key := md5.Sum([]byte(a.Username + ":tuturu:" + a.Password))
			if res.Msg.GetVerdict() != credv1.Verdict_VERDICT_VALID || !bytes.Equal(res.Msg.GetKey(), key[:]) || res.Msg.GetParticipantId() != "flutter-webrtc" {
				t.Fatalf("Validate: %v (key matches: %v)", res.Msg, bytes.Equal(res.Msg.GetKey(), key[:]))
			}
		})
	}
}

// TestAPITurnBadRequests: missing or bad parameters get 400 with a JSON error, never a crash
// (the original indexed missing parameters and panicked).
func TestAPITurnBadRequests(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Flutter.APITurnPerMinute, c.Flutter.APITurnBurst = 6000, 100 }})
	for _, c := range []struct{ query, code string }{
		{"", "INVALID_SERVICE"},
		{"?username=u", "INVALID_SERVICE"},
		{"?service=stun&username=u", "INVALID_SERVICE"},
		{"?service=turn&service=turn&username=u", "INVALID_SERVICE"},
		{"?service=turn", "INVALID_USERNAME"},
		{"?service=turn&username=", "INVALID_USERNAME"},
		{"?service=turn&username=a&username=b", "INVALID_USERNAME"},
		{"?service=turn&username=has%20space", "INVALID_USERNAME"},
		{"?service=turn&username=ctl%01x", "INVALID_USERNAME"},
		{"?service=turn&username=" + strings.Repeat("u", 200), "INVALID_USERNAME"},
		{"?service=turn&username=%zz", "INVALID_QUERY"},
	} {
		res, body := getAPITurn(t, s, http.MethodGet, c.query, "")
		var e apiTurnError
		if res.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Code != c.code || e.Error == "" {
			t.Errorf("%q: HTTP %d %s, want 400 %s", c.query, res.StatusCode, body, c.code)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%q: content type %q", c.query, ct)
		}
	}
	res, body := getAPITurn(t, s, http.MethodPost, "?service=turn&username=u", "")
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: HTTP %d %s", res.StatusCode, body)
	}
}

// TestAPITurnRateLimit: past its burst an address gets 429 with Retry-After and a JSON body.
func TestAPITurnRateLimit(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Flutter.APITurnPerMinute, c.Flutter.APITurnBurst = 1, 2 }})
	fetchTurn(t, s, "u1")
	fetchTurn(t, s, "u2")
	res, body := getAPITurn(t, s, http.MethodGet, "?service=turn&username=u3", "")
	var e apiTurnError
	if res.StatusCode != http.StatusTooManyRequests || json.Unmarshal(body, &e) != nil || e.Code != "RATE_LIMITED" {
		t.Fatalf("third request: HTTP %d %s", res.StatusCode, body)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", res.Header.Get("Retry-After"))
	}
}

// TestAPITurnCORS: pages of the site itself (and ALLOWED_ORIGINS) may call /api/turn; other
// sites are refused unless API_TURN_CORS_ORIGINS names them, or is "*".
func TestAPITurnCORS(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.AllowedOrigins = []string{"https://app.example"} }})
	self := s.GatewayURL // the request's own host
	for _, c := range []struct {
		origin string
		status int
	}{{self, 200}, {"https://app.example", 200}, {"https://evil.example", 403}, {"null", 403}} {
		res, body := getAPITurn(t, s, http.MethodGet, "?service=turn&username=web", c.origin)
		if res.StatusCode != c.status {
			t.Fatalf("Origin %s: HTTP %d %s, want %d", c.origin, res.StatusCode, body, c.status)
		}
		if acao := res.Header.Get("Access-Control-Allow-Origin"); (c.status == 200) != (acao == c.origin) {
			t.Fatalf("Origin %s: Access-Control-Allow-Origin %q", c.origin, acao)
		}
	}
	res, _ := getAPITurn(t, s, http.MethodOptions, "?service=turn&username=web", "https://app.example")
	if res.StatusCode != http.StatusNoContent || !strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight: HTTP %d %v", res.StatusCode, res.Header)
	}

	open := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Flutter.APITurnCORSOrigins = []string{"*"} }})
	res, body := getAPITurn(t, open, http.MethodGet, "?service=turn&username=web", "https://evil.example")
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://evil.example" {
		t.Fatalf("with *: HTTP %d %s", res.StatusCode, body)
	}
	// API_TURN_CORS_ORIGINS replaces ALLOWED_ORIGINS for /api/turn.
	only := startStack(t, stackOptions{Gateway: func(c *gateway.Config) {
		c.AllowedOrigins = []string{"https://app.example"}
		c.Flutter.APITurnCORSOrigins = []string{"https://flutter.example"}
	}})
	for origin, want := range map[string]int{"https://flutter.example": 200, "https://app.example": 403} {
		if res, body := getAPITurn(t, only, http.MethodGet, "?service=turn&username=web", origin); res.StatusCode != want {
			t.Fatalf("Origin %s: HTTP %d %s, want %d", origin, res.StatusCode, body, want)
		}
	}
}

// TestAPITurnCredsvcDownAndOff: with credsvc unreachable the answer is 503 JSON; API_TURN=false
// turns the endpoint off (404).
func TestAPITurnCredsvcDownAndOff(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	s := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.CredsvcURL = dead; c.RPCTimeout = 2 * time.Second }})
	res, body := getAPITurn(t, s, http.MethodGet, "?service=turn&username=u", "")
	var e apiTurnError
	if res.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil || e.Code != "SERVICE_UNAVAILABLE" {
		t.Fatalf("credsvc down: HTTP %d %s", res.StatusCode, body)
	}

	off := startStack(t, stackOptions{Gateway: func(c *gateway.Config) { c.Flutter.APITurnOff = true }})
	res, body = getAPITurn(t, off, http.MethodGet, "?service=turn&username=u", "")
	if res.StatusCode != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Code != "DISABLED" {
		t.Fatalf("API_TURN=false: HTTP %d %s", res.StatusCode, body)
	}
}
