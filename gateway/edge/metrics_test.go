package edge

import (
	"bufio"
	"crypto/tls"
	"net"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testmetrics"
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
	m := testmetrics.Int64(t, r)
	out := map[string]int64{
		"failures": testmetrics.Total(m["tuturu.edge.handshake.failures"]),
		"relays":   testmetrics.Total(m["tuturu.edge.turn.relays"]),
	}
	for labels, v := range m["tuturu.edge.connections"] {
		out[labels] += v
	}
	return out
}
