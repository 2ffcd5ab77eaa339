package roomsvc

import (
	"context"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
	"github.com/tuturu/tuturu/gen/tuturu/cred/v1/credv1connect"
)

// Revocation tuning: a departed member's TURN credentials should stop working soon, but room
// logic never waits for credsvc. Values keep a credsvc outage from piling up work.
const (
	revokeQueue    = 4096 // departures waiting for a worker; beyond that we warn and skip
	revokeWorkers  = 16   // credsvc group-commits concurrent revocations: more in flight, fewer fsyncs
	revokeAttempts = 3
	revokeTimeout  = 2 * time.Second
	revokeBackoff  = 200 * time.Millisecond
	revokeDrain    = 5 * time.Second // on stop, the longest wait for queued revocations
)

// revoker tells credsvc, in the background, that a participant is gone for good.
type revoker struct {
	client credv1connect.CredentialServiceClient
	queue  chan string
	log    *slog.Logger
}

func newRevoker(client credv1connect.CredentialServiceClient, log *slog.Logger) *revoker {
	return &revoker{client: client, queue: make(chan string, revokeQueue), log: log}
}

// enqueue never blocks: it is called with room locks held.
func (r *revoker) enqueue(participantID string) {
	select {
	case r.queue <- participantID:
	default:
		r.log.Warn("revocation queue full; the participant's TURN credentials will only expire on their own",
			"participant_id", participantID)
	}
}

// run works the queue until stop is closed, then works off what is still queued for at most
// drain, so members who left just before a stop do not keep working TURN credentials.
func (r *revoker) run(stop <-chan struct{}, drain time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		time.AfterFunc(drain, cancel)
	}()
	done := make(chan struct{})
	for range revokeWorkers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-r.queue:
					r.revoke(ctx, id)
					continue
				case <-stop:
				}
				select { // stopping: only what is already queued
				case id := <-r.queue:
					r.revoke(ctx, id)
				default:
					return
				}
			}
		}()
	}
	for range revokeWorkers {
		<-done
	}
}

func (r *revoker) revoke(ctx context.Context, id string) {
	req := &credv1.RevokeRequest{Target: &credv1.RevokeRequest_ParticipantId{ParticipantId: id}, Reason: "left"}
	var err error
	for attempt := range revokeAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(revokeBackoff << attempt):
			}
		}
		cctx, cancel := context.WithTimeout(ctx, revokeTimeout)
		_, err = r.client.Revoke(cctx, connect.NewRequest(req))
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if !retryable(connect.CodeOf(err)) {
			break
		}
	}
	r.log.Warn("could not revoke a departed participant's TURN credentials", "participant_id", id, "err", err)
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
