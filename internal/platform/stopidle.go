package platform

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"
)

// defaultStopIdleGrace is how long a stopping server with no call in flight keeps waiting for
// http.Server.Shutdown before closing the connections that remain (Server.StopIdleGrace).
// Shutdown closes only the connections it sees idle, and some it never sees so: an HTTP/2
// connection that completes its set-up just as the stop begins (a net/http race: no GOAWAY,
// never counted idle), or a client that sent half a request header. Each made a stop wait its
// whole StopTimeout with nothing left to finish.
const defaultStopIdleGrace = time.Second

// inFlight counts the handlers running on a server and remembers when one last started or
// ended, so that a stop can tell "nothing ran for a while" from "nothing runs at this instant".
type inFlight struct {
	n       atomic.Int64
	last    atomic.Int64 // unix nanoseconds of the last start or end of a call
	closing atomic.Bool  // set by a stop about to close every connection: new calls are refused
}

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		defer f.n.Add(-1)
		if f.closing.Load() {
			// Reaches only a connection Shutdown could not tell to go away; a client retries
			// a 503 elsewhere, where a closed connection mid-call would be an error.
			http.Error(w, "server stopping", http.StatusServiceUnavailable)
			return
		}
		f.last.Store(time.Now().UnixNano())
		defer func() { f.last.Store(time.Now().UnixNano()) }()
		h.ServeHTTP(w, r)
	})
}

// quietFor reports whether no call runs and none has started or ended for d.
func (f *inFlight) quietFor(d time.Duration, now time.Time) bool {
	return f.n.Load() == 0 && now.Sub(time.Unix(0, f.last.Load())) >= d
}

// shutdown stops srv gracefully within ctx; once the server has been quiet for grace it
// closes what is left instead of waiting for the deadline. It reports whether ctx ran out with
// calls still in flight (they are then closed too).
func (f *inFlight) shutdown(ctx context.Context, srv *http.Server, grace time.Duration) (timedOut bool, err error) {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	tick := time.NewTicker(max(grace/10, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if errors.Is(err, context.DeadlineExceeded) {
				return true, srv.Close()
			}
			return false, err
		case now := <-tick.C:
			if !f.quietFor(grace, now) {
				continue
			}
			if !f.closing.Swap(true) {
				// From now on new calls are refused; a call that started just before the flag
				// was set is still counted, so look again at the next tick.
				continue
			}
			// Close makes the pending Shutdown return (nil, or ErrServerClosed).
			err := srv.Close()
			if serr := <-done; err == nil && serr != nil && !errors.Is(serr, http.ErrServerClosed) {
				err = serr
			}
			return false, err
		}
	}
}
