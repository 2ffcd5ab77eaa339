package deploy

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testetcd"
)

// helmSet is one set of values the chart is rendered with.
type helmSet struct {
	name   string
	values map[string]any
}

type vals = map[string]any

// helmSets are the configurations the chart is linted, rendered, checked and run with. Each
// gives turn.host or turn.externalIP: the chart requires one (see TestHelmRequiredValues).
var helmSets = []helmSet{
	{"defaults", vals{"turn": vals{"host": "turn.example.org"}}},
	{"domain-tls", vals{
		"domain": "call.example.org",
		"tls":    vals{"secretName": "call-example-org-tls"},
		"turn":   vals{"host": "turn.call.example.org", "tls": vals{"secretName": "turn-call-example-org-tls"}},
	}},
	{"tracing", vals{
		"turn": vals{"host": "turn.example.org"},
		"otel": vals{"endpoint": "http://otel-collector.observability:4318", "protocol": "http/protobuf"},
	}},
	{"three-gateways", vals{
		"gateway":       vals{"replicas": 3, "env": vals{"WS_MAX_SOCKETS_PER_ADDRESS": 128}},
		"turn":          vals{"externalIP": "203.0.113.7", "nodeSelector": vals{"tuturu.example.org/turn": "true"}},
		"networkPolicy": vals{"nodeCIDRs": []any{"10.0.0.0/16", "203.0.113.0/24"}},
		"tokens":        vals{"existingSecret": "operator-tokens"},
	}},
	// credsvc on an etcd the operator runs; the run step starts an embedded one for it.
	{"credsvc-etcd", vals{
		"turn":    vals{"host": "turn.example.org"},
		"credsvc": vals{"replicas": 2, "storage": vals{"type": "etcd"}, "etcd": vals{"endpoints": []any{"http://etcd-0.etcd.storage:2379", "http://etcd-1.etcd.storage:2379"}, "prefix": "/tuturu/test/"}},
	}},
	{"three-shards", vals{
		"roomsvc": vals{"shards": 3},
		"gateway": vals{"replicas": 2},
		"turn":    vals{"host": "turn.example.org"},
	}},
}

// effective is the chart's values.yaml with the set's values merged over it, as Helm does.
func (s helmSet) effective(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]any
	if err := yaml.Unmarshal(b, &base); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	// Through JSON, so that numbers and maps have the types yaml.Unmarshal gives.
	j, err := yaml.Marshal(s.values)
	if err != nil {
		t.Fatal(err)
	}
	var over map[string]any
	if err := yaml.Unmarshal(j, &over); err != nil {
		t.Fatal(err)
	}
	return merge(base, over)
}

func merge(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// val reads a dotted path from values.
func val(v map[string]any, path string) any {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func valString(v map[string]any, path string) string {
	if x := val(v, path); x != nil {
		return fmt.Sprint(x)
	}
	return ""
}

func valInt(t *testing.T, v map[string]any, path string) int {
	t.Helper()
	n, err := strconv.Atoi(valString(v, path))
	if err != nil {
		t.Fatalf("values %s: %v", path, err)
	}
	return n
}

// render renders the chart for the set as helm template does and decodes what it renders.
func render(t *testing.T, s helmSet) *manifests {
	t.Helper()
	out, err := helmTemplate(t, s.values)
	if err != nil {
		t.Fatalf("helm template (%s): %v", s.name, err)
	}
	return decodeManifests(t, out)
}

// TestHelmLint runs helm lint --strict on the chart's own defaults and on each values set.
func TestHelmLint(t *testing.T) {
	t.Parallel()
	// The bare defaults lint clean: a missing required value is only reported in lint mode.
	if err := helmLint(t, nil); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, s := range helmSets {
		if err := helmLint(t, s.values); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}

// TestHelmRequiredValues checks that what the chart cannot guess stops the rendering with a
// message that names the value, instead of rendering a deployment that cannot work.
func TestHelmRequiredValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no TURN address", vals{}, "turn.host is required"},
		{"domain without certificate", vals{"turn": vals{"host": "turn.example.org"}, "domain": "call.example.org"}, "tls.secretName"},
		{"no roomsvc shard", vals{"turn": vals{"host": "turn.example.org"}, "roomsvc": vals{"shards": 0}}, "roomsvc.shards must be"},
		{"a part of a shard", vals{"turn": vals{"host": "turn.example.org"}, "roomsvc": vals{"shards": 1.5}}, "roomsvc.shards must be"},
		{"credsvc on etcd without endpoints", vals{"turn": vals{"host": "turn.example.org"}, "credsvc": vals{"storage": vals{"type": "etcd"}}}, "credsvc.etcd.endpoints is required"},
		{"credsvc on another store", vals{"turn": vals{"host": "turn.example.org"}, "credsvc": vals{"storage": vals{"type": "redis"}}}, "credsvc.storage.type must be bbolt or etcd"},
		{"no credsvc replica", vals{"turn": vals{"host": "turn.example.org"}, "credsvc": vals{"replicas": 0, "storage": vals{"type": "etcd"}, "etcd": vals{"endpoints": []any{"http://etcd:2379"}}}}, "credsvc.replicas must be"},
	} {
		_, err := helmTemplate(t, tc.values)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: helm template: err %v; want a failure naming %q", tc.name, err, tc.want)
		}
	}
}

// TestHelmCredsvcEtcdTLS: with credsvc.etcd.tlsSecretName, credsvc reads its etcd CA, client
// certificate and key from that Secret, mounted read-only. (The run step of the credsvc-etcd set
// uses plain http: the etcd the test starts has no TLS.)
func TestHelmCredsvcEtcdTLS(t *testing.T) {
	t.Parallel()
	mf := render(t, helmSet{"credsvc-etcd-tls", vals{
		"turn":    vals{"host": "turn.example.org"},
		"credsvc": vals{"storage": vals{"type": "etcd"}, "etcd": vals{"endpoints": []any{"https://etcd.storage:2379"}, "tlsSecretName": "etcd-client"}},
	}})
	w := mf.byTarget(t, "credsvc")
	c := w.template.Spec.Containers[0]
	for name, file := range map[string]string{"CREDSVC_ETCD_CA_FILE": "ca.crt", "CREDSVC_ETCD_CERT_FILE": "tls.crt", "CREDSVC_ETCD_KEY_FILE": "tls.key"} {
		e := envVar(c, name)
		if e == nil || filepath.Base(e.Value) != file {
			t.Errorf("credsvc %s = %+v, want the Secret's %s", name, e, file)
			continue
		}
		m := mountFor(c, e.Value)
		if m == nil || !m.ReadOnly {
			t.Errorf("credsvc %s=%s is not on a read-only mount", name, e.Value)
			continue
		}
		if v := volume(w.template.Spec, m.Name); v == nil || v.Secret == nil || v.Secret.SecretName != "etcd-client" {
			t.Errorf("credsvc %s=%s is on volume %q, want the Secret etcd-client", name, e.Value, m.Name)
		}
	}
}

// TestHelmTemplate renders each values set and checks the objects against one another and
// against the configuration the tuturu binary reads.
func TestHelmTemplate(t *testing.T) {
	prebuild()
	t.Parallel()
	bin := tuturuBinary(t)
	for _, s := range helmSets {
		t.Run(s.name, func(t *testing.T) {
			mf := render(t, s)
			eff := s.effective(t)
			checkObjects(t, mf)
			checkWorkloads(t, mf, eff, bin)
			checkServices(t, mf)
			checkURLs(t, mf)
			checkTokens(t, mf, eff)
			checkGateway(t, mf, eff)
			checkStatefulServices(t, mf, eff)
			checkTurn(t, mf, eff)
			checkNetworkPolicies(t, mf, eff)
		})
	}
}

// TestHelmStack runs, for each values set, the four services as processes with the
// environment their rendered pods get (see podRun.env: only addresses, ports and paths are
// moved onto this machine), in dependency order. It proves that the binary's own configuration
// validation accepts every rendered environment, that each rendered probe passes the way the
// kubelet would run it, that a join through the gateway gets the TURN addresses the chart
// configures, that the edge serves the certificate Secret's files, and that each service stops
// cleanly within its terminationGracePeriodSeconds.
func TestHelmStack(t *testing.T) {
	prebuild()
	t.Parallel()
	bin := tuturuBinary(t)
	for _, s := range helmSets {
		t.Run(s.name, func(t *testing.T) { runChartStack(t, bin, s) })
	}
}

func runChartStack(t *testing.T, bin string, s helmSet) {
	mf := render(t, s)
	eff := s.effective(t)
	col := newCollector(t)
	run := &podRun{
		secrets:   map[string]map[string][]byte{},
		tlsDir:    t.TempDir(),
		addrs:     map[string]string{},
		turnPort:  freePort(t),
		collector: col.url,
	}
	for run.tlsPort = freePort(t); run.tlsPort == run.turnPort; run.tlsPort = freePort(t) {
	}
	if valString(eff, "credsvc.storage.type") == "etcd" {
		// The chart does not deploy etcd: the operator's cluster is an embedded one here.
		run.etcd = testetcd.Start(t).Endpoint
	}
	for _, sec := range mf.Secrets {
		run.secrets[sec.Name] = sec.Data
	}
	if ex := valString(eff, "tokens.existingSecret"); ex != "" {
		// The operator's own Secret.
		run.secrets[ex] = map[string][]byte{"admin-token": []byte(platform.RandomToken(24)), "internal-token": []byte(platform.RandomToken(24))}
	}
	domain := valString(eff, "domain")
	turnHost := valString(eff, "turn.host")
	if turnHost == "" {
		turnHost = valString(eff, "turn.externalIP")
	}
	names := []string{turnHost}
	if domain != "" {
		names = append(names, domain, "a."+domain, "t."+domain)
	}
	pool := selfSignedTLS(t, run.tlsDir, names...)

	procs := map[string]*proc{}
	var shards []*proc // roomsvc, by ordinal: one process per replica, each a shard
	replicas := map[string][]*proc{}
	order := []string{"credsvc", "roomsvc", "turnsvc", "gateway"}
	for _, target := range order {
		w := mf.byTarget(t, target)
		n := 1
		if target == "roomsvc" || w.kind == "Deployment" && target == "credsvc" {
			n = int(w.replicas) // roomsvc shards; credsvc replicas sharing etcd
		}
		for range n {
			p := startProc(t, bin, target, run.env(t, w))
			probeLikeKubelet(t, bin, w, p)
			replicas[target] = append(replicas[target], p)
			if target == "roomsvc" {
				shards = append(shards, p)
				run.shardAddrs = append(run.shardAddrs, p.addr)
			}
			if _, first := procs[target]; !first || target == "roomsvc" {
				procs[target] = p
				run.addrs[target] = p.addr
			}
		}
	}
	if t.Failed() {
		return
	}
	if len(shards) > 1 {
		// The gateway streams to every shard: /readyz lists each one up.
		if body := readyShards(t, procs["gateway"].addr, len(shards)); strings.Count(body, " up\n") != len(shards) {
			t.Errorf("gateway /readyz does not list %d shards up:\n%s", len(shards), body)
		}
	}

	// A join through the gateway hands out the TURN addresses the chart gave credsvc.
	answer := joinAnswer(t, procs["gateway"].addr)
	if want := "turn:" + turnHost + ":" + run.turnPort; !strings.Contains(answer, want) {
		t.Errorf("join answer has no %s: %s", want, answer)
	}
	if valString(eff, "turn.tls.secretName") != "" {
		turnsHost := valString(eff, "turn.tls.host")
		if turnsHost == "" {
			turnsHost = turnHost
		}
		if want := "turns:" + turnsHost + ":" + run.tlsPort; !strings.Contains(answer, want) {
			t.Errorf("join answer has no %s: %s", want, answer)
		}
		// turnsvc loaded the certificate from the mounted Secret: a handshake for its name works.
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+run.tlsPort, &tls.Config{RootCAs: pool, ServerName: turnsHost})
		if err != nil {
			t.Errorf("TURN over TLS handshake for %s: %v", turnsHost, err)
		} else {
			conn.Close()
		}
	}
	if domain != "" {
		// The edge serves the app on a.<domain> with the certificate from the mounted Secret.
		https := logField(procs["gateway"], "edge serving", "https")
		if https == "" {
			t.Fatalf("the gateway logged no edge address:\n%s", procs["gateway"].log())
		}
		if err := httpsGet(t, https, "a."+domain, "/healthz", pool); err != nil {
			t.Errorf("edge: %v", err)
		}
	}

	// Stop as the kubelet does, dependants first; each within its grace period (less the
	// preStop sleep, which comes before SIGTERM).
	for i := len(order) - 1; i >= 0; i-- {
		w := mf.byTarget(t, order[i])
		grace := time.Duration(*w.template.Spec.TerminationGracePeriodSeconds) * time.Second
		if lc := w.template.Spec.Containers[0].Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
			grace -= time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
		}
		for _, p := range replicas[order[i]] {
			took := stopWithin(t, p, grace)
			t.Logf("%s stopped in %v (grace %v)", order[i], took.Round(time.Millisecond), grace)
		}
	}
	if valString(eff, "otel.endpoint") != "" {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, name := range appServices {
			if col.metrics[name] == 0 {
				t.Errorf("no metrics from %s: the rendered OTEL_* do not export (metric batches by service: %v)", name, col.metrics)
			}
		}
		if len(col.spans["gateway"]) == 0 {
			t.Errorf("no spans from the gateway: %v", col.spans)
		}
	}
}
