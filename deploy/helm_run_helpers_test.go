package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/coder/websocket"
	corev1 "k8s.io/api/core/v1"

	"github.com/tuturu/tuturu/internal/platform"
)

// podRun is what a test needs to run one rendered pod's container as a local process.
type podRun struct {
	secrets map[string]map[string][]byte // Secret name → data (rendered or the operator's)
	tlsDir  string                       // tls.crt and tls.key for every certificate Secret
	addrs   map[string]string            // target → the address it really listens on
	// shardAddrs are where the roomsvc shards really listen, by StatefulSet ordinal.
	shardAddrs []string
	turnPort   string // TURN_PORT, for credsvc and turnsvc alike
	tlsPort    string // TURN_TLS_PORT and TURNS_PORT alike
	collector  string // OTLP/HTTP endpoint
	etcd       string // the client URL of the etcd credsvc uses, for CREDSVC_ETCD_ENDPOINTS
}

// rewritable are the variables whose rendered values a test may not use as they are, because
// they name cluster addresses, fixed ports or container paths; everything else is passed
// exactly as rendered.
var rewritable = []string{
	"GATEWAY_ADDR", "ROOMSVC_ADDR", "CREDSVC_ADDR", "TURNSVC_ADDR", "HTTPS_ADDR", "HTTP_ADDR",
	"ROOMSVC_URL", "CREDSVC_URL", "DATA_DIR", "CREDSVC_DB", "TLS_CERT_FILE", "TLS_KEY_FILE",
	"TURN_TLS_CERT", "TURN_TLS_KEY", "TURN_PORT", "TURN_TLS_PORT", "TURNS_PORT", "TURN_LISTEN_HOST",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "CREDSVC_ETCD_ENDPOINTS",
}

// env resolves the container's environment as the kubelet would (secretKeyRef, the downward
// API with this machine as the node, $(VAR) expansion), then moves it onto this machine:
// listen addresses to 127.0.0.1:0, service URLs to where the services really listen, volume
// paths to temporary directories (certificate Secrets filled with a test certificate), TURN
// ports to free ones and the OTLP endpoint to an in-process collector.
func (r *podRun) env(t *testing.T, w workload) map[string]string {
	t.Helper()
	spec := w.template.Spec
	c := spec.Containers[0]
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		dir := t.TempDir()
		v := volume(spec, vm.Name)
		switch {
		case v != nil && v.Secret != nil:
			for _, f := range []string{"tls.crt", "tls.key"} {
				b, err := os.ReadFile(filepath.Join(r.tlsDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		case v != nil && v.EmptyDir != nil, slices.Contains(w.claims, vm.Name):
		default:
			t.Fatalf("%s: volume %q is neither a Secret, an emptyDir nor a claim template", w.name, vm.Name)
		}
		mounts[strings.TrimSuffix(vm.MountPath, "/")] = dir
	}
	env := map[string]string{}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expansion.ReplaceAllStringFunc(e.Value, func(ref string) string {
				if x, ok := env[expansion.FindStringSubmatch(ref)[1]]; ok {
					return x
				}
				return ref
			})
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			b, ok := r.secrets[ref.Name][ref.Key]
			if !ok {
				t.Fatalf("%s: %s: no key %q in Secret %q", w.name, e.Name, ref.Key, ref.Name)
			}
			v = string(b)
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				v = w.name + "-0"
			case "metadata.namespace":
				v = helmNamespace
			case "spec.nodeName":
				v = "node-0"
			case "status.hostIP", "status.podIP":
				v = "127.0.0.1"
			default:
				t.Fatalf("%s: %s from field %s, which this test does not emulate", w.name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		default:
			t.Fatalf("%s: %s: valueFrom %+v, which this test does not emulate", w.name, e.Name, e.ValueFrom)
		}
		env[e.Name] = v
	}
	for k, v := range env {
		orig := v
		switch {
		case strings.HasSuffix(k, "_ADDR"):
			v = "127.0.0.1:0"
		case k == "ROOMSVC_URL":
			v = r.shardURLs(t, w.name, v)
		case k == "CREDSVC_URL":
			v = "http://" + r.addrs["credsvc"]
		case k == "TURN_PORT":
			v = r.turnPort
		case k == "TURN_TLS_PORT", k == "TURNS_PORT":
			v = r.tlsPort
		case k == "TURN_LISTEN_HOST":
			v = "127.0.0.1"
		case k == "OTEL_EXPORTER_OTLP_ENDPOINT":
			v = r.collector
		case k == "CREDSVC_ETCD_ENDPOINTS":
			v = r.etcd
		case strings.HasPrefix(v, "/"):
			for mp, dir := range mounts {
				if v == mp || strings.HasPrefix(v, mp+"/") {
					v = dir + strings.TrimPrefix(v, mp)
				}
			}
		}
		if v != orig {
			if !slices.Contains(rewritable, k) {
				t.Fatalf("%s: the test would change %s=%q, which is not an address, port or path", w.name, k, orig)
			}
			env[k] = v
		}
	}
	return env
}

// shardURLs moves each URL of a rendered ROOMSVC_URL, http://<statefulset>-<i>.<service>:port,
// to where shard i really listens.
func (r *podRun) shardURLs(t *testing.T, name, list string) string {
	t.Helper()
	var out []string
	for _, raw := range strings.Split(list, ",") {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: ROOMSVC_URL %q: %v", name, list, err)
		}
		pod, _, _ := strings.Cut(u.Hostname(), ".")
		ord, err := strconv.Atoi(pod[strings.LastIndexByte(pod, '-')+1:])
		if err != nil || ord < 0 || ord >= len(r.shardAddrs) {
			t.Fatalf("%s: ROOMSVC_URL %q: %s is not a running roomsvc shard", name, list, pod)
		}
		out = append(out, "http://"+r.shardAddrs[ord])
	}
	return strings.Join(out, ",")
}

// probeLikeKubelet runs each of the container's probes against the running process, the way
// the kubelet would, until it passes or a bound runs out.
func probeLikeKubelet(t *testing.T, bin string, w workload, p *proc) {
	t.Helper()
	c := w.template.Spec.Containers[0]
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"startup", c.StartupProbe}, {"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
		if pr.probe == nil {
			continue // TestHelmTemplate reports it
		}
		h := pr.probe.ProbeHandler
		var check func(context.Context) error
		switch {
		case h.GRPC != nil:
			// The kubelet's gRPC probe: grpc.health.v1 Check over h2c, for the service named.
			service := ""
			if h.GRPC.Service != nil {
				service = *h.GRPC.Service
			}
			client := grpchealth.NewClient(platform.NewH2CClient(), "http://"+p.addr, connect.WithGRPC())
			check = func(ctx context.Context) error {
				res, err := client.Check(ctx, &grpchealth.CheckRequest{Service: service})
				if err != nil {
					return err
				}
				if res.Status != grpchealth.StatusServing {
					return fmt.Errorf("status %v", res.Status)
				}
				return nil
			}
		case h.HTTPGet != nil:
			u := "http://" + p.addr + h.HTTPGet.Path
			check = func(ctx context.Context) error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				res.Body.Close()
				if res.StatusCode < 200 || res.StatusCode >= 400 {
					return fmt.Errorf("GET %s: %s", u, res.Status)
				}
				return nil
			}
		case h.Exec != nil:
			argv := slices.Clone(h.Exec.Command)
			if argv[0] != "/tuturu" {
				t.Fatalf("%s: exec probe %q does not run the image's /tuturu", w.name, argv)
			}
			argv[0] = bin
			for i := range argv {
				if i > 0 && argv[i-1] == "-addr" {
					argv[i] = p.addr
				}
			}
			check = func(ctx context.Context) error {
				cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Env = baseEnv()
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}
		default:
			t.Fatalf("%s: %s probe without a handler", w.name, pr.kind)
		}
		timeout := time.Duration(max(pr.probe.TimeoutSeconds, 1)) * time.Second
		deadline := time.Now().Add(20 * time.Second)
		var err error
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err = check(ctx)
			cancel()
			if err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("%s: %s probe never passed within 20s: %v\n%s", w.name, pr.kind, err, p.log())
		}
	}
}

// logField returns a field of the first JSON log line with message msg.
func logField(p *proc, msg, field string) string {
	for _, l := range strings.Split(p.log(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == msg {
			if v, ok := line[field].(string); ok {
				return v
			}
		}
	}
	return ""
}

// readyShards reads the gateway's /readyz until it lists n roomsvc shards up (streams open
// in the background), at most for 10 s, and returns the last body.
func readyShards(t *testing.T, gatewayAddr string, n int) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		res, err := client.Get("http://" + gatewayAddr + "/readyz")
		if err != nil {
			t.Fatalf("gateway /readyz: %v", err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("gateway /readyz: %v", err)
		}
		if body = string(b); strings.Count(body, " up\n") == n {
			break
		}
	}
	return body
}

// httpsGet fetches path from addr with SNI name, trusting only pool.
func httpsGet(t *testing.T, addr, name, path string, pool *x509.CertPool) error {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
	defer client.CloseIdleConnections()
	res, err := client.Get("https://" + name + path)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET https://%s%s: %s", name, path, res.Status)
	}
	return nil
}

// joinAnswer joins a PIN through the gateway and returns the join-pin answer.
func joinAnswer(t *testing.T, gatewayAddr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+gatewayAddr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial gateway /ws: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join-pin","pin":"135790"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the join answer: %v", err)
		}
		var msg struct{ Type string }
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("gateway sent %q: %v", b, err)
		}
		if msg.Type == "error" {
			t.Fatalf("join refused: %s", b)
		}
		if msg.Type == "join-pin" {
			_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"leave"}`))
			c.Close(websocket.StatusNormalClosure, "")
			return string(b)
		}
	}
}

// stopWithin sends SIGTERM, as the kubelet does after the preStop hook, and waits at most
// grace for a clean exit; past it the kubelet would SIGKILL.
func stopWithin(t *testing.T, p *proc, grace time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	p.Stop(t, grace)
	return time.Since(start)
}
