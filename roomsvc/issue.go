package roomsvc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

// Credential issuing: every enter and resume needs TURN credentials before the member exists.
// Requests are queued and sent to credsvc in IssueBatch calls by a few workers: whatever is
// queued when a worker is free goes in its next call, so nothing waits for a batch to fill.
//
// An enter's participant id is new, so its credentials can be issued ahead: once joins come
// in, the issuer keeps a small pool of fresh ids with credentials, refilled in one call when it
// runs low, and an enter takes one without a round trip to credsvc. Pooled credentials never
// handed out are dropped after poolFresh; they were never given to anyone and just expire.
const (
	issueWorkers  = 4
	issueMaxBatch = 512
	issueTimeout  = 5 * time.Second
	issueAttempts = 2
	issueBackoff  = 100 * time.Millisecond

	poolSize  = 64
	poolLow   = 16
	poolFresh = time.Minute
)

// pooled is a participant id with credentials issued for it ahead of an enter.
type pooled struct {
	id    string
	creds *credv1.IssueResponse
	at    time.Time
	from  trace.SpanContext // the refill that issued it, linked from the enter that uses it
}

type issueItem struct {
	ctx         context.Context // carries the span of the enter or resume
	participant string
	done        func(*credv1.IssueResponse, error)
	// via, when set, is told (before done) the span the credsvc call ran under.
	via func(trace.SpanContext)
}

// issuer batches credential requests to credsvc.
type issuer struct {
	client credv1connect.CredentialServiceClient
	tracer trace.Tracer

	mu        sync.Mutex
	queue     []issueItem
	pool      []pooled
	refilling bool // a refill is queued or in flight
	wake      chan struct{}
}

func newIssuer(client credv1connect.CredentialServiceClient, tracer trace.Tracer) *issuer {
	return &issuer{client: client, tracer: tracer, wake: make(chan struct{}, issueWorkers)}
}

// issueNew finds credentials for a new participant: from the pool at once, on the caller's
// goroutine, or else through a queued request (and the pool is refilled). An enter that takes
// pooled credentials links its span to the refill's, whose trace holds the credsvc call.
func (is *issuer) issueNew(ctx context.Context, done func(id string, creds *credv1.IssueResponse, err error)) {
	now := time.Now()
	is.mu.Lock()
	for len(is.pool) > 0 && now.Sub(is.pool[0].at) > poolFresh {
		is.pool = is.pool[1:]
	}
	var p pooled
	if len(is.pool) > 0 {
		p = is.pool[0]
		is.pool = is.pool[1:]
	}
	refill := len(is.pool) < poolLow && !is.refilling
	if refill {
		is.refilling = true
	}
	is.mu.Unlock()
	if p.creds == nil {
		id := newParticipantID()
		is.issue(ctx, id, func(creds *credv1.IssueResponse, err error) { done(id, creds, err) })
	}
	if refill {
		is.refill() // after the request above, so that request leads the batch and its trace
	}
	if p.creds != nil {
		span := trace.SpanFromContext(ctx)
		span.AddLink(trace.Link{SpanContext: p.from})
		span.SetAttributes(attribute.String("tuturu.credentials", "pooled"))
		// The lifetime left is what the client must plan with.
		p.creds.Ttl = durationpb.New(time.Until(p.creds.GetExpiresAt().AsTime()).Truncate(time.Second))
		done(p.id, p.creds, nil)
	}
}

// refill queues requests for a pool's worth of new participants, under a span of its own.
func (is *issuer) refill() {
	is.mu.Lock()
	n := poolSize - len(is.pool)
	is.mu.Unlock()
	ctx, span := is.tracer.Start(context.Background(), "credential pool refill", trace.WithAttributes(attribute.Int("tuturu.batch.items", n)))
	var left sync.WaitGroup
	left.Add(n)
	for range n {
		id := newParticipantID()
		from := span.SpanContext()
		is.enqueue(issueItem{ctx: ctx, participant: id, via: func(sc trace.SpanContext) { from = sc }, done: func(creds *credv1.IssueResponse, err error) {
			defer left.Done()
			if err != nil {
				return
			}
			is.mu.Lock()
			is.pool = append(is.pool, pooled{id: id, creds: creds, at: time.Now(), from: from})
			is.mu.Unlock()
		}})
	}
	go func() {
		left.Wait()
		span.End()
		is.mu.Lock()
		is.refilling = false
		is.mu.Unlock()
	}()
}

// issue queues a request; done is called once, on a worker goroutine.
func (is *issuer) issue(ctx context.Context, participant string, done func(*credv1.IssueResponse, error)) {
	is.enqueue(issueItem{ctx: ctx, participant: participant, done: done})
}

func (is *issuer) enqueue(it issueItem) {
	is.mu.Lock()
	is.queue = append(is.queue, it)
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
		if it.via != nil {
			it.via(first.SpanContext())
		}
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
