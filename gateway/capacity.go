package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Capacity: a socket costs the gateway one file descriptor, so the open-file limit bounds how
// many it can hold. Past that, accept(2) fails and new clients hang with nobody telling them
// anything; so the gateway counts its sockets and refuses the next one itself, with SERVER_FULL
// and close 1013, while it still has descriptors for that. Established sockets are never
// dropped to make room.

// fdReserve is what the gateway keeps of its open-file limit for everything but client
// sockets: listeners, its streams to the other services, TLS files, logs, the refusals.
func fdReserve(limit int) int { return max(100, limit/20) }

// capacityFromLimit is how many sockets a gateway with this open-file limit holds.
func capacityFromLimit(limit int) int { return max(1, limit-fdReserve(limit)) }

// openFileLimit is the process's soft RLIMIT_NOFILE.
func openFileLimit() (int, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	const most = 1 << 30 // "unlimited" is not a number of sockets
	return int(min(r.Cur, most)), nil
}

// socketCapacity is the configured socket limit, or the one the open-file limit allows when
// none is set or the setting is higher.
func socketCapacity(cfg Config) (int, error) {
	limit, err := openFileLimit()
	if err != nil {
		return 0, fmt.Errorf("open-file limit: %w", err)
	}
	auto := capacityFromLimit(limit)
	if n := cfg.Limits.MaxSockets; n > 0 {
		if n > auto {
			cfg.Logger().Warn("WS_MAX_SOCKETS is above what the open-file limit allows; using the lower figure",
				"configured", n, "open_file_limit", limit, "max_sockets", auto)
			return auto, nil
		}
		return n, nil
	}
	return auto, nil
}

// capacity counts the gateway's open sockets against its limit.
type capacity struct {
	max  int
	open atomic.Int64
}

// acquire takes a socket slot; false when the gateway is full.
func (c *capacity) acquire() bool {
	if c.open.Add(1) > int64(c.max) {
		c.open.Add(-1)
		return false
	}
	return true
}

func (c *capacity) release() { c.open.Add(-1) }

func (c *capacity) full() bool { return c.open.Load() >= int64(c.max) }

// serverFullRetry is the retryAfterMs of SERVER_FULL: calls end at no known time, so this is a
// hint for a client that retries by itself, not a promise.
const serverFullRetry = 30 * time.Second

// refuseFull answers an upgrade when the gateway is full: an error frame readable in both
// dialects and close 1013 (try again later). The socket lives only for the close handshake.
func refuseFull(w http.ResponseWriter, r *http.Request, supportCode string) {
	refuseUpgrade(w, r, newCapError("The server is full: try again in a minute", codeServerFull, serverFullRetry.Milliseconds(), supportCode))
}

// refuseUpgrade accepts the socket only to send frame and close it with 1013 and the frame's
// text as the reason.
func refuseUpgrade(w http.ResponseWriter, r *http.Request, frame capError) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the Origin was checked by the caller
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has written the HTTP error
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, mustJSON(frame)); err != nil {
		_ = conn.CloseNow()
		return
	}
	_ = conn.Close(websocket.StatusTryAgainLater, truncateUTF8(frame.Error, maxCloseReason))
}

// serveReady answers /readyz: 200 while the gateway takes new sockets, 503 with the reason
// when it is full, stopping, or cannot reach any roomsvc shard, so a load balancer sends
// people to another gateway; with several shards the body lists each one's state. Liveness (/healthz) is not affected.
func (g *Gateway) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	g.mu.Lock()
	stopping := g.stopping
	g.mu.Unlock()
	switch {
	case stopping:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("stopping\n"))
	case g.cap.full():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("full\n"))
	default:
		up, states := g.shardStates()
		if up == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("room service unreachable\n" + states))
			return
		}
		_, _ = w.Write([]byte("ready\n" + states))
	}
}

// shardStates counts the shards whose stream is up and, when there are several, lists each
// one's state for /readyz. One shard down leaves the gateway ready: the rooms of the others
// work, and another gateway would reach the lost shard no better.
func (g *Gateway) shardStates() (up int, states string) {
	var b strings.Builder
	for _, s := range g.shards {
		state := "down"
		if s.link.ready() {
			up++
			state = "up"
		}
		if len(g.shards) > 1 {
			b.WriteString("roomsvc " + s.name + " " + state + "\n")
		}
	}
	return up, b.String()
}
