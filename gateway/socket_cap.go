package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// codeTooManySockets is the code of the 429 answer to an upgrade over the cap.
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

// refuseSockets answers an upgrade over the cap with 429 before any WebSocket exists, so the
// refusal costs no socket state. No slot frees at a known time; by Retry-After (the join
// timeout) every socket of the address that had not joined is gone.
func refuseSockets(w http.ResponseWriter, max int, joinTimeout time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((joinTimeout+time.Second-1)/time.Second)))
	writeJSON(w, http.StatusTooManyRequests, apiError{
		Error: "Too many open connections from your address (at most " + itoa(max) + "): close another tab or try again later",
		Code:  codeTooManySockets,
	})
}
