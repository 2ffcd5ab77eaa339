package platform

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"
)

// defaultStopIdleGrace is how long a stopping server with no call in flight keeps waiting for
// http.Server.Shutdown before closing the connections that remain (Server.StopIdleGrace). Shutdown closes only the
// connections it sees idle, and some it never sees so: an HTTP/2 connection that completes its
// set-up just as the stop begins (a net/http race: no GOAWAY, never counted idle), or a client
// that sent half a request header (held until ReadHeaderTimeout). Each made a stop wait its
// whole StopTimeout with nothing left to finish.
const defaultStopIdleGrace = time.Second

// inFlight counts the handlers running on a server.
type inFlight struct{ n atomic.Int64 }

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		defer f.n.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// shutdown stops srv gracefully within ctx; once no handler has run for grace it
// closes what is left instead of waiting for the deadline. It reports whether ctx ran out with
// calls still in flight (they are then closed too).
func (f *inFlight) shutdown(ctx context.Context, srv *http.Server, grace time.Duration) (timedOut bool, err error) {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	tick := time.NewTicker(max(grace/10, time.Millisecond))
	defer tick.Stop()
	var idleSince time.Time
	for {
		select {
		case err := <-done:
			if errors.Is(err, context.DeadlineExceeded) {
				return true, srv.Close()
			}
			return false, err
		case now := <-tick.C:
			switch {
			case f.n.Load() > 0:
				idleSince = time.Time{}
			case idleSince.IsZero():
				idleSince = now
			case now.Sub(idleSince) >= grace:
				// Close makes the pending Shutdown return (nil, or ErrServerClosed).
				err := srv.Close()
				if serr := <-done; err == nil && serr != nil && !errors.Is(serr, http.ErrServerClosed) {
					err = serr
				}
				return false, err
			}
		}
	}
}
