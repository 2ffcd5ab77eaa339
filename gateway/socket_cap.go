package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// codeTooManySockets is the code of the refusal of a socket over the cap.
const codeTooManySockets = "TOO_MANY_SOCKETS"

// socketCap counts the open /ws sockets of each client address, from before the upgrade to
// the end of the session. The join limit bounds how fast an address joins, and the join
// timeout how long an idle socket lives, but neither bounds how many sockets one address
// holds at once: each costs memory and a goroutine, joined ones for as long as they like.
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
	SupportCode  string           `json:"supportCode"`
	Data         flutterErrorData `json:"data"`
}

func newCapError(text, code string, retryAfterMs int64, supportCode string) capError {
	return capError{
		Type: "error", Error: text, Code: code, RetryAfterMs: retryAfterMs, SupportCode: supportCode,
		Data: flutterErrorData{Reason: text, Code: code, RetryAfterMs: retryAfterMs, SupportCode: supportCode},
	}
}

// refuseSockets answers an upgrade over the cap with an error frame and close 1013 (try again
// later), so that a browser, which cannot read the status of a failed upgrade, can say what
// happened. The socket holds no slot. retryAfterMs is the join timeout (capped at a minute):
// slots free at no known time, but by then every socket of the address that had not joined is
// gone.
func refuseSockets(w http.ResponseWriter, r *http.Request, max int, joinTimeout time.Duration, supportCode string) {
	text := "Too many open connections from your address (at most " + strconv.Itoa(max) + "): close another tab or try again later"
	refuseUpgrade(w, r, newCapError(text, codeTooManySockets, min(joinTimeout, time.Minute).Milliseconds(), supportCode))
}
