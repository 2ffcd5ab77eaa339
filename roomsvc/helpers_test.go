package roomsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	"github.com/tuturu/tuturu/internal/platform"
)

// wait bounds every wait for an event in these tests.
const wait = 5 * time.Second

// protocols runs a test with a Connect client and with a gRPC client.
var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
}

// testService is a roomsvc served on 127.0.0.1, with a recording credsvc stand-in (a real
// Connect server) so revocations can be observed.
type testService struct {
	svc      *Service
	url      string
	internal string
	admin    string
	revoked  *revokeLog
	// shared, when set, is the HTTP client every dial uses (as one gateway would), instead of
	// one client (and connection) per member.
	shared *http.Client
	cancel context.CancelFunc
	done   chan error
}

type revokeLog struct {
	mu  sync.Mutex
	ids []string
	ch  chan string
}

// revokeServer answers CredentialService.Revoke and records the participant ids.
type revokeServer struct {
	credv1connect.UnimplementedCredentialServiceHandler
	log *revokeLog
}

func (r *revokeServer) Revoke(_ context.Context, req *connect.Request[credv1.RevokeRequest]) (*connect.Response[credv1.RevokeResponse], error) {
	id := req.Msg.GetParticipantId()
	if req.Msg.GetReason() != "left" {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("reason %q", req.Msg.GetReason()))
	}
	r.log.mu.Lock()
	r.log.ids = append(r.log.ids, id)
	r.log.mu.Unlock()
	select {
	case r.log.ch <- id:
	default:
	}
	return connect.NewResponse(&credv1.RevokeResponse{}), nil
}

// RevokeBatch records every participant of the batch.
func (r *revokeServer) RevokeBatch(_ context.Context, req *connect.Request[credv1.RevokeBatchRequest]) (*connect.Response[credv1.RevokeBatchResponse], error) {
	res := &credv1.RevokeBatchResponse{}
	for _, item := range req.Msg.GetRequests() {
		if item.GetReason() != "left" {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("reason %q", item.GetReason()))
		}
		id := item.GetParticipantId()
		r.log.mu.Lock()
		r.log.ids = append(r.log.ids, id)
		r.log.mu.Unlock()
		select {
		case r.log.ch <- id:
		default:
		}
		res.Results = append(res.Results, &credv1.RevokeResult{Result: &credv1.RevokeResult_Revocation{Revocation: &credv1.Revocation{}}})
	}
	return connect.NewResponse(res), nil
}

// IssueBatch answers with a credential named after each participant.
func (r *revokeServer) IssueBatch(_ context.Context, req *connect.Request[credv1.IssueBatchRequest]) (*connect.Response[credv1.IssueBatchResponse], error) {
	res := &credv1.IssueBatchResponse{}
	for _, item := range req.Msg.GetRequests() {
		res.Results = append(res.Results, &credv1.IssueResult{Result: &credv1.IssueResult_Credentials{Credentials: &credv1.IssueResponse{
			Username: "1:" + item.GetParticipantId(), Password: "test",
		}}})
	}
	return connect.NewResponse(res), nil
}

func startService(t testing.TB, mutate func(*Config)) *testService {
	t.Helper()
	ts := &testService{
		internal: platform.RandomToken(24),
		admin:    platform.RandomToken(24),
		revoked:  &revokeLog{ch: make(chan string, 64)},
		done:     make(chan error, 1),
	}
	// The credsvc stand-in.
	credLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(credv1connect.NewCredentialServiceHandler(&revokeServer{log: ts.revoked},
		connect.WithInterceptors(platform.NewRequireToken(ts.internal))))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	credSrv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: wait}
	go func() { _ = credSrv.Serve(credLn) }()
	t.Cleanup(func() { _ = credSrv.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg := Config{
		Listener:       ln,
		CredsvcURL:     "http://" + credLn.Addr().String(),
		ResumeGrace:    30 * time.Second,
		ResumeTokenTTL: time.Hour,
	}
	cfg.InternalToken, cfg.AdminToken = ts.internal, ts.admin
	cfg.Log = platform.NewLogger(testLog{t}, slog.LevelDebug)
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.svc, ts.url = svc, "http://"+svc.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- svc.Run(ctx) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop ends Run and checks it returns promptly without error. Safe to call twice.
func (ts *testService) stop(t testing.TB) {
	ts.cancel()
	if ts.done == nil {
		return
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Errorf("Run did not return within %v of its context ending", wait)
	}
	ts.done = nil
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

func (ts *testService) adminClient(opts []connect.ClientOption, token string) roomv1connect.RoomAdminServiceClient {
	if token != "" {
		opts = append(append([]connect.ClientOption{}, opts...), connect.WithInterceptors(platform.NewSendToken(token)))
	}
	return roomv1connect.NewRoomAdminServiceClient(platform.NewH2CClient(), ts.url, opts...)
}

// member is a test client's Join stream.
type tmember struct {
	t      testing.TB
	stream *connect.BidiStreamForClient[roomv1.JoinRequest, roomv1.JoinResponse]
	events chan *roomv1.JoinResponse
	end    chan error // the error that ended the receive side (io.EOF-like → nil)
	cancel context.CancelFunc
	conns  *connLog
}

// connLog records the client's TCP connections so a test can cut them like a crashed gateway.
type connLog struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (l *connLog) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}

// drop cuts the member's connection, as a crashed gateway or dead network would.
func (c *tmember) drop() { c.conns.closeAll() }

// hangUp ends the stream from the client without a leave, as a gateway does when its browser
// socket dies. Cancelling the context alone does not end a Connect bidi stream whose request
// body is still open (Go's HTTP/2 transport waits on the body): close the request side too.
func (c *tmember) hangUp() {
	_ = c.stream.CloseRequest()
	c.cancel()
}

func (ts *testService) dial(t testing.TB, opts []connect.ClientOption) *tmember {
	t.Helper()
	opts = append(append([]connect.ClientOption{}, opts...), connect.WithInterceptors(platform.NewSendToken(ts.internal)))
	hc := ts.shared
	conns := &connLog{}
	if hc == nil {
		tr := platform.NewH2CTransport()
		hc = &http.Client{Transport: platform.WholeMessages(tr)}
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err == nil {
				conns.mu.Lock()
				conns.conns = append(conns.conns, conn)
				conns.mu.Unlock()
			}
			return conn, err
		}
	}
	rc := roomv1connect.NewRoomServiceClient(hc, ts.url, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	c := &tmember{t: t, stream: rc.Join(ctx), events: make(chan *roomv1.JoinResponse, 1024), end: make(chan error, 1),
		cancel: cancel, conns: conns}
	t.Cleanup(conns.closeAll)
	t.Cleanup(cancel)
	return c
}

// start begins receiving; call after the first send (the stream opens on the first message).
func (c *tmember) start() {
	go func() {
		for {
			ev, err := c.stream.Receive()
			if err != nil {
				close(c.events)
				if errors.Is(err, io.EOF) {
					err = nil
				}
				c.end <- err
				return
			}
			c.events <- ev
		}
	}()
}

func (c *tmember) send(req *roomv1.JoinRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *tmember) next() *roomv1.JoinResponse {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("stream ended while waiting for an event: %v", <-c.end)
		}
		return ev
	case <-time.After(wait):
		c.t.Fatalf("no event within %v", wait)
	}
	return nil
}

// ended waits for the stream to end and returns how (nil for a clean end).
func (c *tmember) ended() error {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return <-c.end
			}
			c.t.Fatalf("expected the stream to end, got event %v", ev)
		case <-deadline:
			c.t.Fatalf("stream did not end within %v", wait)
			return nil
		}
	}
}

func enterPIN(pin string) *roomv1.JoinRequest {
	return &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Enter{Enter: &roomv1.Enter{Room: &roomv1.Enter_Pin{Pin: pin}}}}
}

func enterLobby(lobby, peerID string) *roomv1.JoinRequest {
	return &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Enter{Enter: &roomv1.Enter{
		Room: &roomv1.Enter_Lobby{Lobby: lobby}, PeerId: peerID, Name: "name " + peerID, UserAgent: "test"}}}
}

func signal(typ, data, to string) *roomv1.JoinRequest {
	return &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: typ, Data: []byte(data), To: to}}}
}

func leave(reason roomv1.LeaveReason) *roomv1.JoinRequest {
	return &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Leave{Leave: &roomv1.Leave{Reason: reason}}}
}

func resume(token string) *roomv1.JoinRequest {
	return &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Resume{Resume: &roomv1.Resume{ResumeToken: token}}}
}

// join dials, sends first and returns the member with its Joined event.
func (ts *testService) join(t testing.TB, opts []connect.ClientOption, first *roomv1.JoinRequest) (*tmember, *roomv1.Joined) {
	t.Helper()
	c := ts.dial(t, opts)
	c.send(first)
	c.start()
	ev := c.next()
	j := ev.GetJoined()
	if j == nil {
		t.Fatalf("first event is %v, want joined", ev)
	}
	return c, j
}

// refused dials, sends first and returns the code that ended the stream.
func (ts *testService) refused(t testing.TB, opts []connect.ClientOption, first *roomv1.JoinRequest) connect.Code {
	t.Helper()
	c := ts.dial(t, opts)
	// The server may refuse before the message is written; the real error comes from Receive.
	if err := c.stream.Send(first); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("send: %v", err)
	}
	c.start()
	err := c.ended()
	if err == nil {
		t.Fatalf("stream ended cleanly, want an error")
	}
	return connect.CodeOf(err)
}
