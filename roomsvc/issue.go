package roomsvc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

// Credential issuing: every enter and resume needs TURN credentials before the member exists.
// Requests are queued and sent to credsvc in IssueBatch calls by a few workers: whatever is
// queued when a worker is free goes in its next call, so nothing waits for a batch to fill.
const (
	issueWorkers  = 4
	issueMaxBatch = 512
	issueTimeout  = 5 * time.Second
	issueAttempts = 2
	issueBackoff  = 100 * time.Millisecond
)

type issueItem struct {
	ctx         context.Context // carries the span of the enter or resume
	participant string
	done        func(*credv1.IssueResponse, error)
}

// issuer batches credential requests to credsvc.
type issuer struct {
	client credv1connect.CredentialServiceClient

	mu    sync.Mutex
	queue []issueItem
	wake  chan struct{}
}

func newIssuer(client credv1connect.CredentialServiceClient) *issuer {
	return &issuer{client: client, wake: make(chan struct{}, issueWorkers)}
}

// issue queues a request; done is called once, on a worker goroutine.
func (is *issuer) issue(ctx context.Context, participant string, done func(*credv1.IssueResponse, error)) {
	is.mu.Lock()
	is.queue = append(is.queue, issueItem{ctx: ctx, participant: participant, done: done})
	is.mu.Unlock()
	select {
	case is.wake <- struct{}{}:
	default:
	}
}

// run works the queue until ctx ends; what is queued then is answered with an error.
func (is *issuer) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range issueWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-is.wake:
				}
				for {
					batch := is.take()
					if len(batch) == 0 {
						break
					}
					is.send(ctx, batch)
				}
			}
		})
	}
	wg.Wait()
	for _, it := range is.take() {
		it.done(nil, errors.New("room service is stopping"))
	}
}

func (is *issuer) take() []issueItem {
	is.mu.Lock()
	defer is.mu.Unlock()
	n := min(len(is.queue), issueMaxBatch)
	batch := make([]issueItem, n)
	copy(batch, is.queue)
	is.queue = is.queue[n:]
	if len(is.queue) == 0 {
		is.queue = nil
	}
	return batch
}

// send issues one batch and answers each item. The call runs under the first item's span; the
// others link to that span, so each enter's trace leads to its credsvc call.
func (is *issuer) send(ctx context.Context, batch []issueItem) {
	req := &credv1.IssueBatchRequest{Requests: make([]*credv1.IssueRequest, len(batch))}
	first := trace.SpanFromContext(batch[0].ctx)
	for i, it := range batch {
		req.Requests[i] = &credv1.IssueRequest{ParticipantId: it.participant}
		if i > 0 {
			trace.SpanFromContext(it.ctx).AddLink(trace.Link{SpanContext: first.SpanContext()})
		}
	}
	callCtx := trace.ContextWithSpan(ctx, first)
	var (
		res *connect.Response[credv1.IssueBatchResponse]
		err error
	)
	for attempt := range issueAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(issueBackoff):
			}
		}
		cctx, cancel := context.WithTimeout(callCtx, issueTimeout)
		res, err = is.client.IssueBatch(cctx, connect.NewRequest(req))
		cancel()
		if err == nil || ctx.Err() != nil || !retryable(connect.CodeOf(err)) {
			break
		}
	}
	if err == nil && len(res.Msg.GetResults()) != len(batch) {
		err = fmt.Errorf("credsvc answered %d of %d credential requests", len(res.Msg.GetResults()), len(batch))
	}
	for i, it := range batch {
		switch {
		case err != nil:
			it.done(nil, fmt.Errorf("issue credentials: %w", err))
		case res.Msg.Results[i].GetError() != nil:
			e := res.Msg.Results[i].GetError()
			it.done(nil, connect.NewError(connect.Code(e.GetCode()), errors.New(e.GetMessage())))
		default:
			it.done(res.Msg.Results[i].GetCredentials(), nil)
		}
	}
}
