package platform

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
)

// traceEcho answers with the trace id its handler context carries.
type traceEcho struct {
	credv1connect.UnimplementedCredentialServiceHandler
	roomv1connect.UnimplementedRoomServiceHandler
}

func (traceEcho) Issue(ctx context.Context, _ *connect.Request[credv1.IssueRequest]) (*connect.Response[credv1.IssueResponse], error) {
	return connect.NewResponse(&credv1.IssueResponse{Username: trace.SpanContextFromContext(ctx).TraceID().String()}), nil
}

func (traceEcho) Join(ctx context.Context, s *connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse]) error {
	if _, err := s.Receive(); err != nil {
		return err
	}
	return s.Send(&roomv1.JoinResponse{TraceContext: map[string]string{"seen": trace.SpanContextFromContext(ctx).TraceID().String()}})
}

// With nothing exported, services skip otelconnect but a caller's trace still crosses them:
// the client sends its trace context and the handler continues it, unary and streaming, over
// Connect and gRPC.
func TestNothingExportedStillPropagates(t *testing.T) {
	tel := NoTelemetry()
	if !exportsNothing(tel) {
		t.Fatal("NoTelemetry is not recognised as exporting nothing")
	}
	hopts, err := HandlerOptions(tel, "tok")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(credv1connect.NewCredentialServiceHandler(traceEcho{}, hopts...))
	mux.Handle(roomv1connect.NewRoomServiceHandler(traceEcho{}, hopts...))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = tel.Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	copts, err := ClientOptions(tel, "tok")
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		opts := append(append([]connect.ClientOption{}, copts...), extra...)
		cred := credv1connect.NewCredentialServiceClient(NewH2CClient(), base, opts...)
		res, err := cred.Issue(ctx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: "p"}))
		if err != nil {
			t.Fatalf("%s unary: %v", name, err)
		}
		if got := res.Msg.GetUsername(); got != traceID {
			t.Errorf("%s unary: handler saw trace %q, want the caller's %s", name, got, traceID)
		}
		stream := roomv1connect.NewRoomServiceClient(NewH2CClient(), base, opts...).Join(ctx)
		if err := stream.Send(&roomv1.JoinRequest{}); err != nil {
			t.Fatalf("%s stream send: %v", name, err)
		}
		ev, err := stream.Receive()
		if err != nil {
			t.Fatalf("%s stream receive: %v", name, err)
		}
		if got := ev.GetTraceContext()["seen"]; got != traceID {
			t.Errorf("%s stream: handler saw trace %q, want the caller's %s", name, got, traceID)
		}
		_ = stream.CloseRequest()
		if _, err := stream.Receive(); !errors.Is(err, io.EOF) {
			t.Errorf("%s stream: after the handler returned, Receive gave %v, want EOF", name, err)
		}
		_ = stream.CloseResponse()
	}
	// The token check stays in place without otelconnect.
	cred := credv1connect.NewCredentialServiceClient(NewH2CClient(), base)
	if _, err := cred.Issue(ctx, connect.NewRequest(&credv1.IssueRequest{ParticipantId: "p"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("call without the token: %v, want Unauthenticated", err)
	}
}
