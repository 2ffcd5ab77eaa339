package deploy

// The checks TestHelmTemplate runs on each rendering of the chart.

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// checkObjects: names unique per kind, every object in the release's namespace with the
// release's labels.
func checkObjects(t *testing.T, mf *manifests) {
	seen := map[string]bool{}
	for _, o := range mf.metas {
		key := o.kind + "/" + o.meta.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if o.meta.Namespace != helmNamespace {
			t.Errorf("%s: namespace %q, want the release's %q", key, o.meta.Namespace, helmNamespace)
		}
		if o.meta.Labels["app.kubernetes.io/instance"] != helmRelease || o.meta.Labels["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s: labels %v lack the release's instance and managed-by", key, o.meta.Labels)
		}
	}
	// credsvc is a StatefulSet on bbolt, a Deployment on etcd (see checkStatefulServices).
	if len(mf.Deployments)+len(mf.StatefulSets) != 3 || len(mf.StatefulSets) < 1 || len(mf.DaemonSets) != 1 {
		t.Errorf("workloads: %d Deployments, %d StatefulSets, %d DaemonSets; want the gateway Deployment, the roomsvc StatefulSet, credsvc and the turnsvc DaemonSet",
			len(mf.Deployments), len(mf.StatefulSets), len(mf.DaemonSets))
	}
}

// checkWorkloads: selectors, image, target, probes, resources, security, data directory,
// drain times and the environment each container gets.
func checkWorkloads(t *testing.T, mf *manifests, eff map[string]any, bin string) {
	image := valString(eff, "image.repository") + ":" + valString(eff, "image.tag")
	if valString(eff, "image.tag") == "" {
		image = valString(eff, "image.repository") + ":" + chartAppVersion(t)
	}
	all := mf.workloads()
	targets := map[string]bool{}
	for _, w := range all {
		id := w.kind + "/" + w.name
		// The selector selects the workload's own pods and nobody else's.
		if !selects(t, w.selector, w.template.Labels) {
			t.Errorf("%s: selector %v does not select its pod labels %v", id, w.selector, w.template.Labels)
		}
		for _, o := range all {
			if o.name != w.name && selects(t, w.selector, o.template.Labels) {
				t.Errorf("%s: selector %v also selects the pods of %s/%s", id, w.selector, o.kind, o.name)
			}
		}
		spec := w.template.Spec
		if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
			t.Errorf("%s: %d containers, %d init containers; want one container", id, len(spec.Containers), len(spec.InitContainers))
			continue
		}
		c := spec.Containers[0]
		target := w.target()
		if !slices.Contains(appServices, target) || len(c.Args) != 1 || c.Name != target {
			t.Errorf("%s: container %q args %q: want one tuturu service target, named after it", id, c.Name, c.Args)
			continue
		}
		if targets[target] {
			t.Errorf("%s: a second workload runs %s", id, target)
		}
		targets[target] = true
		if c.Image != image {
			t.Errorf("%s: image %q, want %q", id, c.Image, image)
		}
		if len(c.Command) != 0 {
			t.Errorf("%s: command %q replaces the image's entrypoint (/tuturu)", id, c.Command)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token it never uses", id)
		}
		checkSecurity(t, id, spec, c)
		checkResources(t, id, c)
		checkProbes(t, id, spec, c, listenVar[target])
		checkEnvRead(t, id, c, bin, target)
		checkDataDir(t, id, w, c)
		checkGrace(t, id, target, spec, c)
	}
	for _, name := range appServices {
		if !targets[name] {
			t.Errorf("no workload runs %s", name)
		}
	}
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: appVersion %q: %v", c.AppVersion, err)
	}
	return c.AppVersion
}

func checkSecurity(t *testing.T, id string, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc, sc := spec.SecurityContext, c.SecurityContext
	if sc == nil {
		t.Errorf("%s: container has no securityContext", id)
		return
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && psc != nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", id)
	}
	user := sc.RunAsUser
	if user == nil && psc != nil {
		user = psc.RunAsUser
	}
	if user == nil || *user == 0 {
		// The image's user is 65532; a numeric user lets the kubelet check runAsNonRoot.
		t.Errorf("%s: no numeric non-root runAsUser", id)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", id)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", id)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", id)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v, want every one dropped and none added", id, sc.Capabilities)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: no RuntimeDefault seccomp profile", id)
	}
}

func checkResources(t *testing.T, id string, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim || req.IsZero() || lim.IsZero() {
			t.Errorf("%s: %s request %v and limit %v must both be set", id, r, c.Resources.Requests, c.Resources.Limits)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", id, r, req.String(), lim.String())
		}
	}
}

// checkProbes: liveness, readiness and startup probes exist and ask the service's own listen
// address (listenKey) the way the kubelet can reach it: gRPC health or HTTP on an address that
// listens on the pod's interfaces, or the image's healthcheck on the exact loopback address.
func checkProbes(t *testing.T, id string, spec corev1.PodSpec, c corev1.Container, listenKey string) {
	t.Helper()
	addrs := listenAddrs(t, c)
	listen, ok := addrs[listenKey]
	if !ok {
		t.Errorf("%s: %s is not set: the service would listen on its loopback default", id, listenKey)
		return
	}
	if spec.HostNetwork {
		// On the node's network any other address would expose the admin RPCs on the node.
		if listen.host != "127.0.0.1" {
			t.Errorf("%s: host network, %s=%s:%d; want 127.0.0.1", id, listenKey, listen.host, listen.port)
		}
	} else if !listen.unspecified() {
		t.Errorf("%s: %s=%s:%d: the kubelet and the Service reach the pod's address; listen on every interface (:port)", id, listenKey, listen.host, listen.port)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}, {"startup", c.StartupProbe}} {
		if p.probe == nil {
			t.Errorf("%s: no %s probe", id, p.kind)
			continue
		}
		h := p.probe.ProbeHandler
		switch {
		case h.GRPC != nil:
			if h.GRPC.Port != listen.port || spec.HostNetwork || !listen.unspecified() {
				t.Errorf("%s: %s gRPC probe on port %d, but %s is %s:%d", id, p.kind, h.GRPC.Port, listenKey, listen.host, listen.port)
			}
			if h.GRPC.Service != nil && *h.GRPC.Service != "" {
				t.Errorf("%s: %s gRPC probe asks for service %q; the servers report the whole server as \"\"", id, p.kind, *h.GRPC.Service)
			}
		case h.HTTPGet != nil:
			port := resolvePort(t, id, c, h.HTTPGet.Port)
			if port != listen.port || spec.HostNetwork || !listen.unspecified() {
				t.Errorf("%s: %s HTTP probe on port %v, but %s is %s:%d", id, p.kind, h.HTTPGet.Port.String(), listenKey, listen.host, listen.port)
			}
			want := "/healthz"
			if p.kind == "readiness" {
				want = "/readyz"
			}
			if h.HTTPGet.Path != want {
				t.Errorf("%s: %s probe GET %s, want %s", id, p.kind, h.HTTPGet.Path, want)
			}
		case h.Exec != nil:
			cmd := h.Exec.Command
			want := []string{"/tuturu", "healthcheck", "-addr", fmt.Sprintf("%s:%d", listen.host, listen.port)}
			if !slices.Equal(cmd, want) {
				t.Errorf("%s: %s exec probe %q, want %q", id, p.kind, cmd, want)
			}
			if p.probe.TimeoutSeconds <= 3 {
				// tuturu healthcheck gives up after 3 s; the kubelet's timeout must be longer.
				t.Errorf("%s: %s exec probe timeout %ds, want more than the healthcheck's 3 s", id, p.kind, p.probe.TimeoutSeconds)
			}
		default:
			t.Errorf("%s: %s probe has no handler", id, p.kind)
		}
	}
}

// resolvePort resolves a numeric or named port of c.
func resolvePort(t *testing.T, id string, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("%s: no container port named %q", id, p.StrVal)
	return -1
}

// checkEnvRead: every variable the container gets is one `tuturu <target> -h` documents, apart
// from OTEL_* (the OpenTelemetry SDK's) and variables that only feed a $(VAR) expansion; no
// name twice; expansions only refer to variables defined before them; secrets never literal.
func checkEnvRead(t *testing.T, id string, c corev1.Container, bin, target string) {
	t.Helper()
	known := envKnownTo(t, bin, target)
	defined := map[string]bool{}
	expanded := map[string]bool{}
	for _, e := range c.Env {
		if defined[e.Name] {
			t.Errorf("%s: %s is set twice (the later one wins, silently)", id, e.Name)
		}
		for _, ref := range expansion.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				t.Errorf("%s: %s refers to $(%s), which is not defined before it", id, e.Name, ref[1])
			}
			expanded[ref[1]] = true
		}
		defined[e.Name] = true
		if secretKey.MatchString(e.Name) && e.Value != "" && !filepath.IsAbs(e.Value) {
			// A path (TURN_TLS_KEY) names a file of a mounted Secret: checkTLSFiles.
			t.Errorf("%s: %s has a literal value: secrets come from a Secret", id, e.Name)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "OTEL_") || slices.Contains(known, e.Name) {
			continue
		}
		if expanded[e.Name] && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			continue // the downward API, for an expansion such as OTEL_RESOURCE_ATTRIBUTES
		}
		t.Errorf("%s: sets %s, which `tuturu %s` does not read", id, e.Name, target)
	}
}

// checkDataDir: DATA_DIR (and credsvc's database) is on a writable volume, since the root
// filesystem is read-only: credsvc's on its claim template, the others' on an emptyDir.
func checkDataDir(t *testing.T, id string, w workload, c corev1.Container) {
	t.Helper()
	paths := []string{"DATA_DIR"}
	// On etcd (a Deployment) credsvc keeps nothing on the pod: DATA_DIR on an emptyDir, no file.
	onEtcd := w.target() == "credsvc" && w.kind == "Deployment"
	if w.target() == "credsvc" && !onEtcd {
		paths = append(paths, "CREDSVC_DB")
	}
	if onEtcd && envVar(c, "CREDSVC_DB") != nil {
		t.Errorf("%s: CREDSVC_DB is set beside CREDSVC_ETCD_ENDPOINTS", id)
	}
	for _, name := range paths {
		e := envVar(c, name)
		if e == nil || !filepath.IsAbs(e.Value) {
			t.Errorf("%s: %s is not an absolute path: %+v", id, name, e)
			continue
		}
		mount := mountFor(c, e.Value)
		if mount == nil || mount.ReadOnly {
			t.Errorf("%s: %s=%s is on the read-only root filesystem", id, name, e.Value)
			continue
		}
		if w.target() == "credsvc" && !onEtcd {
			if !slices.Contains(w.claims, mount.Name) {
				t.Errorf("%s: %s=%s is on volume %q, not on a PersistentVolumeClaim template %v: the TURN secrets would be lost with the pod", id, name, e.Value, mount.Name, w.claims)
			}
			continue
		}
		if v := volume(w.template.Spec, mount.Name); v == nil || v.EmptyDir == nil {
			t.Errorf("%s: %s=%s is on volume %q, want an emptyDir", id, name, e.Value, mount.Name)
		}
	}
}

// checkGrace: terminationGracePeriodSeconds covers the service's own stop.
func checkGrace(t *testing.T, id, target string, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	if spec.TerminationGracePeriodSeconds == nil {
		t.Errorf("%s: no terminationGracePeriodSeconds", id)
		return
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	// Every server stops in at most 10 s (in-flight calls); then each service's own work.
	const serverStop = 10 * time.Second
	var need time.Duration
	switch target {
	case "gateway":
		// preStop sleep; then the sockets are closed (10 s at most) after the server stops,
		// while the edge drains relayed connections for EDGE_DRAIN_TIMEOUT.
		var sleep time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		need = sleep + max(serverStop+10*time.Second, durationEnv(t, c, "EDGE_DRAIN_TIMEOUT"))
	case "turnsvc":
		need = durationEnv(t, c, "TURN_DRAIN_TIMEOUT") + serverStop
	case "roomsvc":
		need = serverStop + 5*time.Second // queued revocations
	case "credsvc":
		need = serverStop
	}
	if grace < need+5*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want at least %v (its drains) plus a margin", id, grace, need)
	}
}

// checkServices: each Service selects the pods of exactly one workload, and each port leads to
// a port the pods declare and a *_ADDR they listen on, on every interface.
func checkServices(t *testing.T, mf *manifests) {
	for _, s := range mf.Services {
		var sel []workload
		for _, w := range mf.workloads() {
			if len(s.Spec.Selector) > 0 && selectsSet(s.Spec.Selector, w.template.Labels) {
				sel = append(sel, w)
			}
		}
		if len(sel) != 1 {
			t.Errorf("Service %s selects %d workloads, want 1", s.Name, len(sel))
			continue
		}
		w := sel[0]
		c := w.template.Spec.Containers[0]
		addrs := listenAddrs(t, c)
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			port := resolvePort(t, "Service "+s.Name, c, target)
			if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
				return cp.ContainerPort == port && cp.Protocol == p.Protocol
			}) {
				t.Errorf("Service %s port %d → %d/%s: %s declares no such container port", s.Name, p.Port, port, p.Protocol, w.name)
			}
			found := false
			for name, a := range addrs {
				if a.port == port {
					found = true
					if !a.unspecified() {
						t.Errorf("Service %s port %d → %s=%s:%d, which the Service cannot reach", s.Name, p.Port, name, a.host, a.port)
					}
				}
			}
			if !found {
				t.Errorf("Service %s port %d → %d: no *_ADDR of %s listens there (%v)", s.Name, p.Port, port, w.name, addrs)
			}
		}
	}
}

func selectsSet(sel, l map[string]string) bool {
	for k, v := range sel {
		if l[k] != v {
			return false
		}
	}
	return true
}

// checkURLs: ROOMSVC_URL (a list: one URL per roomsvc shard) and CREDSVC_URL name a Service
// (or StatefulSet pods behind its headless Service) that selects the service they are for, on
// a port that leads to its listen address; ROOMSVC_URL names every roomsvc pod once.
func checkURLs(t *testing.T, mf *manifests) {
	wantTarget := map[string]string{"ROOMSVC_URL": "roomsvc", "CREDSVC_URL": "credsvc"}
	for _, w := range mf.workloads() {
		c := w.template.Spec.Containers[0]
		for key, target := range wantTarget {
			e := envVar(c, key)
			if e == nil {
				continue
			}
			id := w.name + " " + key
			urls := strings.Split(e.Value, ",")
			if key != "ROOMSVC_URL" && len(urls) != 1 {
				t.Errorf("%s=%q: want one URL", id, e.Value)
			}
			ordinals := map[int]bool{}
			for _, raw := range urls {
				if ord, ok := checkURL(t, mf, id, raw, target); ok && ord >= 0 {
					if ordinals[ord] {
						t.Errorf("%s=%q: pod %d is listed twice", id, e.Value, ord)
					}
					ordinals[ord] = true
				}
			}
			if key == "ROOMSVC_URL" && len(ordinals) != int(mf.byTarget(t, target).replicas) {
				t.Errorf("%s=%q names %d roomsvc pods of %d: every shard must be listed", id, e.Value, len(ordinals), mf.byTarget(t, target).replicas)
			}
		}
	}
	// Who needs which URL: the gateway both, roomsvc and turnsvc credsvc's.
	for target, keys := range map[string][]string{"gateway": {"ROOMSVC_URL", "CREDSVC_URL"}, "roomsvc": {"CREDSVC_URL"}, "turnsvc": {"CREDSVC_URL"}} {
		c := mf.byTarget(t, target).template.Spec.Containers[0]
		for _, k := range keys {
			if envVar(c, k) == nil {
				t.Errorf("%s: %s is not set: it would use its loopback default", target, k)
			}
		}
	}
}

// checkURL checks one service URL (see checkURLs); ord is the StatefulSet ordinal of the pod
// it names, or -1 when it names a Service.
func checkURL(t *testing.T, mf *manifests, id, raw, target string) (ord int, ok bool) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Port() == "" || u.Path != "" {
		t.Errorf("%s: %q: want http://<service>:<port>", id, raw)
		return 0, false
	}
	labels := strings.Split(strings.TrimSuffix(strings.TrimSuffix(u.Hostname(), ".svc.cluster.local"), ".svc"), ".")
	var svc, pod string
	switch {
	case len(labels) == 1 || (len(labels) == 2 && labels[1] == helmNamespace):
		svc = labels[0]
	case len(labels) == 2 || (len(labels) == 3 && labels[2] == helmNamespace):
		pod, svc = labels[0], labels[1]
	default:
		t.Errorf("%s: %q: not a Service or pod name in the release's namespace", id, raw)
		return 0, false
	}
	s := mf.service(svc)
	if s == nil {
		t.Errorf("%s: %q: no Service %s is rendered", id, raw, svc)
		return 0, false
	}
	tw := mf.byTarget(t, target)
	if !selectsSet(s.Spec.Selector, tw.template.Labels) {
		t.Errorf("%s: %q: Service %s does not select %s", id, raw, svc, target)
	}
	ord = -1
	if pod != "" {
		// <statefulset>-<ordinal>.<headless service>
		sts := slices.IndexFunc(mf.StatefulSets, func(x *appsv1.StatefulSet) bool {
			return x.Spec.ServiceName == svc && strings.HasPrefix(pod, x.Name+"-")
		})
		if s.Spec.ClusterIP != corev1.ClusterIPNone || sts < 0 {
			t.Errorf("%s: %q: %s is not a pod of a StatefulSet governed by the headless Service %s", id, raw, pod, svc)
		} else if ord, err = strconv.Atoi(strings.TrimPrefix(pod, mf.StatefulSets[sts].Name+"-")); err != nil || ord < 0 || int32(ord) >= *mf.StatefulSets[sts].Spec.Replicas {
			t.Errorf("%s: %q: %s is not one of the StatefulSet's ordinals", id, raw, pod)
			return 0, false
		}
	}
	port, _ := strconv.Atoi(u.Port())
	i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port })
	if i < 0 {
		t.Errorf("%s: %q: Service %s has no port %d", id, raw, svc, port)
		return ord, true
	}
	tp := s.Spec.Ports[i].TargetPort
	if tp.Type == intstr.Int && tp.IntVal == 0 {
		tp = intstr.FromInt32(s.Spec.Ports[i].Port)
	}
	tc := tw.template.Spec.Containers[0]
	if got, want := resolvePort(t, svc, tc, tp), listenAddrs(t, tc)[listenVar[target]].port; got != want {
		t.Errorf("%s: %q leads to port %d of %s, which listens on %d (%s)", id, raw, got, target, want, listenVar[target])
	}
	return ord, true
}

// checkTokens: every container gets ADMIN_TOKEN and INTERNAL_TOKEN from one Secret (the chart's
// own, kept on uninstall, or the operator's), never as literal values.
func checkTokens(t *testing.T, mf *manifests, eff map[string]any) {
	want := helmRelease + "-tuturu-tokens"
	if existing := valString(eff, "tokens.existingSecret"); existing != "" {
		want = existing
		if mf.secret(existing) != nil {
			t.Errorf("tokens.existingSecret is set, but the chart renders Secret %s too", existing)
		}
	} else {
		s := mf.secret(want)
		if s == nil {
			t.Fatalf("no Secret %s rendered", want)
		}
		if s.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("Secret %s: no helm.sh/resource-policy: keep; an uninstall would lose the tokens", want)
		}
		admin, internal := string(s.Data["admin-token"]), string(s.Data["internal-token"])
		if len(admin) < 32 || len(internal) < 32 || admin == internal {
			t.Errorf("Secret %s: tokens of %d and %d characters (equal: %v): want two different random tokens of at least 32", want, len(admin), len(internal), admin == internal)
		}
	}
	for _, w := range mf.workloads() {
		c := w.template.Spec.Containers[0]
		for key, secretKey := range map[string]string{"ADMIN_TOKEN": "admin-token", "INTERNAL_TOKEN": "internal-token"} {
			e := envVar(c, key)
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s: %s does not come from a Secret: %+v", w.name, key, e)
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != want || ref.Key != secretKey || (ref.Optional != nil && *ref.Optional) {
				t.Errorf("%s: %s from %s/%s (optional %v), want %s/%s", w.name, key, ref.Name, ref.Key, ref.Optional, want, secretKey)
			}
		}
	}
}

// checkGateway: replicas, rolling update, PodDisruptionBudget, the public Service and, with a
// domain, the edge's ports and certificate.
func checkGateway(t *testing.T, mf *manifests, eff map[string]any) {
	w := mf.byTarget(t, "gateway")
	c := w.template.Spec.Containers[0]
	if w.kind != "Deployment" || int(w.replicas) != valInt(t, eff, "gateway.replicas") {
		t.Errorf("gateway: %s with %d replicas, want a Deployment with gateway.replicas=%d", w.kind, w.replicas, valInt(t, eff, "gateway.replicas"))
	}
	d := mf.Deployments[slices.IndexFunc(mf.Deployments, func(d *appsv1.Deployment) bool { return d.Name == w.name })]
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("gateway: rolling update %+v: want maxUnavailable 0, so a rollout never lowers the gateways taking calls", d.Spec.Strategy)
	}
	if len(mf.PDBs) != 1 || !selects(t, mf.PDBs[0].Spec.Selector, w.template.Labels) {
		t.Fatalf("want one PodDisruptionBudget selecting the gateway pods, got %d", len(mf.PDBs))
	}
	for _, o := range mf.workloads() {
		if o.name != w.name && selects(t, mf.PDBs[0].Spec.Selector, o.template.Labels) {
			t.Errorf("the PodDisruptionBudget selects %s too", o.name)
		}
	}
	if mu := mf.PDBs[0].Spec.MaxUnavailable; mu == nil || mu.IntValue() < 1 {
		// minAvailable = replicas would block every node drain.
		t.Errorf("PodDisruptionBudget: maxUnavailable %v, want at least 1", mu)
	}
	svc := mf.service(helmRelease + "-tuturu-gateway")
	if svc == nil {
		t.Fatal("no gateway Service")
	}
	if svc.Spec.Type != corev1.ServiceType(valString(eff, "gateway.service.type")) {
		t.Errorf("gateway Service type %s, want %s", svc.Spec.Type, valString(eff, "gateway.service.type"))
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		// The gateway limits joins and sockets per client address.
		t.Errorf("gateway Service: externalTrafficPolicy %q: the gateway would see node addresses instead of callers'", svc.Spec.ExternalTrafficPolicy)
	}
	addrs := listenAddrs(t, c)
	servicePort := func(port int32) int32 {
		for _, p := range svc.Spec.Ports {
			if p.Port == port {
				return resolvePort(t, "gateway Service", c, p.TargetPort)
			}
		}
		return -1
	}
	domain := valString(eff, "domain")
	if got := envOf(c)["DOMAIN"]; got != domain {
		t.Errorf("gateway DOMAIN=%q, want %q", got, domain)
	}
	if domain == "" {
		if servicePort(int32(valInt(t, eff, "gateway.service.httpPort"))) != addrs["GATEWAY_ADDR"].port {
			t.Errorf("gateway Service: port %d does not lead to GATEWAY_ADDR", valInt(t, eff, "gateway.service.httpPort"))
		}
		return
	}
	if servicePort(int32(valInt(t, eff, "gateway.service.httpsPort"))) != addrs["HTTPS_ADDR"].port {
		t.Errorf("gateway Service: port %d does not lead to HTTPS_ADDR %v", valInt(t, eff, "gateway.service.httpsPort"), addrs["HTTPS_ADDR"])
	}
	if servicePort(int32(valInt(t, eff, "gateway.service.httpPort"))) != addrs["HTTP_ADDR"].port {
		t.Errorf("gateway Service: port %d does not lead to HTTP_ADDR %v", valInt(t, eff, "gateway.service.httpPort"), addrs["HTTP_ADDR"])
	}
	for _, a := range []string{"HTTPS_ADDR", "HTTP_ADDR"} {
		if addrs[a].port < 1024 {
			// Binding below 1024 needs a capability the non-root container does not have.
			t.Errorf("gateway %s port %d: a non-root container cannot bind it", a, addrs[a].port)
		}
	}
	checkTLSFiles(t, "gateway", w, c, "TLS_CERT_FILE", "TLS_KEY_FILE", valString(eff, "tls.secretName"))
}

// checkTLSFiles: the certificate and key variables point at tls.crt and tls.key of a volume
// from the named Secret.
func checkTLSFiles(t *testing.T, id string, w workload, c corev1.Container, certKey, keyKey, secretName string) {
	t.Helper()
	for key, file := range map[string]string{certKey: "tls.crt", keyKey: "tls.key"} {
		e := envVar(c, key)
		if e == nil {
			t.Errorf("%s: %s is not set", id, key)
			continue
		}
		mount := mountFor(c, e.Value)
		if mount == nil || filepath.Base(e.Value) != file || filepath.Dir(e.Value) != strings.TrimSuffix(mount.MountPath, "/") {
			t.Errorf("%s: %s=%q is not %s at the root of a mounted volume", id, key, e.Value, file)
			continue
		}
		v := volume(w.template.Spec, mount.Name)
		if v == nil || v.Secret == nil || v.Secret.SecretName != secretName || len(v.Secret.Items) != 0 {
			t.Errorf("%s: %s is on volume %q, want the whole Secret %s", id, key, mount.Name, secretName)
		}
	}
}

// checkStatefulServices: roomsvc is a StatefulSet of roomsvc.shards replicas behind a headless
// Service; credsvc one replica with its database on a claim of the configured size.
func checkStatefulServices(t *testing.T, mf *manifests, eff map[string]any) {
	want := map[string]int32{"roomsvc": int32(valInt(t, eff, "roomsvc.shards")), "credsvc": 1}
	targets := []string{"roomsvc", "credsvc"}
	if valString(eff, "credsvc.storage.type") == "etcd" {
		checkCredsvcOnEtcd(t, mf, eff)
		targets = targets[:1]
	}
	for _, target := range targets {
		w := mf.byTarget(t, target)
		if w.kind != "StatefulSet" || w.replicas != want[target] {
			t.Errorf("%s: %s with %d replicas, want a StatefulSet of %d (a shard's rooms and the bbolt file are one process's)", target, w.kind, w.replicas, want[target])
			continue
		}
		i := slices.IndexFunc(mf.StatefulSets, func(s *appsv1.StatefulSet) bool { return s.Name == w.name })
		sts := mf.StatefulSets[i]
		gov := mf.service(sts.Spec.ServiceName)
		if gov == nil || gov.Spec.ClusterIP != corev1.ClusterIPNone || !selectsSet(gov.Spec.Selector, w.template.Labels) {
			t.Errorf("%s: serviceName %q is not a rendered headless Service selecting its pods", target, sts.Spec.ServiceName)
		}
	}
	i := slices.IndexFunc(mf.StatefulSets, func(s *appsv1.StatefulSet) bool {
		return len(s.Spec.Template.Spec.Containers) == 1 && slices.Equal(s.Spec.Template.Spec.Containers[0].Args, []string{"credsvc"})
	})
	if i < 0 {
		return
	}
	sts := mf.StatefulSets[i]
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("credsvc: %d volume claim templates, want 1", len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.String() != valString(eff, "credsvc.storage.size") {
		t.Errorf("credsvc claim of %s, want credsvc.storage.size %s", size.String(), valString(eff, "credsvc.storage.size"))
	}
	if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != "Retain" {
		t.Errorf("credsvc: claim retention %+v: the TURN secrets must outlive an uninstall", p)
	}
}

// checkCredsvcOnEtcd: credsvc on etcd is a Deployment of credsvc.replicas without a claim,
// given the operator's endpoints and prefix, behind a Service that spreads connections.
func checkCredsvcOnEtcd(t *testing.T, mf *manifests, eff map[string]any) {
	w := mf.byTarget(t, "credsvc")
	if w.kind != "Deployment" || w.replicas != int32(valInt(t, eff, "credsvc.replicas")) || len(w.claims) != 0 {
		t.Errorf("credsvc on etcd: %s of %d replicas with claims %v, want a Deployment of credsvc.replicas %d without claims",
			w.kind, w.replicas, w.claims, valInt(t, eff, "credsvc.replicas"))
	}
	c := w.template.Spec.Containers[0]
	var eps []string
	for _, e := range val(eff, "credsvc.etcd.endpoints").([]any) {
		eps = append(eps, fmt.Sprint(e))
	}
	if e := envVar(c, "CREDSVC_ETCD_ENDPOINTS"); e == nil || e.Value != strings.Join(eps, ",") {
		t.Errorf("credsvc CREDSVC_ETCD_ENDPOINTS %+v, want credsvc.etcd.endpoints %v", e, eps)
	}
	if p := valString(eff, "credsvc.etcd.prefix"); p != "" {
		if e := envVar(c, "CREDSVC_ETCD_PREFIX"); e == nil || e.Value != p {
			t.Errorf("credsvc CREDSVC_ETCD_PREFIX %+v, want credsvc.etcd.prefix %s", e, p)
		}
	}
	for _, s := range mf.Services {
		if selectsSet(s.Spec.Selector, w.template.Labels) && s.Spec.ClusterIP == corev1.ClusterIPNone {
			t.Errorf("credsvc on etcd behind headless Service %s: every client would resolve the same first replica", s.Name)
		}
	}
}

// checkTurn: turnsvc on the host network advertising its node's address (or the fixed one),
// its TURN ports declared as host ports, and credsvc handing out the same host and ports.
func checkTurn(t *testing.T, mf *manifests, eff map[string]any) {
	w := mf.byTarget(t, "turnsvc")
	spec := w.template.Spec
	c := spec.Containers[0]
	if w.kind != "DaemonSet" || !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("turnsvc: %s, hostNetwork %v, dnsPolicy %q; want a DaemonSet on the host network that still resolves Services", w.kind, spec.HostNetwork, spec.DNSPolicy)
	}
	ext := envVar(c, "EXTERNAL_IP")
	if fixed := valString(eff, "turn.externalIP"); fixed != "" {
		if ext == nil || ext.Value != fixed {
			t.Errorf("turnsvc: EXTERNAL_IP %+v, want %s", ext, fixed)
		}
	} else if ext == nil || ext.ValueFrom == nil || ext.ValueFrom.FieldRef == nil || ext.ValueFrom.FieldRef.FieldPath != "status.hostIP" {
		t.Errorf("turnsvc: EXTERNAL_IP %+v, want the node's address (status.hostIP)", ext)
	}
	if got := envOf(c)["TURN_LISTEN_HOST"]; got != "0.0.0.0" {
		t.Errorf("turnsvc: TURN_LISTEN_HOST=%q, want 0.0.0.0 (the relays bind the node's addresses)", got)
	}
	if sel := valString(eff, "turn.nodeSelector"); sel != "" && sel != "map[]" && len(spec.NodeSelector) == 0 {
		t.Errorf("turnsvc: turn.nodeSelector %s is not applied", sel)
	}
	turnPort, _ := strconv.Atoi(envOf(c)["TURN_PORT"])
	hostPorts := map[string]bool{}
	for _, p := range c.Ports {
		if p.HostPort != 0 && p.HostPort != p.ContainerPort {
			t.Errorf("turnsvc: port %s: hostPort %d differs from containerPort %d on the host network", p.Name, p.HostPort, p.ContainerPort)
		}
		hostPorts[fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)] = true
	}
	want := []string{fmt.Sprintf("%d/UDP", turnPort), fmt.Sprintf("%d/TCP", turnPort)}
	cred := mf.byTarget(t, "credsvc").template.Spec.Containers[0]
	credEnv := envOf(cred)
	if tlsSecret := valString(eff, "turn.tls.secretName"); tlsSecret != "" {
		tlsPort := envOf(c)["TURN_TLS_PORT"]
		want = append(want, tlsPort+"/TCP")
		checkTLSFiles(t, "turnsvc", w, c, "TURN_TLS_CERT", "TURN_TLS_KEY", tlsSecret)
		if credEnv["TURNS_PORT"] != tlsPort || credEnv["TURNS_HOST"] == "" {
			t.Errorf("credsvc TURNS_HOST=%q TURNS_PORT=%q, want turnsvc's TURN_TLS_PORT %s", credEnv["TURNS_HOST"], credEnv["TURNS_PORT"], tlsPort)
		}
	} else if credEnv["TURNS_PORT"] != "" {
		t.Errorf("credsvc hands out turns: on %s, but turnsvc has no certificate", credEnv["TURNS_PORT"])
	}
	for _, p := range want {
		if !hostPorts[p] {
			t.Errorf("turnsvc: %s is not declared as a host port (%v)", p, hostPorts)
		}
	}
	if turnPort < 1024 {
		t.Errorf("turnsvc: TURN_PORT %d: a non-root container cannot bind it", turnPort)
	}
	wantHost := valString(eff, "turn.host")
	if wantHost == "" {
		wantHost = valString(eff, "turn.externalIP")
	}
	if credEnv["TURN_HOST"] != wantHost || credEnv["TURN_PORT"] != strconv.Itoa(turnPort) {
		t.Errorf("credsvc hands out %s:%s, want turn.host %s and turnsvc's TURN_PORT %d", credEnv["TURN_HOST"], credEnv["TURN_PORT"], wantHost, turnPort)
	}
	for k, v := range map[string]string{"TURN_MIN_PORT": "turn.minPort", "TURN_MAX_PORT": "turn.maxPort"} {
		if envOf(c)[k] != valString(eff, v) {
			t.Errorf("turnsvc %s=%q does not follow %s=%s", k, envOf(c)[k], v, valString(eff, v))
		}
	}
}

// checkNetworkPolicies: roomsvc and credsvc admit only this release's pods that call them
// (and, for credsvc, turnsvc's node ranges), on their own port; the gateway admits anyone on
// its ports.
func checkNetworkPolicies(t *testing.T, mf *manifests, eff map[string]any) {
	if len(mf.Policies) == 0 {
		t.Fatal("no NetworkPolicy rendered (networkPolicy.enabled is the default)")
	}
	nodeCIDRs, _ := val(eff, "networkPolicy.nodeCIDRs").([]any)
	callers := map[string][]string{"roomsvc": {"gateway"}, "credsvc": {"gateway", "roomsvc"}}
	for target, from := range callers {
		w := mf.byTarget(t, target)
		port := listenAddrs(t, w.template.Spec.Containers[0])[listenVar[target]].port
		var pols []*networkingv1.NetworkPolicy
		for _, p := range mf.Policies {
			if selects(t, &p.Spec.PodSelector, w.template.Labels) {
				pols = append(pols, p)
			}
		}
		if len(pols) != 1 {
			t.Errorf("%s: %d NetworkPolicies select its pods, want 1", target, len(pols))
			continue
		}
		p := pols[0]
		if !slices.Contains(p.Spec.PolicyTypes, "Ingress") {
			t.Errorf("%s: policy types %v do not restrict ingress", target, p.Spec.PolicyTypes)
		}
		admitted := map[string]bool{}
		var cidrs []string
		open := false
		for _, rule := range p.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("%s: an ingress rule admits every port", target)
			}
			for _, rp := range rule.Ports {
				if rp.Port == nil || rp.Port.IntValue() != int(port) {
					t.Errorf("%s: ingress on port %v, want only %s's %d", target, rp.Port, listenVar[target], port)
				}
			}
			if len(rule.From) == 0 {
				open = true
			}
			for _, peer := range rule.From {
				switch {
				case peer.IPBlock != nil:
					cidrs = append(cidrs, peer.IPBlock.CIDR)
				case peer.PodSelector != nil && peer.NamespaceSelector == nil:
					sel := peer.PodSelector
					if sel.MatchLabels["app.kubernetes.io/instance"] != helmRelease || sel.MatchLabels["app.kubernetes.io/name"] != "tuturu" {
						t.Errorf("%s: admits pods %v beyond this release", target, sel)
					}
					for _, o := range mf.workloads() {
						if selects(t, sel, o.template.Labels) {
							admitted[o.target()] = true
						}
					}
				default:
					t.Errorf("%s: admits %+v, which is not a pod of this release", target, peer)
				}
			}
		}
		for _, f := range from {
			if !admitted[f] && !open {
				t.Errorf("%s: does not admit %s, which calls it", target, f)
			}
		}
		for a := range admitted {
			if !slices.Contains(from, a) {
				t.Errorf("%s: admits %s, which never calls it", target, a)
			}
		}
		var want []string
		if target == "credsvc" {
			for _, c := range nodeCIDRs {
				want = append(want, fmt.Sprint(c))
			}
		}
		if !slices.Equal(cidrs, want) {
			t.Errorf("%s: admits address ranges %v, want %v (networkPolicy.nodeCIDRs, for turnsvc on the host network)", target, cidrs, want)
		}
		// Open only where the chart says so: credsvc without node ranges (turnsvc must reach it).
		if wantOpen := target == "credsvc" && len(nodeCIDRs) == 0; open != wantOpen {
			t.Errorf("%s: open to every source %v, want %v", target, open, wantOpen)
		}
	}
	// The gateway's public ports stay reachable under a default-deny namespace policy.
	gw := mf.byTarget(t, "gateway")
	for _, p := range mf.Policies {
		if !selects(t, &p.Spec.PodSelector, gw.template.Labels) {
			continue
		}
		var ports []int
		for _, rule := range p.Spec.Ingress {
			if len(rule.From) != 0 {
				t.Errorf("gateway policy limits its sources: %+v", rule.From)
			}
			for _, rp := range rule.Ports {
				ports = append(ports, rp.Port.IntValue())
			}
		}
		for name, a := range listenAddrs(t, gw.template.Spec.Containers[0]) {
			if !slices.Contains(ports, int(a.port)) {
				t.Errorf("gateway policy does not admit %s (%d)", name, a.port)
			}
		}
	}
}
