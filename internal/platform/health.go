package platform

import (
	"context"
	"net/http"

	"connectrpc.com/grpchealth"
)

// healthWatchPath is the procedure of grpc.health.v1 Watch streams.
const healthWatchPath = "/" + grpchealth.HealthV1ServiceName + "/Watch"

// healthHandler serves grpc.health.v1 from checker, and ends each Watch stream once it has been
// told NOT_SERVING. grpchealth ends a Watch only when its request context ends, and a graceful
// stop cancels no request context, so every open Watch (a load balancer, `grpcurl ... Watch`)
// would hold the stop for the whole StopTimeout. NOT_SERVING is final in a Server: it is set
// only when the server stops.
func healthHandler(checker *grpchealth.StaticChecker) (string, http.Handler) {
	path, h := grpchealth.NewHandler(endingChecker{checker})
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != healthWatchPath {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		h.ServeHTTP(w, r.WithContext(context.WithValue(ctx, endWatchKey{}, cancel)))
	})
}

// endWatchKey marks the context of a Watch call; its value cancels that call's context.
type endWatchKey struct{}

// endingChecker is the StaticChecker, except that a NOT_SERVING answer to a Watch cancels the
// Watch's context. grpchealth calls Check and then sends its answer, which writes to the
// response whatever the context says; the Watch loop then sees the context done and returns,
// so the stream ends cleanly right after NOT_SERVING.
type endingChecker struct {
	*grpchealth.StaticChecker
}

func (c endingChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	res, err := c.StaticChecker.Check(ctx, req)
	if err == nil && res.Status == grpchealth.StatusNotServing {
		if end, ok := ctx.Value(endWatchKey{}).(context.CancelFunc); ok {
			end()
		}
	}
	return res, err
}
