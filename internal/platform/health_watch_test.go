package platform

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

// TestStopEndsHealthWatches: a stop sends NOT_SERVING on every open Watch stream (server-wide
// and per service, Connect and gRPC) and then ends it, so the stop does not wait for the
// in-flight timeout. The timeout is long so that returning before it is no timing accident.
func TestStopEndsHealthWatches(t *testing.T) {
	const stopTimeout = 30 * time.Second
	srv := newTestServer(t)
	srv.StopTimeout = stopTimeout
	srv.Register("test.Service", "/test.Service/", connect.NewUnaryHandler("/test.Service/Nothing", func(context.Context, *connect.Request[struct{}]) (*connect.Response[struct{}], error) {
		return nil, connect.NewError(connect.CodeUnimplemented, nil)
	}))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	base := "http://" + srv.Addr().String()

	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type watch struct {
		name   string
		events <-chan grpchealth.WatchEvent
	}
	var watches []watch
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		for _, service := range []string{"", "test.Service"} {
			w := watch{name + " " + service, grpchealth.NewClient(NewH2CClient(), base, opts...).Watch(wctx, &grpchealth.CheckRequest{Service: service})}
			if ev := <-w.events; ev.Err != nil || ev.Response.Status != grpchealth.StatusServing {
				t.Fatalf("%s: first event %+v, want SERVING", w.name, ev)
			}
			watches = append(watches, w)
		}
	}

	start := time.Now()
	stop()
	for _, w := range watches {
		if ev := <-w.events; ev.Err != nil || ev.Response.Status != grpchealth.StatusNotServing {
			t.Fatalf("%s: event after stop %+v, want NOT_SERVING", w.name, ev)
		}
		// Then the stream ends cleanly: the client's channel closes with no error event.
		for ev := range w.events {
			t.Fatalf("%s: event after NOT_SERVING: %+v, want the end of the stream", w.name, ev)
		}
		if wctx.Err() != nil {
			t.Fatalf("%s: stream still open 20 s after the stop", w.name)
		}
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-wctx.Done():
		t.Fatalf("Serve did not return within 20 s of the stop (in-flight timeout %v)", stopTimeout)
	}
	t.Logf("stopped %v after the stop with %d Watch streams open", time.Since(start), len(watches))
}
