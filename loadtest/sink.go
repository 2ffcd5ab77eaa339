package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Sink answers 200 with an empty body to every request on addr (loopback only) until ctx
// ends: a receiver that discards a server's OTLP/HTTP exports, so that a run can be measured
// with tracing export on. Its CPU is not the server's.
func Sink(ctx context.Context, addr string, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("otlp sink: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("otlp sink: %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("otlp sink: %w", err)
	}
	var requests, bytes atomic.Int64
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			requests.Add(1)
			bytes.Add(n)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
		}),
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Fprintf(out, "otlp sink on http://%s\n", ln.Addr())
	err = srv.Serve(ln)
	fmt.Fprintf(out, "otlp sink: %d requests, %d bytes discarded\n", requests.Load(), bytes.Load())
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
