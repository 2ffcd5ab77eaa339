package platform

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

const testToken = "a-test-token-that-is-long-enough"

// startServer serves a Server with a slow plain handler and a token-guarded Connect service
// (the health service doubles as one) until the returned cancel is called.
// newTestServer returns a Server on a loopback port that logs nowhere.
func newTestServer(t *testing.T) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer("test", "", ln, NewLogger(io.Discard, 0))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func startServer(t *testing.T) (base string, cancel func(), served <-chan struct{}) {
	t.Helper()
	srv := newTestServer(t)
	srv.StopTimeout = time.Second
	srv.Handle("/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Headers first: a client that has them knows the call is in flight on the server.
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		_, _ = w.Write([]byte("finished"))
	}))
	guarded := http.NewServeMux()
	path, h := grpchealth.NewHandler(grpchealth.NewStaticChecker(), connect.WithInterceptors(NewRequireToken(testToken)))
	guarded.Handle(path, h)
	srv.Register("test.Guarded", "/guarded/", http.StripPrefix("/guarded", guarded))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("server did not stop")
		}
	})
	return "http://" + srv.Addr().String(), stop, done
}

func TestServerHealthAndReflectionForBothProtocols(t *testing.T) {
	base, _, _ := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		res, err := grpchealth.NewClient(NewH2CClient(), base, opts...).Check(ctx, &grpchealth.CheckRequest{Service: "test.Guarded"})
		if err != nil || res.Status != grpchealth.StatusServing {
			t.Errorf("%s: health of registered service = %v, %v; want SERVING", name, res, err)
		}
	}
}

func TestServerTokenInterceptor(t *testing.T) {
	base, _, _ := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		call := func(extra ...connect.ClientOption) error {
			_, err := grpchealth.NewClient(NewH2CClient(), base+"/guarded", append(opts, extra...)...).Check(ctx, &grpchealth.CheckRequest{})
			return err
		}
		if code := connect.CodeOf(call()); code != connect.CodeUnauthenticated {
			t.Errorf("%s: no token: code %v, want unauthenticated", name, code)
		}
		if code := connect.CodeOf(call(connect.WithInterceptors(NewSendToken("wrong-token-wrong-token")))); code != connect.CodePermissionDenied {
			t.Errorf("%s: wrong token: code %v, want permission_denied", name, code)
		}
		if err := call(connect.WithInterceptors(NewSendToken(testToken))); err != nil {
			t.Errorf("%s: right token: %v", name, err)
		}
	}
}

// A stop turns health NOT_SERVING first and lets in-flight calls finish.
func TestServerGracefulStop(t *testing.T) {
	base, stop, served := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	watch := grpchealth.NewClient(NewH2CClient(), base).Watch(ctx, &grpchealth.CheckRequest{})
	if ev := <-watch; ev.Err != nil || ev.Response.Status != grpchealth.StatusServing {
		t.Fatalf("first watch event = %+v, want SERVING", ev)
	}
	// The stop must come while the slow call runs: its headers say the handler has started
	// (a fixed sleep did not, on a loaded machine the request could still be unsent).
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/slow", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("slow call: %v", err)
	}
	defer res.Body.Close()
	slow := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(res.Body)
		if err != nil {
			slow <- err.Error()
			return
		}
		slow <- string(b)
	}()
	stop()

	if ev := <-watch; ev.Err != nil || ev.Response.Status != grpchealth.StatusNotServing {
		t.Fatalf("watch event after stop = %+v, want NOT_SERVING", ev)
	}
	select {
	case got := <-slow:
		if got != "finished" {
			t.Fatalf("in-flight call = %q, want it to finish", got)
		}
	case <-ctx.Done():
		t.Fatal("in-flight call did not finish")
	}
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatal("Serve did not return after the stop timeout")
	}
	if _, err := http.Get(base + "/slow"); err == nil {
		t.Fatal("server still accepts connections after stop")
	}
}

// A connection the graceful stop never sees idle (here: half a request header, which net/http
// would hold until ReadHeaderTimeout, 10 s) does not hold the stop once no call is in flight:
// it is closed after StopIdleGrace. StopTimeout is long and net/http itself gives up on such a
// connection after 5 s, so only that rule can end the stop sooner.
func TestStopClosesConnectionsNeverSeenIdle(t *testing.T) {
	srv := newTestServer(t)
	srv.StopTimeout = 60 * time.Second
	srv.StopIdleGrace = 50 * time.Millisecond
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	conn, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	// A full request on another connection proves the server has read the half one's bytes
	// scheduling aside; the half header then sits in net/http's reader.
	if res, err := http.Get("http://" + srv.Addr().String() + "/nothing"); err == nil {
		res.Body.Close()
	}
	begun := time.Now()
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(4 * time.Second): // below net/http's 5 s, 80 times StopIdleGrace
		t.Fatal("the stop waited for a connection with no call in flight")
	}
	// The server closed the half-open connection.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the stop")
	}
	t.Logf("stop took %v", time.Since(begun).Round(time.Millisecond))
}

// The idle rule looks at the last call, not only at this instant: a call that came and went
// since the last look keeps the server from counting as quiet; once a stop has decided to
// close, calls that still arrive are refused with 503 rather than cut off mid-way.
func TestStopIdleRuleSeesShortCalls(t *testing.T) {
	var f inFlight
	h := f.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	if !f.quietFor(time.Second, time.Now()) {
		t.Fatal("a server that never ran a call is not quiet")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("call answered %d", rec.Code)
	}
	if f.quietFor(time.Second, time.Now()) {
		t.Fatal("quiet right after a call ended")
	}
	if !f.quietFor(time.Second, time.Now().Add(2*time.Second)) {
		t.Fatal("not quiet a grace after the last call")
	}
	f.closing.Store(true)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("call while closing answered %d, want 503", rec.Code)
	}
}
