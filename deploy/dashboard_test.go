package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tuturu/tuturu/internal/platform"
)

// promMetric is a metric as Prometheus stores it after the OTLP translation the lgtm image's
// Prometheus applies (its default, UnderscoreEscapingWithSuffixes): dots become underscores,
// the unit becomes a suffix, counters get _total, histograms _bucket/_sum/_count.
type promMetric struct {
	otel   string   // the OpenTelemetry name
	series []string // the Prometheus series names
	labels []string // attribute keys, translated
}

// unitSuffix is the translation of the UCUM units the services use.
var unitSuffix = map[string]string{"s": "seconds", "ms": "milliseconds", "By": "bytes"}

func translate(name, kind, unit string, attrs []string) promMetric {
	base := strings.ReplaceAll(name, ".", "_")
	if suffix := unitSuffix[unit]; suffix != "" && !strings.HasSuffix(base, "_"+suffix) {
		base += "_" + suffix
	}
	m := promMetric{otel: name}
	switch kind {
	case "counter":
		m.series = []string{base + "_total"}
	case "histogram":
		m.series = []string{base + "_bucket", base + "_sum", base + "_count"}
	default: // gauges and up-down counters
		m.series = []string{base}
	}
	for _, a := range attrs {
		m.labels = append(m.labels, strings.ReplaceAll(a, ".", "_"))
	}
	return m
}

func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		name, kind, unit string
		want             []string
	}{
		{"tuturu.room.joins", "counter", "", []string{"tuturu_room_joins_total"}},
		{"tuturu.turn.relayed.bytes", "counter", "By", []string{"tuturu_turn_relayed_bytes_total"}},
		{"tuturu.call.setup.duration", "histogram", "s", []string{"tuturu_call_setup_duration_seconds_bucket", "tuturu_call_setup_duration_seconds_sum", "tuturu_call_setup_duration_seconds_count"}},
		{"tuturu.turn.allocations", "up-down counter", "", []string{"tuturu_turn_allocations"}},
	} {
		if got := translate(tc.name, tc.kind, tc.unit, nil).series; !slices.Equal(got, tc.want) {
			t.Errorf("translate(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// docRow matches a row of the metrics table in docs/observability.md:
// | `name` | kind[, `unit`] | `label` (values) ... | service |
var docRow = regexp.MustCompile("^\\|\\s*`(tuturu\\.[a-z0-9_.]+)`\\s*\\|\\s*([^|`,]+?)\\s*(?:,\\s*`([^`]+)`)?\\s*\\|([^|]*)\\|")

// documentedMetrics reads the metric table of docs/observability.md.
func documentedMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	for _, line := range strings.Split(string(b), "\n") {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		kind := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[2]), "(observable)"))
		var labels []string
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[4], -1) {
			labels = append(labels, l[1])
		}
		out[m[1]] = docMetric{kind: kind, unit: m[3], labels: labels}
	}
	if len(out) < 10 {
		t.Fatalf("read only %d metrics from docs/observability.md: has the table changed shape?", len(out))
	}
	return out
}

type docMetric struct {
	kind, unit string
	labels     []string
}

// otelconnectMetrics measures the metrics otelconnect really records, with the interceptors
// every service uses (platform.HandlerOptions / ClientOptions), one good call and one refused.
func otelconnectMetrics(t *testing.T) []promMetric {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tel := platform.Telemetry{Meter: mp}
	hopts, err := platform.HandlerOptions(tel, "right-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(), hopts...))
	srv := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, token := range []string{"right-token-0123456789", "wrong-token-0123456789"} {
		copts, err := platform.ClientOptions(tel, token)
		if err != nil {
			t.Fatal(err)
		}
		_, err = grpchealth.NewClient(srv.Client(), srv.URL, copts...).Check(ctx, &grpchealth.CheckRequest{})
		if token == "wrong-token-0123456789" && connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("call with a wrong token: %v", err)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var out []promMetric
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			var attrs []string
			for _, dp := range h.DataPoints {
				for _, kv := range dp.Attributes.ToSlice() {
					if !slices.Contains(attrs, string(kv.Key)) {
						attrs = append(attrs, string(kv.Key))
					}
				}
			}
			out = append(out, translate(m.Name, "histogram", m.Unit, attrs))
		}
	}
	if len(out) != 2 {
		t.Fatalf("otelconnect recorded %d histograms, want a server and a client one: %+v", len(out), out)
	}
	return out
}

func TestOtelconnectMetricNames(t *testing.T) {
	// The dashboard's "errors by service" depends on these; docs/observability.md should too.
	var names []string
	for _, m := range otelconnectMetrics(t) {
		names = append(names, m.otel)
		if !slices.Contains(m.labels, "rpc_response_status_code") || !slices.Contains(m.labels, "rpc_method") {
			t.Errorf("%s labels %v lack rpc_response_status_code or rpc_method", m.otel, m.labels)
		}
	}
	slices.Sort(names)
	if want := []string{"rpc.client.call.duration", "rpc.server.call.duration"}; !slices.Equal(names, want) {
		t.Errorf("otelconnect metrics %v, want %v", names, want)
	}
}

// Labels every series has in the lgtm Prometheus (from the resource and the histogram).
var commonLabels = []string{"job", "instance", "service_name", "service_namespace", "le"}

var (
	metricToken = regexp.MustCompile(`\b(?:tuturu|rpc)_[a-z0-9_]+\b`)
	byClause    = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matchers    = regexp.MustCompile(`\{([^}]*)\}`)
	matcherKey  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		Query        string `json:"query"`
		LegendFormat string `json:"legendFormat"`
		Datasource   struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

func loadDashboards(t *testing.T) map[string][]panel {
	t.Helper()
	out := map[string][]panel{}
	dir := filepath.Join(root, "deploy", "grafana", "dashboards")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var dash struct {
			UID    string  `json:"uid"`
			Title  string  `json:"title"`
			Panels []panel `json:"panels"`
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			return errors.Join(errors.New(p), err)
		}
		if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
			t.Errorf("%s: a dashboard needs a uid, a title and panels", p)
		}
		out[p] = dash.Panels
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no dashboards")
	}
	return out
}

// TestDashboardQueries checks every panel query against the metrics the services document and
// the metrics otelconnect records: the names as Prometheus stores them, and only labels those
// metrics carry.
func TestDashboardQueries(t *testing.T) {
	known := map[string]promMetric{} // by series name
	for name, d := range documentedMetrics(t) {
		m := translate(name, d.kind, d.unit, d.labels)
		for _, s := range m.series {
			known[s] = m
		}
	}
	for _, m := range otelconnectMetrics(t) {
		for _, s := range m.series {
			known[s] = m
		}
	}
	used := map[string]bool{}
	for file, panels := range loadDashboards(t) {
		ids := map[int]bool{}
		for _, p := range panels {
			where := filepath.Base(file) + ": panel " + p.Title
			if ids[p.ID] {
				t.Errorf("%s: duplicate id %d", where, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: bad gridPos %+v", where, p.GridPos)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			// The data source uids the grafana/otel-lgtm image provisions.
			switch p.Datasource.UID {
			case "tempo":
				for _, q := range p.Targets {
					if q.Datasource.UID != "tempo" || !strings.Contains(q.Query, `resource.service.name`) {
						t.Errorf("%s: Tempo query %q", where, q.Query)
					}
				}
				continue
			case "prometheus":
			default:
				t.Errorf("%s: data source uid %q is not one the lgtm image provisions", where, p.Datasource.UID)
				continue
			}
			for _, q := range p.Targets {
				if q.Datasource.UID != "prometheus" {
					t.Errorf("%s: query data source %q", where, q.Datasource.UID)
				}
				// Metric names outside label matchers and grouping clauses.
				bare := byClause.ReplaceAllString(matchers.ReplaceAllString(q.Expr, "{}"), "")
				series := metricToken.FindAllString(bare, -1)
				if len(series) == 0 {
					t.Errorf("%s: query %q uses no tuturu or rpc metric", where, q.Expr)
				}
				allowed := slices.Clone(commonLabels)
				for _, s := range series {
					m, ok := known[s]
					if !ok {
						t.Errorf("%s: %s is not a metric in docs/observability.md or from otelconnect (as Prometheus names it)", where, s)
						continue
					}
					used[s] = true
					allowed = append(allowed, m.labels...)
				}
				var labels, grouped []string
				for _, b := range byClause.FindAllStringSubmatch(q.Expr, -1) {
					for _, l := range strings.Split(b[1], ",") {
						grouped = append(grouped, strings.TrimSpace(l))
					}
				}
				for _, m := range matchers.FindAllStringSubmatch(q.Expr, -1) {
					for _, k := range matcherKey.FindAllStringSubmatch(m[1], -1) {
						labels = append(labels, k[1])
					}
				}
				for _, l := range append(labels, grouped...) {
					if !slices.Contains(allowed, l) {
						t.Errorf("%s: label %q is not on %v", where, l, series)
					}
				}
				for _, l := range legendLabel.FindAllStringSubmatch(q.LegendFormat, -1) {
					if !slices.Contains(grouped, l[1]) {
						t.Errorf("%s: legend {{%s}} is not grouped by in %q", where, l[1], q.Expr)
					}
				}
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{
		"tuturu_rooms", // calls now
		"tuturu_call_setup_duration_seconds_count",  // set-ups per minute
		"tuturu_call_setup_duration_seconds_bucket", // set-up latency
		"tuturu_room_joins_total",                   // joins rejected by reason
		"tuturu_gateway_rejections_total",           // clients refused by the gateway
		"tuturu_turn_allocations",                   // TURN allocations
		"tuturu_turn_relayed_bytes_total",           // relayed bytes
		"rpc_server_call_duration_seconds_count",    // errors by service
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// instrument matches a metric instrument registration in service code.
var instrument = regexp.MustCompile(`\b(Int64|Float64)(ObservableUpDownCounter|ObservableCounter|ObservableGauge|UpDownCounter|Counter|Histogram|Gauge)\(\s*"(tuturu\.[a-z0-9_.]+)"`)

var instrumentKind = map[string]string{
	"Counter": "counter", "ObservableCounter": "counter",
	"UpDownCounter": "up-down counter", "ObservableUpDownCounter": "up-down counter",
	"Gauge": "gauge", "ObservableGauge": "gauge",
	"Histogram": "histogram",
}

var withUnit = regexp.MustCompile(`WithUnit\(\s*"([^"]*)"\s*\)`)

// TestServiceMetricsAreDocumented keeps the services, docs/observability.md and so the
// dashboard in step: every tuturu.* instrument a service registers is in the table, with the
// same kind and unit (a different unit renames the Prometheus series).
func TestServiceMetricsAreDocumented(t *testing.T) {
	doc := documentedMetrics(t)
	seen := 0
	for _, dir := range appServices {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src := string(b)
			for _, loc := range instrument.FindAllStringSubmatchIndex(src, -1) {
				seen++
				kind, name := instrumentKind[src[loc[4]:loc[5]]], src[loc[6]:loc[7]]
				unit := ""
				if u := withUnit.FindStringSubmatch(callText(src, loc[5])); u != nil && !strings.HasPrefix(u[1], "{") && u[1] != "1" {
					unit = u[1]
				}
				d, ok := doc[name]
				switch {
				case !ok:
					t.Errorf("%s registers %s, which docs/observability.md does not list", p, name)
				case d.kind != kind || d.unit != unit:
					t.Errorf("%s registers %s as %s %q; docs/observability.md says %s %q", p, name, kind, unit, d.kind, d.unit)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen == 0 {
		t.Fatal("found no metric registrations in the services")
	}
}

// callText returns the call whose "(" is at open, up to its balancing ")".
func callText(src string, open int) string {
	depth := 0
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return src[open : i+1]
			}
		}
	}
	return src[open:]
}
