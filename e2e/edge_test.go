package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/pion/turn/v4"

	"github.com/tuturu/tuturu/credsvc"
	"github.com/tuturu/tuturu/gateway"
	"github.com/tuturu/tuturu/gateway/edge"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testtls"
	"github.com/tuturu/tuturu/turnsvc"
)

const (
	edgeDomain = "tuturu.test"
	edgeApp    = "a.tuturu.test"
	edgeTurn   = "t.tuturu.test"
)

// edgeCA is a certificate authority made for one test, with a certificate for the edge's
// three names written to files (the edge's TLS_CERT_FILE / TLS_KEY_FILE mode).
type edgeCA struct {
	pool              *x509.CertPool
	caFile            string // the CA in PEM, for SSL_CERT_FILE
	certFile, keyFile string
}

func newEdgeCA(t *testing.T, dir string) *edgeCA {
	t.Helper()
	tca := testtls.NewCA(t)
	ca := &edgeCA{
		pool:     tca.Pool,
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
	}
	tca.WriteCert(t, ca.caFile)
	// Also loopback's address: turnsvc's own TLS listener uses it (TestChromiumConnectionTest).
	tca.Issue(t, ca.certFile, ca.keyFile, 2, edgeDomain, edgeApp, edgeTurn, "127.0.0.1")
	return ca
}

// edgeStack is the whole stack with the edge on a loopback HTTPS port, TURN over TLS relayed
// to turnsvc's PROXY-protocol listener, and credsvc handing out turns:t.<domain>:<port>.
type edgeStack struct {
	*stack
	edgeAddr string // 127.0.0.1:port of the HTTPS listener
	ca       *edgeCA
	cred     credv1connect.CredentialServiceClient
	admin    turnv1connect.TurnAdminServiceClient
}

func startEdgeStack(t *testing.T, ca *edgeCA) *edgeStack {
	t.Helper()
	httpsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := httpsLn.Addr().(*net.TCPAddr).Port
	s := startStack(t, stackOptions{
		Gateway: func(c *gateway.Config) {
			c.Edge = edge.Config{
				Domain:        edgeDomain,
				CertFile:      ca.certFile,
				KeyFile:       ca.keyFile,
				HTTPSListener: httpsLn,
				TurnUpstream:  proxyLn.Addr().String(),
				HSTSMaxAge:    time.Hour,
				DrainTimeout:  time.Second,
			}
		},
		Turnsvc: func(c *turnsvc.Config) { c.ProxyProtocolListener = proxyLn },
		Credsvc: func(c *credsvc.Config) { c.TurnsHost, c.TurnsPort = edgeTurn, port },
	})
	return &edgeStack{
		stack:    s,
		edgeAddr: httpsLn.Addr().String(),
		ca:       ca,
		cred: credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), s.CredsvcURL,
			connect.WithInterceptors(platform.NewSendToken(s.InternalToken))),
		admin: turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), s.TurnsvcURL,
			connect.WithInterceptors(platform.NewSendToken(s.AdminToken))),
	}
}

// httpsClient connects every request to the edge, verifying its certificate for the URL's
// host against the test CA: what a browser does once DNS points the names at the server.
func (s *edgeStack) httpsClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, s.edgeAddr)
			},
			TLSClientConfig: &tls.Config{RootCAs: s.ca.pool},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (s *edgeStack) url(host, path string) string {
	_, port, _ := net.SplitHostPort(s.edgeAddr)
	return "https://" + host + ":" + port + path
}

// TestEdgeServesTheStack: through one HTTPS port, a. serves the real web client and its
// WebSocket (a join hands out the turns: URL of the edge), the bare domain serves the cover
// page, and TURN over TLS on t. allocates and relays through turnsvc, which sees the client's
// own address thanks to the PROXY header.
func TestEdgeServesTheStack(t *testing.T) {
	t.Parallel()
	s := startEdgeStack(t, newEdgeCA(t, t.TempDir()))
	client := s.httpsClient()

	t.Run("app", func(t *testing.T) {
		resp, err := client.Get(s.url(edgeApp, "/"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "<script") {
			t.Fatalf("app page: %d %.200s", resp.StatusCode, body)
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("app headers: %v", resp.Header)
		}
	})

	t.Run("cover", func(t *testing.T) {
		resp, err := client.Get(s.url(edgeDomain, "/"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(body), "<script") || !strings.Contains(string(body), "Welcome") {
			t.Fatalf("cover page: %d %.200s", resp.StatusCode, body)
		}
	})

	t.Run("WebSocket join over the edge hands out turns on the edge", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(s.url(edgeApp, "/ws"), "https"), &websocket.DialOptions{
			HTTPClient: client,
			HTTPHeader: http.Header{"Origin": {strings.TrimSuffix(s.url(edgeApp, "/"), "/")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		w := &wsClient{t: t, name: "edge", c: c}
		info := w.join(nextPIN())
		want := "turns:" + edgeTurn + ":" + strings.Split(s.edgeAddr, ":")[1] + "?transport=tcp"
		b, _ := json.Marshal(info.ICEServers)
		if !strings.Contains(string(b), want) {
			t.Errorf("ICE servers %s lack %s", b, want)
		}
	})

	t.Run("TURN over TLS on 443 with the client's real address", func(t *testing.T) {
		participant := "edge-turns"
		ts := &turnStack{stack: s.stack, cred: s.cred, admin: s.admin}
		username, password, _ := ts.issue(t, participant)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.edgeAddr,
			&tls.Config{ServerName: edgeTurn, RootCAs: s.ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tc, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: s.edgeAddr, TURNServerAddr: s.edgeAddr,
			Username: username, Password: password, Realm: "tuturu",
			Conn: turn.NewSTUNConn(conn), RTO: 200 * time.Millisecond, LoggerFactory: quietTURN{},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if err := tc.Listen(); err != nil {
			t.Fatal(err)
		}
		relay, err := tc.Allocate()
		if err != nil {
			t.Fatalf("Allocate through the edge: %v", err)
		}
		defer relay.Close()
		if err := testnet.RelayRoundTrip(relay, testnet.UDPEchoPeer(t).LocalAddr(), "through the edge", 3*time.Second); err != nil {
			t.Fatalf("relay: %v", err)
		}
		allocs := ts.allocations(t, participant)
		if len(allocs) != 1 {
			t.Fatalf("allocations %v", allocs)
		}
		if got, want := allocs[0].GetClientAddress(), conn.LocalAddr().String(); got != want {
			t.Errorf("turnsvc sees client %s, want the client's own %s (not the edge's)", got, want)
		}
		// turnsvc reports what the client spoke: TLS, terminated at the edge.
		if allocs[0].GetProtocol() != "tls" {
			t.Errorf("protocol %q", allocs[0].GetProtocol())
		}
	})
}
