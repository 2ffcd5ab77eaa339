package deploy

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/tuturu/tuturu/internal/testtls"
)

// The chart, seen from this package's directory, and the release the tests render.
const (
	chartDir      = "helm/tuturu"
	helmRelease   = "tt"
	helmNamespace = "calls"
)

// helmTemplate renders the chart as `helm template` does, through Helm's own loader, engine and
// manifest sorter (the version pinned in go.mod, as tools/helm/go.mod pins the CLI): values go
// through YAML as a --values file would, and a template's fail or required comes back as the
// error. Helm as a library compiles in a fraction of the time of the whole CLI.
func helmTemplate(t *testing.T, values map[string]any) (string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("load chart: %w", err)
	}
	vals := helmValues(t, values)
	opts := common.ReleaseOptions{Name: helmRelease, Namespace: helmNamespace, Revision: 1, IsInstall: true}
	renderVals, err := chartutil.ToRenderValues(chrt, vals, opts, common.DefaultCapabilities.Copy())
	if err != nil {
		return "", fmt.Errorf("values: %w", err)
	}
	files, err := engine.Render(chrt, renderVals)
	if err != nil {
		return "", err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, sorted, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", fmt.Errorf("sort manifests: %w", err)
	}
	if len(hooks) > 0 {
		return "", fmt.Errorf("the chart renders %d hooks; these checks expect none", len(hooks))
	}
	var b strings.Builder
	for _, m := range sorted {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return b.String(), nil
}

// helmLint runs Helm's chart linter as `helm lint --strict` does: any warning fails. values nil
// lints the chart's own defaults.
func helmLint(t *testing.T, values map[string]any) error {
	t.Helper()
	var problems []string
	for _, m := range lint.RunAll(chartDir, helmValues(t, values), helmNamespace).Messages {
		if m.Severity >= support.WarningSev {
			problems = append(problems, m.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("helm lint --strict: %s", strings.Join(problems, "; "))
	}
	return nil
}

// helmValues is values as Helm reads them from a --values file (through YAML, so numbers and
// lists take the types Helm gives them); nil is an empty file.
func helmValues(t *testing.T, values map[string]any) common.Values {
	t.Helper()
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := common.ReadValues(b)
	if err != nil {
		t.Fatalf("values as Helm reads them: %v", err)
	}
	return vals
}

// manifests is one rendering of the chart, every object decoded into its API type.
type manifests struct {
	Deployments  []*appsv1.Deployment
	StatefulSets []*appsv1.StatefulSet
	DaemonSets   []*appsv1.DaemonSet
	Services     []*corev1.Service
	Secrets      []*corev1.Secret
	PDBs         []*policyv1.PodDisruptionBudget
	Policies     []*networkingv1.NetworkPolicy
	// metas holds every object's kind and metadata, in rendering order.
	metas []objectMeta
}

type objectMeta struct {
	kind string
	meta metav1.ObjectMeta
}

// workload is a Deployment, StatefulSet or DaemonSet, seen through what the checks need.
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector
	template   *corev1.PodTemplateSpec
	replicas   int32    // -1 for a DaemonSet
	claims     []string // a StatefulSet's volume claim templates
}

func (m *manifests) workloads() []workload {
	var out []workload
	for _, d := range m.Deployments {
		r := int32(1)
		if d.Spec.Replicas != nil {
			r = *d.Spec.Replicas
		}
		out = append(out, workload{"Deployment", d.Name, d.Spec.Selector, &d.Spec.Template, r, nil})
	}
	for _, s := range m.StatefulSets {
		r := int32(1)
		if s.Spec.Replicas != nil {
			r = *s.Spec.Replicas
		}
		var claims []string
		for _, c := range s.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		out = append(out, workload{"StatefulSet", s.Name, s.Spec.Selector, &s.Spec.Template, r, claims})
	}
	for _, d := range m.DaemonSets {
		out = append(out, workload{"DaemonSet", d.Name, d.Spec.Selector, &d.Spec.Template, -1, nil})
	}
	return out
}

// target is the tuturu target a workload runs: its one container's first argument.
func (w workload) target() string {
	if len(w.template.Spec.Containers) == 0 || len(w.template.Spec.Containers[0].Args) == 0 {
		return ""
	}
	return w.template.Spec.Containers[0].Args[0]
}

// byTarget returns the one workload running target.
func (m *manifests) byTarget(t *testing.T, target string) workload {
	t.Helper()
	var found []workload
	for _, w := range m.workloads() {
		if w.target() == target {
			found = append(found, w)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d workloads run %q, want 1", len(found), target)
	}
	return found[0]
}

func (m *manifests) service(name string) *corev1.Service {
	for _, s := range m.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (m *manifests) secret(name string) *corev1.Secret {
	for _, s := range m.Secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// decodeManifests splits helm template's output into documents and decodes each strictly into
// its API type: a field the type does not have, a duplicate key or a wrong type fails, as does
// a kind the chart is not expected to render.
func decodeManifests(t *testing.T, out string) *manifests {
	t.Helper()
	m := &manifests{}
	for i, doc := range splitDocuments(out) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d does not parse: %v\n%s", i, err, doc)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			m.Deployments, obj = append(m.Deployments, o), o
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			m.StatefulSets, obj = append(m.StatefulSets, o), o
		case "apps/v1 DaemonSet":
			o := &appsv1.DaemonSet{}
			m.DaemonSets, obj = append(m.DaemonSets, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.Services, obj = append(m.Services, o), o
		case "v1 Secret":
			o := &corev1.Secret{}
			m.Secrets, obj = append(m.Secrets, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			m.PDBs, obj = append(m.PDBs, o), o
		case "networking.k8s.io/v1 NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			m.Policies, obj = append(m.Policies, o), o
		default:
			t.Fatalf("document %d: unexpected %s %s (a new kind needs its checks in helm_test.go)\n%s", i, tm.APIVersion, tm.Kind, doc)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly into the API type: %v\n%s", i, tm.Kind, err, doc)
		}
		meta := obj.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta)
		m.metas = append(m.metas, objectMeta{tm.Kind, *meta})
	}
	if len(m.metas) == 0 {
		t.Fatalf("helm template rendered nothing:\n%s", out)
	}
	return m
}

// splitDocuments splits a YAML stream on "---" lines and drops documents with only comments.
func splitDocuments(s string) []string {
	var docs []string
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(s, -1) {
		content := false
		for _, l := range strings.Split(d, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				content = true
				break
			}
		}
		if content {
			docs = append(docs, d)
		}
	}
	return docs
}

// selects reports whether sel selects the pods labelled l.
func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(l))
}

// envOf returns the container's literal variables (valueFrom ones as "").
func envOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// listenAddrs returns the container's listen addresses: every *_ADDR variable, by name.
func listenAddrs(t *testing.T, c corev1.Container) map[string]netAddr {
	t.Helper()
	out := map[string]netAddr{}
	for _, e := range c.Env {
		if !strings.HasSuffix(e.Name, "_ADDR") {
			continue
		}
		host, port, err := net.SplitHostPort(e.Value)
		if err != nil {
			t.Errorf("%s: %s=%q is not host:port: %v", c.Name, e.Name, e.Value, err)
			continue
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			t.Errorf("%s: %s=%q: port %q is not a fixed port", c.Name, e.Name, e.Value, port)
			continue
		}
		out[e.Name] = netAddr{host, int32(p)}
	}
	return out
}

type netAddr struct {
	host string
	port int32
}

// unspecified reports whether the address listens on every interface of the pod.
func (a netAddr) unspecified() bool {
	return a.host == "" || a.host == "0.0.0.0" || a.host == "::"
}

// selfSignedTLS writes a certificate for names and its key as tls.crt and tls.key (the keys
// of a kubernetes.io/tls Secret) into dir, and returns a pool that trusts it.
func selfSignedTLS(t *testing.T, dir string, names ...string) *x509.CertPool {
	t.Helper()
	ca := testtls.NewCA(t)
	ca.Issue(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), 2, names...)
	return ca.Pool
}

// knownEnv lists the variables `tuturu <target> -h` documents, once per target.
var knownEnv = struct {
	sync.Mutex
	byTarget map[string][]string
}{byTarget: map[string][]string{}}

func envKnownTo(t *testing.T, bin, target string) []string {
	t.Helper()
	knownEnv.Lock()
	defer knownEnv.Unlock()
	if known, ok := knownEnv.byTarget[target]; ok {
		return known
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, target, "-h")
	cmd.Env = baseEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tuturu %s -h: %v\n%s", target, err, out)
	}
	var known []string
	for _, m := range helpEnv.FindAllStringSubmatch(string(out), -1) {
		known = append(known, m[1])
	}
	if len(known) < 4 {
		t.Fatalf("tuturu %s -h lists only %v", target, known)
	}
	knownEnv.byTarget[target] = known
	return known
}

// expansion matches a $(VAR) reference in an env value, which the kubelet replaces with the
// value of a variable defined earlier in the list.
var expansion = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// durationEnv parses a duration variable, failing the test when it is missing or bad.
func durationEnv(t *testing.T, c corev1.Container, name string) time.Duration {
	t.Helper()
	e := envVar(c, name)
	if e == nil {
		t.Fatalf("%s: %s is not set", c.Name, name)
	}
	d, err := time.ParseDuration(e.Value)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", c.Name, name, e.Value, err)
	}
	return d
}

func mountFor(c corev1.Container, path string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		p := strings.TrimSuffix(m.MountPath, "/")
		if (path == p || strings.HasPrefix(path, p+"/")) && (best == nil || len(p) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		return nil
	}
	return &spec.Volumes[i]
}
