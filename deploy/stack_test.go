package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testnet"
	"github.com/tuturu/tuturu/internal/testproc"
)

// collector is an in-process OTLP/HTTP receiver standing in for the lgtm service.
type collector struct {
	url string

	mu      sync.Mutex
	spans   map[string][]string // service.name -> span names
	traces  map[string][]string // trace id -> service names with a span in it
	byID    map[string]span     // span id -> span
	metrics map[string]int      // service.name -> metric batches
}

type span struct {
	service, name, traceID, parentID string
}

// root follows parent links within what was received and returns the topmost span.
func (c *collector) root(s span) span {
	for range 100 {
		parent, ok := c.byID[s.parentID]
		if !ok {
			return s
		}
		s = parent
	}
	return s
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{spans: map[string][]string{}, traces: map[string][]string{}, byID: map[string]span{}, metrics: map[string]int{}}
	decode := func(w http.ResponseWriter, r *http.Request, msg proto.Message) bool {
		b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err == nil {
			err = proto.Unmarshal(b, msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		return true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		var req coltracepb.ExportTraceServiceRequest
		if !decode(w, r, &req) {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, rs := range req.GetResourceSpans() {
			svc := stringAttr(rs.GetResource().GetAttributes(), "service.name")
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans[svc] = append(c.spans[svc], s.GetName())
					id := fmt.Sprintf("%x", s.GetTraceId())
					c.byID[fmt.Sprintf("%x", s.GetSpanId())] = span{service: svc, name: s.GetName(), traceID: id, parentID: fmt.Sprintf("%x", s.GetParentSpanId())}
					if !slices.Contains(c.traces[id], svc) {
						c.traces[id] = append(c.traces[id], svc)
					}
				}
			}
		}
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		var req colmetricpb.ExportMetricsServiceRequest
		if !decode(w, r, &req) {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, rm := range req.GetResourceMetrics() {
			c.metrics[stringAttr(rm.GetResource().GetAttributes(), "service.name")]++
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

func stringAttr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// proc is one service running as its own process, as in its container.
type proc struct {
	*testproc.Proc
	addr string // where its Connect server listens, from its "serving" log line
}

func (p *proc) log() string { return p.Log() }

// startProc runs `tuturu <name>` with env and waits until its server says it is serving.
func startProc(t *testing.T, bin, name string, env map[string]string) *proc {
	t.Helper()
	full := baseEnv()
	for k, v := range env {
		full = append(full, k+"="+v)
	}
	p := testproc.Start(t, bin, name, full, "")
	return &proc{Proc: p, addr: p.Addr}
}

// freePort returns a loopback port free for both UDP and TCP, as the environment wants it.
func freePort(t *testing.T) string { return strconv.Itoa(testnet.FreeTURNPort(t)) }

// stop ends the process as `docker compose down` does (SIGTERM) and waits for it.
func (p *proc) stop(t *testing.T) { p.Stop(t, 45*time.Second) }

// TestComposeStackWithoutDocker runs the four services as separate processes with the
// environment compose.yaml gives them, changing only addresses (no compose DNS or published
// ports here) and the volume paths, in the order depends_on gives. It proves that the
// services agree on the tokens in the shared volume, that credsvc keeps its secret in its own
// database volume, that the admin RPCs answer the token from the volume over Connect and gRPC,
// that a join through the gateway works, and that every service exports its traces and
// metrics to the collector under its own name, with the join as one trace across services.
func TestComposeStackWithoutDocker(t *testing.T) {
	prebuild()
	t.Parallel()
	bin := tuturuBinary(t)
	p := loadCompose(t, nil)
	col := newCollector(t)
	tokensDir, dbDir := t.TempDir(), t.TempDir()
	turnPort := freePort(t)
	proxyPort := freePort(t) // turnsvc's PROXY-protocol listener for the edge
	for i := 0; proxyPort == turnPort && i < 10; i++ {
		proxyPort = freePort(t)
	}

	procs := map[string]*proc{}
	envFor := func(name string) map[string]string {
		env := map[string]string{}
		for k, v := range service(t, p, name).Environment {
			if v != nil {
				env[k] = *v
			}
		}
		overrides := map[string]string{
			"DATA_DIR":                    tokensDir,
			"OTEL_EXPORTER_OTLP_ENDPOINT": col.url,
			listenVar[name]:               "127.0.0.1:0",
			"CREDSVC_DB":                  filepath.Join(dbDir, "credsvc.db"),
			"TURN_PORT":                   turnPort,
			"TURN_LISTEN_HOST":            "127.0.0.1",
			"TURN_PROXY_PROTOCOL_ADDR":    "127.0.0.1:" + proxyPort,
		}
		if c := procs["credsvc"]; c != nil {
			overrides["CREDSVC_URL"] = "http://" + c.addr
		}
		if r := procs["roomsvc"]; r != nil {
			overrides["ROOMSVC_URL"] = "http://" + r.addr
		}
		for k, v := range overrides {
			// Only change what compose sets: anything else would test another configuration.
			if _, ok := env[k]; ok {
				env[k] = v
			}
		}
		return env
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Start in depends_on order, each once its dependencies pass their healthcheck.
	var order []string
	for len(order) < len(appServices) {
		progress := false
		for _, name := range appServices {
			if slices.Contains(order, name) {
				continue
			}
			ready := true
			for dep := range service(t, p, name).DependsOn {
				ready = ready && slices.Contains(order, dep)
			}
			if !ready {
				continue
			}
			procs[name] = startProc(t, bin, name, envFor(name))
			waitHealthy(ctx, t, bin, service(t, p, name).HealthCheck.Test, procs[name].addr)
			order = append(order, name)
			progress = true
		}
		if !progress {
			t.Fatalf("depends_on has a cycle or a missing service: started %v", order)
		}
	}

	// One token of each kind in the shared volume, private to the service user, and no
	// half-written temporary file left by the services racing to create them.
	entries, err := os.ReadDir(tokensDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left in the tokens volume", e.Name())
		}
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".token") && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if !slices.Contains(names, "admin.token") || !slices.Contains(names, "internal.token") || slices.Contains(names, "credsvc.db") {
		t.Errorf("tokens volume holds %v, want admin.token and internal.token (and not the credential database)", names)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "credsvc.db")); err != nil {
		t.Errorf("credsvc database not in its own volume: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(tokensDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(b))

	// The admin RPCs accept the token from the volume, with the Connect and gRPC protocols.
	for _, proto := range []struct {
		name string
		opts []connect.ClientOption
	}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}} {
		opts := append(slices.Clone(proto.opts), connect.WithInterceptors(platform.NewSendToken(admin)))
		hc := platform.NewH2CClient()
		if _, err := roomv1connect.NewRoomAdminServiceClient(hc, "http://"+procs["roomsvc"].addr, opts...).
			GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{})); err != nil {
			t.Errorf("%s: roomsvc GetStats with the admin token: %v", proto.name, err)
		}
		secrets, err := credv1connect.NewCredentialAdminServiceClient(hc, "http://"+procs["credsvc"].addr, opts...).
			ListSecrets(ctx, connect.NewRequest(&credv1.ListSecretsRequest{}))
		if err != nil {
			t.Errorf("%s: credsvc ListSecrets with the admin token: %v", proto.name, err)
		} else if len(secrets.Msg.GetSecrets()) == 0 {
			t.Errorf("%s: credsvc has no TURN secret: it should generate one on first start", proto.name)
		}
		if _, err := turnv1connect.NewTurnAdminServiceClient(hc, "http://"+procs["turnsvc"].addr, opts...).
			GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{})); err != nil {
			t.Errorf("%s: turnsvc GetStats with the admin token: %v", proto.name, err)
		}
		wrong := append(slices.Clone(proto.opts), connect.WithInterceptors(platform.NewSendToken("not-the-admin-token")))
		_, err = roomv1connect.NewRoomAdminServiceClient(hc, "http://"+procs["roomsvc"].addr, wrong...).
			GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("%s: GetStats with a wrong token: %v, want PermissionDenied", proto.name, err)
		}
	}

	// A browser's join through the gateway: one trace through gateway, roomsvc and credsvc.
	joinThroughGateway(t, procs["gateway"].addr, turnPort)

	// docker compose down: SIGTERM, dependants first. Each flushes its telemetry.
	for i := len(order) - 1; i >= 0; i-- {
		procs[order[i]].stop(t)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, name := range appServices {
		if len(col.spans[name]) == 0 {
			t.Errorf("no spans from %s (spans by service: %v)", name, col.spans)
		}
		if col.metrics[name] == 0 {
			t.Errorf("no metrics from %s (metric batches by service: %v)", name, col.metrics)
		}
	}
	// The join is one trace: roomsvc's and credsvc's spans descend, through parent links
	// carried across the processes, from the gateway's "signal join-pin" span.
	below := map[string]bool{}
	for _, s := range col.byID {
		if s.service != "roomsvc" && s.service != "credsvc" {
			continue
		}
		if r := col.root(s); r.service == "gateway" && r.name == "signal join-pin" {
			below[s.service] = true
		}
	}
	if !below["roomsvc"] || !below["credsvc"] {
		t.Errorf("spans under the gateway's signal join-pin: %v, want roomsvc and credsvc; traces: %v", below, col.traces)
	}
}

// waitHealthy runs the service's compose healthcheck (on the address it really listens on)
// until it passes, as compose does before starting the services that depend on it.
func waitHealthy(ctx context.Context, t *testing.T, bin string, test []string, addr string) {
	t.Helper()
	argv := slices.Clone(test[1:])
	argv[0] = bin
	argv[len(argv)-1] = addr
	var out []byte
	for range 20 {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = baseEnv()
		var err error
		if out, err = cmd.CombinedOutput(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%v never passed: %s", argv, out)
}

func joinThroughGateway(t *testing.T, gatewayAddr, turnPort string) {
	t.Helper()
	// The TURN URL follows compose's TURN_HOST and TURN_PORT.
	if answer := joinAnswer(t, gatewayAddr); !strings.Contains(answer, "turn:127.0.0.1:"+turnPort) {
		t.Errorf("join answer has no turn:127.0.0.1:%s URL: %s", turnPort, answer)
	}
}
