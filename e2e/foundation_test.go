package e2e

import (
	"context"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
	turnv1 "github.com/tuturu/tuturu/gen/tuturu/turn/v1"
	"github.com/tuturu/tuturu/gen/tuturu/turn/v1/turnv1connect"
	"github.com/tuturu/tuturu/internal/platform"
	"github.com/tuturu/tuturu/internal/testproc"
)

// servicesOf lists, per running service, the RPC services it must expose.
func servicesOf(s *stack) map[string][]string {
	return map[string][]string{
		s.GatewayURL: {},
		s.RoomsvcURL: {roomv1connect.RoomServiceName, roomv1connect.RoomAdminServiceName},
		s.CredsvcURL: {credv1connect.CredentialServiceName, credv1connect.CredentialAdminServiceName},
		s.TurnsvcURL: {turnv1connect.TurnAdminServiceName},
	}
}

// Every service answers health and reflection to a real gRPC client (grpc-go) and to a real
// Connect client, with no token and no proto files.
func TestHealthAndReflection(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for base, want := range servicesOf(s) {
		want = append(slices.Clone(want), "grpc.health.v1.Health")
		slices.Sort(want)
		host := strings.TrimPrefix(base, "http://")

		conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s: grpc-go health = %v, %v; want SERVING", host, res, err)
		}
		for _, svc := range want {
			if svc == "grpc.health.v1.Health" {
				continue
			}
			res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s: grpc-go health of %s = %v, %v; want SERVING", host, svc, res, err)
			}
		}
		if got := listV1(ctx, t, conn); !slices.Equal(got, want) {
			t.Errorf("%s: grpc-go reflection v1 lists %v, want %v", host, got, want)
		}
		if got := listV1Alpha(ctx, t, conn); !slices.Equal(got, want) {
			t.Errorf("%s: grpc-go reflection v1alpha lists %v, want %v", host, got, want)
		}

		// The same through Connect (its own protocol, over HTTP/1.1 for unary calls).
		check := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](
			platform.NewH2CClient(), base+"/grpc.health.v1.Health/Check")
		cres, err := check.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{}))
		if err != nil || cres.Msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s: Connect health = %v, %v; want SERVING", host, cres, err)
		}
		refl := connect.NewClient[reflectv1.ServerReflectionRequest, reflectv1.ServerReflectionResponse](
			platform.NewH2CClient(), base+"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
		stream := refl.CallBidiStream(ctx)
		if err := stream.Send(&reflectv1.ServerReflectionRequest{MessageRequest: &reflectv1.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatalf("%s: Connect reflection send: %v", host, err)
		}
		msg, err := stream.Receive()
		if err != nil {
			t.Fatalf("%s: Connect reflection: %v", host, err)
		}
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
		var got []string
		for _, svc := range msg.GetListServicesResponse().GetService() {
			got = append(got, svc.GetName())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Connect reflection lists %v, want %v", host, got, want)
		}
	}
}

// reflectionStream is what the v1 and v1alpha reflection clients of grpc-go have in common.
type reflectionStream[Req, Res any] interface {
	Send(*Req) error
	Recv() (*Res, error)
	CloseSend() error
}

// listServices asks a reflection stream for the service list, sorted.
func listServices[Req, Res any](t *testing.T, stream reflectionStream[Req, Res], err error, req *Req, names func(*Res) []string) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	list := names(res)
	slices.Sort(list)
	return list
}

func listV1(ctx context.Context, t *testing.T, conn *grpc.ClientConn) []string {
	stream, err := reflectv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	return listServices(t, stream, err,
		&reflectv1.ServerReflectionRequest{MessageRequest: &reflectv1.ServerReflectionRequest_ListServices{}},
		func(res *reflectv1.ServerReflectionResponse) (names []string) {
			for _, s := range res.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			return names
		})
}

func listV1Alpha(ctx context.Context, t *testing.T, conn *grpc.ClientConn) []string {
	stream, err := reflectv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	return listServices(t, stream, err,
		&reflectv1alpha.ServerReflectionRequest{MessageRequest: &reflectv1alpha.ServerReflectionRequest_ListServices{}},
		func(res *reflectv1alpha.ServerReflectionResponse) (names []string) {
			for _, s := range res.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			return names
		})
}

// Admin RPCs refuse calls without the admin token (Unauthenticated), with a wrong one
// (PermissionDenied) and with the internal token; with the admin token they are let through.
func TestAdminRPCsNeedTheAdminToken(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type call func(opts ...connect.ClientOption) error
	calls := map[string]call{
		"RoomAdminService.GetStats": func(opts ...connect.ClientOption) error {
			_, err := roomv1connect.NewRoomAdminServiceClient(platform.NewH2CClient(), s.RoomsvcURL, opts...).
				GetStats(ctx, connect.NewRequest(&roomv1.GetStatsRequest{}))
			return err
		},
		"CredentialAdminService.ListSecrets": func(opts ...connect.ClientOption) error {
			_, err := credv1connect.NewCredentialAdminServiceClient(platform.NewH2CClient(), s.CredsvcURL, opts...).
				ListSecrets(ctx, connect.NewRequest(&credv1.ListSecretsRequest{}))
			return err
		},
		"TurnAdminService.GetStats": func(opts ...connect.ClientOption) error {
			_, err := turnv1connect.NewTurnAdminServiceClient(platform.NewH2CClient(), s.TurnsvcURL, opts...).
				GetStats(ctx, connect.NewRequest(&turnv1.GetStatsRequest{}))
			return err
		},
	}
	for name, c := range calls {
		for proto, popts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
			with := func(token string) []connect.ClientOption {
				return append(slices.Clone(popts), connect.WithInterceptors(platform.NewSendToken(token)))
			}
			if code := connect.CodeOf(c(popts...)); code != connect.CodeUnauthenticated {
				t.Errorf("%s over %s without a token: %v, want unauthenticated", name, proto, code)
			}
			if code := connect.CodeOf(c(with("not-the-admin-token-at-all")...)); code != connect.CodePermissionDenied {
				t.Errorf("%s over %s with a wrong token: %v, want permission_denied", name, proto, code)
			}
			if code := connect.CodeOf(c(with(s.InternalToken)...)); code != connect.CodePermissionDenied {
				t.Errorf("%s over %s with the internal token: %v, want permission_denied", name, proto, code)
			}
			if err := c(with(s.AdminToken)...); err != nil {
				if code := connect.CodeOf(err); code == connect.CodeUnauthenticated || code == connect.CodePermissionDenied {
					t.Errorf("%s over %s with the admin token: %v", name, proto, err)
				}
			}
		}
	}
}

// Internal RPCs refuse calls without the internal token, and refuse the admin token.
func TestInternalRPCsNeedTheInternalToken(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	validate := func(opts ...connect.ClientOption) error {
		_, err := credv1connect.NewCredentialServiceClient(platform.NewH2CClient(), s.CredsvcURL, opts...).
			Validate(ctx, connect.NewRequest(&credv1.ValidateRequest{Username: "1:x", Realm: "tuturu"}))
		return err
	}
	if code := connect.CodeOf(validate()); code != connect.CodeUnauthenticated {
		t.Errorf("Validate without a token: %v, want unauthenticated", code)
	}
	if code := connect.CodeOf(validate(connect.WithInterceptors(platform.NewSendToken(s.AdminToken)))); code != connect.CodePermissionDenied {
		t.Errorf("Validate with the admin token: %v, want permission_denied", code)
	}
	if err := validate(connect.WithInterceptors(platform.NewSendToken(s.InternalToken))); err != nil {
		if code := connect.CodeOf(err); code == connect.CodeUnauthenticated || code == connect.CodePermissionDenied {
			t.Errorf("Validate with the internal token: %v", err)
		}
	}
}

// The pinned grpcurl lists every service's RPC services and health answers SERVING, with no
// proto files: what an operator types.
func TestGrpcurlListAndHealth(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	for base, want := range servicesOf(s) {
		u, _ := url.Parse(base)
		out := grpcurl(t, "-plaintext", u.Host, "list")
		for _, svc := range append(want, "grpc.health.v1.Health") {
			if !strings.Contains(out, svc) {
				t.Errorf("grpcurl list %s: %q lacks %s", u.Host, out, svc)
			}
		}
		if out := grpcurl(t, "-plaintext", u.Host, "grpc.health.v1.Health/Check"); !strings.Contains(out, `"SERVING"`) {
			t.Errorf("grpcurl health %s: %q", u.Host, out)
		}
	}
}

// grpcurlBuild builds the pinned grpcurl once per test binary (minutes cold on a busy 2-core
// machine, under a second cached) and returns the path go tool keeps it at.
var grpcurlBuild = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return testproc.GoTool(ctx, "../tools/grpcurl/go.mod", "grpcurl")
})

// grpcurl runs the repository's pinned grpcurl and returns its combined output.
func grpcurl(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := grpcurlBuild()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
