package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testtls"
)

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel := platform.NoTelemetry()
	tel.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	ca := testtls.NewCA(t)
	certFile, keyFile := certFiles(t)
	ca.Issue(t, certFile, keyFile, 2, testDomain, testApp, testTurn)
	e := startEdge(t, Config{
		CertFile: certFile, KeyFile: keyFile, App: appHandler(), TurnUpstream: turnUpstream(t),
		Base: platform.Base{Telemetry: tel, DataDir: t.TempDir()},
	})

	for _, name := range []string{testApp, testDomain, "unknown.example"} {
		c, err := tls.Dial("tcp", e.Addr(), &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	turnConn, err := tls.Dial("tcp", e.Addr(), &tls.Config{ServerName: testTurn, RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer turnConn.Close()
	_ = turnConn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(turnConn).ReadString('\n'); err != nil { // the relay is up
		t.Fatal(err)
	}
	raw, err := net.DialTimeout("tcp", e.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte("GET / HTTP/1.1\r\n\r\n")) // not TLS
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = raw.Read(make([]byte, 64))
	_ = raw.Close()

	want := map[string]int64{"route=app": 1, "route=cover": 2, "route=turn": 1, "failures": 1, "relays": 1}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := collect(t, reader)
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				switch m.Name {
				case "tuturu.edge.connections":
					route, _ := dp.Attributes.Value(attribute.Key("route"))
					out["route="+route.AsString()] += dp.Value
				case "tuturu.edge.handshake.failures":
					out["failures"] += dp.Value
				case "tuturu.edge.turn.relays":
					out["relays"] += dp.Value
				}
			}
		}
	}
	return out
}
