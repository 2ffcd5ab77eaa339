package roomsvc

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

// Revocation: a departed member's TURN credentials must stop working. Departures queue in
// memory, without bound (a participant id is a few dozen bytes) and are never dropped: a
// worker sends whatever is queued as one RevokeBatch, which credsvc stores in one transaction,
// and retries a failed call until it lands. The worker lets departures gather for revokeLinger
// first: each transaction costs credsvc an fsync, and a credential that works a few more
// milliseconds after its member left gives nobody anything.
const (
	revokeMaxBatch   = 1024
	revokeLinger     = 20 * time.Millisecond
	revokeTimeout    = 5 * time.Second
	revokeBackoffMin = 100 * time.Millisecond
	revokeBackoffMax = 5 * time.Second
	revokeDrain      = 5 * time.Second // on stop, the longest wait for queued revocations
	// revokeDeep is the queue depth worth a warning: credsvc is down or far behind.
	revokeDeep = 10000
)

// revoker tells credsvc, in the background, that participants are gone for good.
type revoker struct {
	client credv1connect.CredentialServiceClient
	log    *slog.Logger

	mu     sync.Mutex
	queue  []string
	warned bool // the queue was reported deep and has not drained since
	wake   chan struct{}
	depth  atomic.Int64 // queued and in flight, for the metric
}

func newRevoker(client credv1connect.CredentialServiceClient, log *slog.Logger) *revoker {
	return &revoker{client: client, log: log, wake: make(chan struct{}, 1)}
}

// enqueue never blocks and never drops: it is called with room locks held.
func (r *revoker) enqueue(participantID string) {
	r.mu.Lock()
	r.queue = append(r.queue, participantID)
	deep := len(r.queue) >= revokeDeep && !r.warned
	if deep {
		r.warned = true
	}
	r.mu.Unlock()
	r.depth.Add(1)
	if deep {
		r.log.Warn("revocation queue is deep: credsvc is down or behind; departed members' TURN credentials work until it catches up",
			"queued", revokeDeep)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *revoker) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(len(r.queue), revokeMaxBatch)
	batch := make([]string, n)
	copy(batch, r.queue)
	r.queue = r.queue[n:]
	if len(r.queue) == 0 {
		r.queue = nil
		r.warned = false
	}
	return batch
}

// pending is how many revocations are queued or in flight.
func (r *revoker) pending() int64 { return r.depth.Load() }

// run works the queue until stop is closed, then works off what is still queued for at most
// drain, so members who left just before a stop do not keep working TURN credentials.
func (r *revoker) run(stop <-chan struct{}, drain time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		time.AfterFunc(drain, cancel)
	}()
	for {
		select {
		case <-r.wake:
			select {
			case <-time.After(revokeLinger):
			case <-stop:
			}
		case <-stop:
		}
		for {
			batch := r.take()
			if len(batch) == 0 {
				break
			}
			if !r.send(ctx, batch) {
				r.log.Warn("stopped before credsvc took every revocation; those credentials expire on their own",
					"undelivered", r.pending())
				return
			}
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// send delivers one batch, retrying until credsvc stores it or ctx ends (false).
func (r *revoker) send(ctx context.Context, ids []string) bool {
	req := &credv1.RevokeBatchRequest{Requests: make([]*credv1.RevokeRequest, len(ids))}
	for i, id := range ids {
		req.Requests[i] = &credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: id}, Reason: "left"}
	}
	backoff := revokeBackoffMin
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, revokeTimeout)
		res, err := r.client.RevokeBatch(cctx, connect.NewRequest(req))
		cancel()
		if err == nil {
			for i, item := range res.Msg.GetResults() {
				if e := item.GetError(); e != nil && i < len(ids) {
					r.log.Error("credsvc refused a revocation", "participant_id", ids[i], "err", e.GetMessage())
				}
			}
			r.depth.Add(-int64(len(ids)))
			return true
		}
		if attempt == 0 || attempt%10 == 0 {
			r.log.Warn("could not revoke departed participants' TURN credentials; retrying", "count", len(ids), "err", err)
		}
		select {
		case <-ctx.Done():
			r.requeue(ids)
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, revokeBackoffMax)
	}
}

// requeue puts back a batch that could not be sent, ahead of later ones.
func (r *revoker) requeue(ids []string) {
	r.mu.Lock()
	r.queue = append(ids, r.queue...)
	r.mu.Unlock()
}

// retryable says whether another attempt could succeed.
func retryable(code connect.Code) bool {
	switch code {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted,
		connect.CodeAborted, connect.CodeInternal, connect.CodeUnknown:
		return true
	}
	return false
}
