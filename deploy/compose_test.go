package deploy

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// appServices are the tuturu services `docker compose up` starts (no profile); each runs the
// target of its name. Services in profiles (the https edge) run one of these targets too.
var appServices = []string{"credsvc", "roomsvc", "gateway", "turnsvc"}

// listenVar names each target's listen-address variable.
var listenVar = map[string]string{
	"credsvc": "CREDSVC_ADDR",
	"roomsvc": "ROOMSVC_ADDR",
	"gateway": "GATEWAY_ADDR",
	"turnsvc": "TURNSVC_ADDR",
}

// loadCompose loads compose.yaml the way `docker compose config` does, with consistency
// checks, and env as the only environment (no .env file, no process environment).
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "compose.yaml")},
		cli.WithWorkingDirectory(abs),
		cli.WithEnv(list),
		cli.WithConsistency(true),
		// Every profile (the https edge too): each service is checked, not only the default set.
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func hostNetwork(s types.ServiceConfig) bool { return s.NetworkMode == "host" }

// tuturuServices are the services that run the tuturu image, profiles included.
func tuturuServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if s := p.Services[name]; s.Image == "tuturu:local" {
			out = append(out, s)
		}
	}
	return out
}

// target is the tuturu target a service runs.
func target(s types.ServiceConfig) string {
	if len(s.Command) == 0 {
		return ""
	}
	return s.Command[0]
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t, nil)
	// What `docker compose up` starts: the four services and Grafana, none behind a profile.
	for _, name := range append(slices.Clone(appServices), "lgtm") {
		if s := service(t, p, name); len(s.Profiles) > 0 {
			t.Errorf("%s is in profiles %v: plain `docker compose up` would not start it", name, s.Profiles)
		}
	}
	for _, name := range appServices {
		if target(service(t, p, name)) != name {
			t.Errorf("%s: command %q, want [%q] (the binary's target)", name, service(t, p, name).Command, name)
		}
	}
	for _, s := range tuturuServices(p) {
		if s.Build == nil || filepath.Clean(s.Build.Context) != mustAbs(t, root) {
			t.Errorf("%s: build %+v: want tuturu:local built from the repository root", s.Name, s.Build)
		}
		if len(s.Command) != 1 || listenVar[target(s)] == "" {
			t.Errorf("%s: command %q is not one tuturu service target", s.Name, s.Command)
		}
		if !slices.Contains(appServices, s.Name) && len(s.Profiles) == 0 {
			t.Errorf("%s: an extra %s must be behind a profile", s.Name, target(s))
		}
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s: restart %q: a crashed service should come back", s.Name, s.Restart)
		}
	}
	for name, s := range p.Services {
		if s.Image != "tuturu:local" && name != "lgtm" {
			t.Errorf("unexpected service %s (%s)", name, s.Image)
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadCompose(t, nil)
	for name, s := range p.Services {
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
			continue
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: healthcheck needs interval, timeout and retries", name)
		}
		if s.Image != "tuturu:local" {
			continue
		}
		// No shell in the image: exec form, the binary's own probe, on the service's own port.
		key := listenVar[target(s)]
		_, port, err := net.SplitHostPort(env(s, key))
		if err != nil {
			t.Errorf("%s: %s=%q: %v", name, key, env(s, key), err)
			continue
		}
		want := []string{"CMD", "/tuturu", "healthcheck", "-addr", "127.0.0.1:" + port}
		if !slices.Equal(hc.Test, want) {
			t.Errorf("%s: healthcheck %q, want %q", name, hc.Test, want)
		}
	}
}

func TestComposeStartOrder(t *testing.T) {
	p := loadCompose(t, nil)
	want := map[string][]string{
		"credsvc": nil,
		"roomsvc": {"credsvc"},
		"turnsvc": {"credsvc"},
		"gateway": {"credsvc", "roomsvc"},
		"lgtm":    nil,
	}
	for _, s := range tuturuServices(p) {
		if _, ok := want[s.Name]; !ok {
			// Another gateway (the edge) needs what the gateway needs, and may wait for more.
			for dep := range service(t, p, "gateway").DependsOn {
				if _, ok := s.DependsOn[dep]; !ok {
					t.Errorf("%s runs %s but does not wait for %s", s.Name, target(s), dep)
				}
			}
		}
	}
	for name, s := range p.Services {
		if _, ok := s.DependsOn["lgtm"]; ok {
			t.Errorf("%s waits for lgtm: the app must never wait for Grafana", name)
		}
		for d, dep := range s.DependsOn {
			if dep.Condition != types.ServiceConditionHealthy || !dep.Required {
				t.Errorf("%s depends on %s with condition %q required=%v, want service_healthy", name, d, dep.Condition, dep.Required)
			}
		}
	}
	for name, deps := range want {
		s := service(t, p, name)
		got := slices.Sorted(func(yield func(string) bool) {
			for d := range s.DependsOn {
				if !yield(d) {
					return
				}
			}
		})
		if !slices.Equal(got, deps) {
			t.Errorf("%s depends on %v, want %v (the app never waits for Grafana)", name, got, deps)
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	p := loadCompose(t, nil)
	// Every service shares one named volume at DATA_DIR: the tokens, created by whichever
	// starts first (platform.LoadOrCreateToken is safe across processes).
	tokenVolume := ""
	for _, s := range tuturuServices(p) {
		name := s.Name
		dataDir := env(s, "DATA_DIR")
		v := mountAt(s, dataDir)
		if dataDir == "" || v == nil || v.Type != types.VolumeTypeVolume {
			t.Errorf("%s: DATA_DIR=%q is not on a named volume", name, dataDir)
			continue
		}
		if tokenVolume == "" {
			tokenVolume = v.Source
		} else if v.Source != tokenVolume {
			t.Errorf("%s: DATA_DIR on volume %q, others on %q: the services would disagree on tokens", name, v.Source, tokenVolume)
		}
		if v.ReadOnly {
			t.Errorf("%s: DATA_DIR is read-only: the first service to start must be able to create the tokens", name)
		}
	}
	// credsvc keeps its database (TURN secrets) on a named volume of its own.
	cred := service(t, p, "credsvc")
	db := env(cred, "CREDSVC_DB")
	v := mountAt(cred, path.Dir(db))
	if db == "" || v == nil || v.Type != types.VolumeTypeVolume {
		t.Fatalf("credsvc: CREDSVC_DB=%q is not on a named volume", db)
	}
	if _, ok := p.Volumes[v.Source]; !ok {
		t.Errorf("credsvc database volume %q is not declared under volumes:", v.Source)
	}
	for _, s := range tuturuServices(p) {
		if s.Name == "credsvc" {
			continue
		}
		for _, m := range s.Volumes {
			if m.Source == v.Source {
				t.Errorf("%s mounts credsvc's database volume %q", s.Name, v.Source)
			}
		}
	}
	// The image creates both directories owned by nonroot, so new volumes start writable.
	df := parseDockerfile(t)
	final := df.stages[len(df.stages)-1]
	for _, dir := range []string{env(cred, "DATA_DIR"), path.Dir(db)} {
		if !slices.ContainsFunc(final.instrs, func(in instruction) bool {
			return in.cmd == "COPY" && strings.Contains(in.args, "--chown=65532") && strings.HasSuffix(in.args, " "+dir)
		}) {
			t.Errorf("Dockerfile: no COPY --chown=65532 creating %s in the final image: a new volume there would be owned by root", dir)
		}
	}
}

// mountAt returns the service's mount whose target is dir.
func mountAt(s types.ServiceConfig, dir string) *types.ServiceVolumeConfig {
	for i := range s.Volumes {
		if s.Volumes[i].Target == dir {
			return &s.Volumes[i]
		}
	}
	return nil
}

func TestComposePorts(t *testing.T) {
	p := loadCompose(t, nil)
	for name, s := range p.Services {
		for _, port := range s.Ports {
			public := name == "gateway" && port.Target == 8080
			if !public && port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q: only the gateway is public; admin and telemetry ports stay on 127.0.0.1", name, port.Target, port.HostIP)
			}
		}
	}
	gw := service(t, p, "gateway")
	if !slices.ContainsFunc(gw.Ports, func(pc types.ServicePortConfig) bool {
		return pc.Target == 8080 && pc.Published == "8080" && pc.HostIP == ""
	}) {
		t.Errorf("gateway does not publish 8080: %+v", gw.Ports)
	}
	lgtm := service(t, p, "lgtm")
	for _, want := range []uint32{3000, 4317, 4318} {
		if !slices.ContainsFunc(lgtm.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == want }) {
			t.Errorf("lgtm does not publish %d", want)
		}
	}
	// Bridge services listen on every interface of their container (the compose network);
	// a host-network service must not: its listen address is the host's.
	for _, s := range tuturuServices(p) {
		key := listenVar[target(s)]
		host, _, _ := net.SplitHostPort(env(s, key))
		if hostNetwork(s) && host != "127.0.0.1" {
			t.Errorf("%s is on the host network: %s=%q must be 127.0.0.1", s.Name, key, env(s, key))
		}
		if !hostNetwork(s) && host != "0.0.0.0" {
			t.Errorf("%s: %s=%q: listen on 0.0.0.0 inside the container or nothing else reaches it", s.Name, key, env(s, key))
		}
	}
}

// TestComposeReachability checks that every URL a service is given points at a service that
// listens there, by compose name on the bridge network or by a loopback-published port from
// the host network.
func TestComposeReachability(t *testing.T) {
	p := loadCompose(t, nil)
	// Where each service listens, as its container port.
	listens := map[string]string{"lgtm:otlp": "4318"}
	for _, name := range appServices {
		_, port, _ := net.SplitHostPort(env(service(t, p, name), listenVar[name]))
		listens[name] = port
	}
	check := func(from types.ServiceConfig, key, target, port string) {
		t.Helper()
		raw := env(from, key)
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" {
			t.Errorf("%s: %s=%q is not an http URL", from.Name, key, raw)
			return
		}
		if hostNetwork(from) {
			to := service(t, p, strings.TrimSuffix(target, ":otlp"))
			published := slices.ContainsFunc(to.Ports, func(pc types.ServicePortConfig) bool {
				return pc.HostIP == "127.0.0.1" && pc.Published == u.Port() && fmt.Sprint(pc.Target) == port
			})
			if u.Hostname() != "127.0.0.1" || !published {
				t.Errorf("%s (host network): %s=%q: %s does not publish container port %s on 127.0.0.1:%s", from.Name, key, raw, to.Name, port, u.Port())
			}
			return
		}
		if u.Hostname() != strings.TrimSuffix(target, ":otlp") || u.Port() != port {
			t.Errorf("%s: %s=%q, want http://%s:%s", from.Name, key, raw, strings.TrimSuffix(target, ":otlp"), port)
		}
	}
	for _, s := range tuturuServices(p) {
		check(s, "OTEL_EXPORTER_OTLP_ENDPOINT", "lgtm:otlp", listens["lgtm:otlp"])
		if target(s) != "credsvc" {
			check(s, "CREDSVC_URL", "credsvc", listens["credsvc"])
		}
		if target(s) == "gateway" {
			check(s, "ROOMSVC_URL", "roomsvc", listens["roomsvc"])
		}
	}
}

func TestComposeTelemetry(t *testing.T) {
	p := loadCompose(t, nil)
	for _, s := range tuturuServices(p) {
		name := s.Name
		if env(s, "OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT not set: it would export nothing", name)
		}
		// Each service names itself (SetupTelemetry); a shared name would merge them in Tempo.
		if v := env(s, "OTEL_SERVICE_NAME"); v != "" {
			t.Errorf("%s: OTEL_SERVICE_NAME=%q overrides the service's own name", name, v)
		}
	}
	lgtm := service(t, p, "lgtm")
	if !strings.HasPrefix(lgtm.Image, "grafana/otel-lgtm") {
		t.Errorf("lgtm image %q, want grafana/otel-lgtm", lgtm.Image)
	}
	for k := range lgtm.Environment {
		// The image forwards all telemetry to OTEL_EXPORTER_OTLP_ENDPOINT when it is set.
		if strings.HasPrefix(k, "OTEL_") {
			t.Errorf("lgtm: %s is set: the image would forward everything there", k)
		}
	}
}

// TestComposeGrafanaProvisioning checks that the dashboard provider compose mounts points at
// the directory compose mounts the dashboards into, and that the files exist.
func TestComposeGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t, nil)
	lgtm := service(t, p, "lgtm")
	const provisioning = "/otel-lgtm/grafana/conf/provisioning/dashboards/"
	var providerFile, dashboardsTarget, dashboardsSource string
	for _, m := range lgtm.Volumes {
		if m.Type != types.VolumeTypeBind {
			continue
		}
		if _, err := os.Stat(m.Source); err != nil {
			t.Errorf("lgtm mounts %s, which does not exist: %v", m.Source, err)
		}
		if !m.ReadOnly {
			t.Errorf("lgtm mounts %s read-write", m.Source)
		}
		if strings.HasPrefix(m.Target, provisioning) {
			providerFile = m.Source
		} else {
			dashboardsTarget, dashboardsSource = m.Target, m.Source
		}
	}
	if providerFile == "" || dashboardsTarget == "" {
		t.Fatalf("lgtm must mount one provider file into %s and one dashboards directory", provisioning)
	}
	b, err := os.ReadFile(providerFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
		Datasources []any `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", providerFile, err)
	}
	if cfg.APIVersion != 1 || len(cfg.Providers) != 1 || cfg.Providers[0].Type != "file" || cfg.Providers[0].Options.Path != dashboardsTarget {
		t.Errorf("%s: want one file provider reading %s, got %+v", providerFile, dashboardsTarget, cfg)
	}
	if len(cfg.Datasources) != 0 {
		t.Errorf("%s declares data sources: the image already provisions Prometheus, Tempo and Loki", providerFile)
	}
	if files, _ := filepath.Glob(filepath.Join(dashboardsSource, "*.json")); len(files) == 0 {
		t.Errorf("no dashboard JSON in %s", dashboardsSource)
	}
}

// secretKey matches variable names whose values are secrets.
var secretKey = regexp.MustCompile(`(?i)(token|secret|password|passwd|_key)\b`)

func TestComposeHasNoSecrets(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// In the file: a secret variable may only pass through the operator's own value.
	line := regexp.MustCompile(`^\s*-?\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s*[:=]\s*(.*)$`)
	for i, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil || !secretKey.MatchString(m[1]) {
			continue
		}
		if v := strings.TrimSpace(m[2]); v != "" && v != "${"+m[1]+":-}" && v != "${"+m[1]+"}" {
			t.Errorf("compose.yaml:%d: %s has a value in the file (%q): secrets are generated into volumes", i+1, m[1], v)
		}
	}
	// Loaded with an empty environment, every secret is empty, so it is generated.
	p := loadCompose(t, nil)
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if secretKey.MatchString(k) && v != nil && *v != "" {
				t.Errorf("%s: %s is %q with no environment: it would not be generated", name, k, *v)
			}
		}
	}
	// And an operator's own value reaches every service that reads it.
	p = loadCompose(t, map[string]string{"ADMIN_TOKEN": "operator-chosen-admin-token"})
	for _, s := range tuturuServices(p) {
		if got := env(s, "ADMIN_TOKEN"); got != "operator-chosen-admin-token" {
			t.Errorf("%s: ADMIN_TOKEN=%q: the operator's value must reach every service", s.Name, got)
		}
	}
}

// TestComposeTurnAddresses checks that the TURN address clients are given and the one turnsvc
// advertises follow EXTERNAL_IP, and that both sides agree on the port.
func TestComposeTurnAddresses(t *testing.T) {
	for _, tc := range []struct {
		env                  map[string]string
		turnHost, externalIP string
		port                 string
	}{
		{nil, "127.0.0.1", "127.0.0.1", "3478"},
		{map[string]string{"EXTERNAL_IP": "203.0.113.7"}, "203.0.113.7", "203.0.113.7", "3478"},
		{map[string]string{"EXTERNAL_IP": "203.0.113.7", "TURN_HOST": "turn.example.org", "TURN_PORT": "3479"}, "turn.example.org", "203.0.113.7", "3479"},
	} {
		p := loadCompose(t, tc.env)
		cred, turn := service(t, p, "credsvc"), service(t, p, "turnsvc")
		if got := env(cred, "TURN_HOST"); got != tc.turnHost {
			t.Errorf("env %v: credsvc TURN_HOST=%q, want %q", tc.env, got, tc.turnHost)
		}
		if got := env(turn, "EXTERNAL_IP"); got != tc.externalIP {
			t.Errorf("env %v: turnsvc EXTERNAL_IP=%q, want %q", tc.env, got, tc.externalIP)
		}
		if env(cred, "TURN_PORT") != tc.port || env(turn, "TURN_PORT") != tc.port {
			t.Errorf("env %v: TURN_PORT credsvc %q turnsvc %q, want both %s", tc.env, env(cred, "TURN_PORT"), env(turn, "TURN_PORT"), tc.port)
		}
	}
	// The https profile's turns: URL follows DOMAIN, and is absent without it.
	for _, tc := range []struct {
		env        map[string]string
		host, port string
	}{
		{nil, "", ""},
		{map[string]string{"DOMAIN": "call.example.org"}, "t.call.example.org", "443"},
	} {
		cred := service(t, loadCompose(t, tc.env), "credsvc")
		if env(cred, "TURNS_HOST") != tc.host || env(cred, "TURNS_PORT") != tc.port {
			t.Errorf("env %v: TURNS_HOST=%q TURNS_PORT=%q, want %q %q", tc.env, env(cred, "TURNS_HOST"), env(cred, "TURNS_PORT"), tc.host, tc.port)
		}
	}
	turn := service(t, loadCompose(t, nil), "turnsvc")
	if !hostNetwork(turn) {
		// Without host networking the relay range and 3478 must be published instead.
		t.Errorf("turnsvc is not on the host network: publish 3478/udp, 3478/tcp and the relay range, and update this test")
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestComposeTokensReadable checks that every service can read the token files, which the
// first service to start creates as the image's user (65532) with mode 0600. A service that
// runs as root with every capability dropped has no CAP_DAC_OVERRIDE, so root is then an
// ordinary user for file permissions and needs CAP_DAC_READ_SEARCH to read them.
func TestComposeTokensReadable(t *testing.T) {
	p := loadCompose(t, nil)
	for _, s := range tuturuServices(p) {
		user := strings.Split(s.User, ":")[0]
		if user == "" || user == "65532" || user == "nonroot" {
			continue // the image's user, owner of the files
		}
		if user != "0" && user != "root" {
			t.Errorf("%s runs as %q: the tokens belong to 65532 with mode 0600", s.Name, s.User)
			continue
		}
		dropped := slices.ContainsFunc(s.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") })
		canRead := slices.ContainsFunc(s.CapAdd, func(c string) bool {
			c = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
			return c == "DAC_READ_SEARCH" || c == "DAC_OVERRIDE"
		})
		if dropped && !canRead {
			t.Errorf("%s runs as root with cap_drop ALL and no DAC_READ_SEARCH: it cannot read the 0600 token files of user 65532", s.Name)
		}
	}
}
