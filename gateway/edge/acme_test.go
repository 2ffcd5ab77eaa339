package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testproc"
	"github.com/tuturu/tuturu/internal/testtls"
)

// pebble is a running Pebble ACME CA with pebble-challtestsrv as its DNS: every name
// resolves to 127.0.0.1, so Pebble validates tls-alpn-01 against the edge on loopback.
type pebble struct {
	dirURL string
	client *http.Client   // trusts Pebble's own HTTPS listener
	roots  *x509.CertPool // Pebble's issuing root, from its management API
}

// pebbleTool builds a command of the pinned tools module tools/pebble.
func pebbleTool(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	bin, err := testproc.GoTool(ctx, "../../tools/pebble/go.mod", name)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startPebble builds and starts Pebble and pebble-challtestsrv; Pebble validates tls-alpn-01
// on tlsPort and http-01 on httpPort.
func startPebble(t *testing.T, tlsPort, httpPort int) *pebble {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the ACME test, which builds and runs Pebble")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	pebbleBin := pebbleTool(t, ctx, "pebble")
	challBin := pebbleTool(t, ctx, "pebble-challtestsrv")

	// Pebble's own HTTPS listener gets a certificate from a CA made here.
	ca := testtls.NewCA(t)
	certFile, keyFile := filepath.Join(dir, "pebble.pem"), filepath.Join(dir, "pebble.key")
	ca.Issue(t, certFile, keyFile, 99, "127.0.0.1", "localhost")

	dnsPort, mgmtPort, apiPort, chalMgmt := testnet.FreeTURNPort(t), testnet.FreeTURNPort(t), testnet.FreeTURNPort(t), testnet.FreeTURNPort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", apiPort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	cfgFile := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	start := func(name string, env []string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout = testLog{t}
		cmd.Stderr = testLog{t}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	start(challBin, nil,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-management", fmt.Sprintf("127.0.0.1:%d", chalMgmt),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	start(pebbleBin,
		// No artificial validation delay; no deliberately rejected nonces (they test client
		// retries, not us).
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	p := &pebble{
		dirURL: fmt.Sprintf("https://127.0.0.1:%d/dir", apiPort),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}},
	}
	// Both are up when they answer; bounded.
	waitHTTP(t, p.client, fmt.Sprintf("http://127.0.0.1:%d/", chalMgmt))
	waitHTTP(t, p.client, p.dirURL)
	resp, err := p.client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM([]byte(readBody(t, resp))) {
		t.Fatal("Pebble's root is not PEM")
	}
	return p
}

func waitHTTP(t *testing.T, c *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering after 30s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMEWithPebble has the edge obtain certificates from a real ACME CA and serve the app
// and the cover page with them, verified against the CA's root.
func TestACMEWithPebble(t *testing.T) {
	httpsLn, httpLn := listenLoopback(t), listenLoopback(t)
	p := startPebble(t, httpsLn.Addr().(*net.TCPAddr).Port, httpLn.Addr().(*net.TCPAddr).Port)
	dataDir := t.TempDir()
	e := startEdge(t, Config{
		Domain:         testDomain,
		Email:          "ops@tuturu.test",
		DirectoryURL:   p.dirURL,
		ACMEHTTPClient: p.client,
		HTTPSListener:  httpsLn,
		HTTPListener:   httpLn,
		App:            appHandler(),
		Base:           baseWithDir(t, dataDir),
	})

	for _, h2 := range []bool{false, true} {
		resp, err := httpsClient(e.Addr(), p.roots, h2).Get("https://" + testApp + "/")
		if err != nil {
			t.Fatalf("app over HTTPS with an ACME certificate: %v", err)
		}
		if body := readBody(t, resp); !strings.HasPrefix(body, "the app via") {
			t.Errorf("app body %q", body)
		}
		if resp.TLS == nil || resp.TLS.PeerCertificates[0].VerifyHostname(testApp) != nil {
			t.Errorf("certificate not for %s", testApp)
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no HSTS on the app")
		}
	}
	resp, err := httpsClient(e.Addr(), p.roots, false).Get("https://" + testDomain + "/")
	if err != nil {
		t.Fatalf("cover page: %v", err)
	}
	if body := readBody(t, resp); !strings.Contains(body, "Welcome") {
		t.Errorf("cover body %q", body)
	}
	// Certificates and the account key persist, so a restart does not ask the CA again.
	entries, err := os.ReadDir(filepath.Join(dataDir, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	joined := strings.Join(names, " ")
	if !strings.Contains(joined, testApp) || !strings.Contains(joined, "acme_account") {
		t.Errorf("ACME cache holds %v", names)
	}
	// Port 80 still redirects when ACME answers challenges there.
	req, _ := http.NewRequest("GET", "http://"+e.HTTPAddr()+"/x", nil)
	req.Host = testApp
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || !strings.HasPrefix(resp.Header.Get("Location"), "https://"+testApp+":"+strconv.Itoa(httpsLn.Addr().(*net.TCPAddr).Port)+"/x") {
		t.Errorf("port 80: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
