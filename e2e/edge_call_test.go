package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"
)

// edgeCallDirEnv tells the child process of TestEdgeRelayOnlyCall where the test CA is.
const edgeCallDirEnv = "TUTURU_EDGE_CALL_DIR"

// TestEdgeRelayOnlyCall: two pion peers whose only ICE server is turns:t.<domain>:<edge port>
// and whose policy is relay connect and exchange data: media goes through TLS on the edge's
// port, the edge, and turnsvc.
//
// pion verifies a turns: server against the system roots only, so the test re-runs itself in
// a child process whose system roots are the test CA (SSL_CERT_FILE), and resolves the test
// names to 127.0.0.1 through the peers' own network stack.
func TestEdgeRelayOnlyCall(t *testing.T) {
	t.Parallel()
	dir := os.Getenv(edgeCallDirEnv)
	if dir == "" {
		dir = t.TempDir()
		ca := newEdgeCA(t, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEdgeRelayOnlyCall$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), edgeCallDirEnv+"="+dir, "SSL_CERT_FILE="+ca.caFile, "SSL_CERT_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestEdgeRelayOnlyCall") {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		return
	}
	ca := &edgeCA{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	s := startEdgeStack(t, ca)
	pin := nextPIN()
	a := newTurnsPeer(t, s, "a", pin)
	b := newTurnsPeer(t, s, "b", pin)
	a.waitConnected(connectTimeout)
	b.waitConnected(connectTimeout)
	aChat := a.waitChat(connectTimeout)
	bChat := b.remoteChannel("chat", connectTimeout)
	exchange(t, aChat, bChat, "via turns on the edge", 10)

	for _, p := range []*callPeer{a, b} {
		pair, err := selectedPair(p.pc)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: local candidate %s, want relay", p.name, pair.Local.Typ)
		}
		allocs := (&turnStack{stack: s.stack, admin: s.admin}).allocations(t, p.info.ParticipantID)
		if len(allocs) == 0 {
			t.Errorf("%s: no allocation in turnsvc", p.name)
		}
		for _, al := range allocs {
			if al.GetProtocol() != "tls" {
				t.Errorf("%s: allocation over %s, want tls (through the edge)", p.name, al.GetProtocol())
			}
		}
	}
}

func selectedPair(pc *webrtc.PeerConnection) (*webrtc.ICECandidatePair, error) {
	return pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
}

// newTurnsPeer joins pin through the gateway like newCallPeer, then keeps only the turns: URL
// and forces relay, the way a browser behind a firewall that allows only 443 ends up.
func newTurnsPeer(t *testing.T, s *edgeStack, name, pin string) *callPeer {
	t.Helper()
	return newCallPeerWith(t, s.stack, name, pin, func(info joinInfo) (*webrtc.API, webrtc.Configuration) {
		cfg := webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}
		for _, srv := range info.ICEServers {
			for _, u := range srv.URLs {
				if strings.HasPrefix(u, "turns:") {
					cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: []string{u}, Username: srv.Username, Credential: srv.Credential})
				}
			}
		}
		if len(cfg.ICEServers) != 1 {
			t.Fatalf("%s: want one turns: URL, got %+v", name, info.ICEServers)
		}
		return turnsAPI(t), cfg
	})
}

// turnsAPI is loopbackAPI with a network stack that resolves the test domain's names to
// 127.0.0.1, as DNS would resolve them to the server.
func turnsAPI(t *testing.T) *webrtc.API {
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	se := loopbackSettings()
	se.SetNet(testDNSNet{std})
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// testDNSNet resolves names under the test domain to 127.0.0.1.
type testDNSNet struct{ *stdnet.Net }

func loopbackName(address string) string {
	host, port, err := net.SplitHostPort(address)
	if err == nil && (host == edgeDomain || strings.HasSuffix(host, "."+edgeDomain)) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return address
}

func (n testDNSNet) ResolveTCPAddr(network, address string) (*net.TCPAddr, error) {
	return n.Net.ResolveTCPAddr(network, loopbackName(address))
}

func (n testDNSNet) ResolveUDPAddr(network, address string) (*net.UDPAddr, error) {
	return n.Net.ResolveUDPAddr(network, loopbackName(address))
}
