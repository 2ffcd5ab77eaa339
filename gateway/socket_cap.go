package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// codeTooManySockets is the code of the refusal of a socket over the cap.
const codeTooManySockets = "TOO_MANY_SOCKETS"

// socketCap counts the open /ws sockets of each client address, from before the upgrade to
// the end of the session. The join limit bounds how fast an address joins, and the join
// timeout how long an idle socket lives, but neither bounds how many sockets one address
// holds at once: each costs ~85 KiB and goroutines, joined ones for as long as they like.
type socketCap struct {
	max int

	mu    sync.Mutex
	addrs map[string]int // only addresses with at least one socket
}

func newSocketCap(max int) *socketCap {
	return &socketCap{max: max, addrs: map[string]int{}}
}

// acquire takes a slot for addr; false when addr already holds max sockets.
func (c *socketCap) acquire(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs[addr] >= c.max {
		return false
	}
	c.addrs[addr]++
	return true
}

// release gives back a slot taken by acquire.
func (c *socketCap) release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.addrs[addr]; n > 1 {
		c.addrs[addr] = n - 1
	} else {
		delete(c.addrs, addr)
	}
}

// capError is the refusal frame, readable in both dialects: the browser dialect reads
// error/code, the Flutter dialect data.reason (the dialect is not known before a first frame).
type capError struct {
	Type         string           `json:"type"`
	Error        string           `json:"error"`
	Code         string           `json:"code"`
	RetryAfterMs int64            `json:"retryAfterMs"`
	Data         flutterErrorData `json:"data"`
}

// refuseSockets answers an upgrade over the cap with an error frame and close 1013 (try again
// later), so that a browser — which cannot read the status of a failed upgrade — can say what
// happened (DESIGN.md §3: a clear error and a close code). The socket lives only for the close
// handshake and holds no slot. retryAfterMs is the join timeout: slots free at no known time,
// but by then every socket of the address that had not joined is gone.
func refuseSockets(w http.ResponseWriter, r *http.Request, max int, joinTimeout time.Duration) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the Origin was checked by the caller
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has written the HTTP error
	}
	text := "Too many open connections from your address (at most " + itoa(max) + "): close another tab or try again later"
	retry := joinTimeout.Milliseconds()
	frame := mustJSON(capError{
		Type: "error", Error: text, Code: codeTooManySockets, RetryAfterMs: retry,
		Data: flutterErrorData{Reason: text, Code: codeTooManySockets, RetryAfterMs: retry},
	})
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		_ = conn.CloseNow()
		return
	}
	_ = conn.Close(websocket.StatusTryAgainLater, "too many sockets")
}
