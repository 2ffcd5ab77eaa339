package turnsvc

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Results of a credential check (the `result` label of tuturu.turn.auth).
const (
	resultValid         = "valid"  // credsvc confirmed it just now
	resultCached        = "cached" // answered from the cache or a live allocation
	resultMalformed     = "malformed"
	resultExpired       = "expired"
	resultRevoked       = "revoked"
	resultUnknownSecret = "unknown_secret"
	resultUnavailable   = "unavailable" // credsvc did not answer in time
	resultThrottled     = "throttled"   // over a lookup budget (authbudget.go); not asked
)

// verdict is what is known about one TURN username.
type verdict struct {
	result      string
	key         []byte // long-term key when valid
	participant string
	expires     time.Time
}

func (v verdict) valid() bool { return v.result == resultValid }

// credCache remembers what credsvc said about usernames, so that pion's read loop almost never
// waits on the network, and applies the revocations credsvc streams. Safe for concurrent use.
type credCache struct {
	fetch        func(ctx context.Context, username, realm string) verdict
	fetchTimeout time.Duration // bound on one Validate call, which may outlive the caller's wait
	negativeTTL  time.Duration // how long a refusal is remembered
	unavailTTL   time.Duration // how long "credsvc did not answer" is remembered
	maxEntries   int
	maxFlights   int // Validate calls in flight at once
	now          func() time.Time

	mu       sync.Mutex
	entries  map[string]cacheEntry
	inflight map[string]*flight
	revUser  map[string]time.Time // revoked username → when the revocation may be forgotten
	revPart  map[string]time.Time // revoked participant → same
}

type cacheEntry struct {
	v     verdict
	until time.Time
}

type flight struct {
	done chan struct{}
	v    verdict
}

func newCredCache(fetch func(ctx context.Context, username, realm string) verdict) *credCache {
	return &credCache{
		fetch:        fetch,
		fetchTimeout: 3 * time.Second,
		// A refused credential is refused for a few seconds without asking again: a client
		// retrying a wrong password must not turn into a stream of RPCs.
		negativeTTL: 5 * time.Second,
		unavailTTL:  time.Second,
		maxEntries:  100_000,
		maxFlights:  maxLookupFlights,
		now:         time.Now,
		entries:     map[string]cacheEntry{},
		inflight:    map[string]*flight{},
		revUser:     map[string]time.Time{},
		revPart:     map[string]time.Time{},
	}
}

// lookup answers from the cache only. A valid entry past its credential's expiry answers
// "expired".
func (c *credCache) lookup(username string) (verdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[username]
	if !ok {
		return verdict{}, false
	}
	now := c.now()
	if e.v.valid() {
		if now.Before(e.v.expires) {
			return e.v, true
		}
		return verdict{result: resultExpired}, true
	}
	if now.Before(e.until) {
		return e.v, true
	}
	delete(c.entries, username)
	return verdict{}, false
}

// refuseLocally answers what the username itself shows, without asking credsvc: not in
// credsvc's format (malformed), or past its expiry. ok is false when only credsvc can tell.
// These refusals are not cached: recomputing them is cheaper than remembering a flood of them.
func (c *credCache) refuseLocally(username string) (verdict, bool) {
	expiry, ok := wellFormed(username)
	if !ok {
		return verdict{result: resultMalformed}, true
	}
	if !c.now().Before(expiry) {
		return verdict{result: resultExpired}, true
	}
	return verdict{}, false
}

// resolve answers a username that lookup did not know and refuseLocally did not refuse (the
// caller checks that first, before spending any lookup budget on it). One Validate per username
// is in flight at a time (concurrent callers share it), at most maxFlights in all (beyond:
// throttled), and the caller waits for it at most wait: a slower answer still lands in the
// cache for the client's next attempt.
func (c *credCache) resolve(username, realm string, wait time.Duration) verdict {
	c.mu.Lock()
	f, ok := c.inflight[username]
	if !ok {
		if len(c.inflight) >= c.maxFlights {
			c.mu.Unlock()
			return verdict{result: resultThrottled}
		}
		f = &flight{done: make(chan struct{})}
		c.inflight[username] = f
		go c.run(f, username, realm)
	}
	c.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-f.done:
		return f.v
	case <-t.C:
		return verdict{result: resultUnavailable}
	}
}

func (c *credCache) run(f *flight, username, realm string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.fetchTimeout)
	v := c.fetch(ctx, username, realm)
	cancel()
	v = c.store(username, v)
	c.mu.Lock()
	delete(c.inflight, username)
	c.mu.Unlock()
	f.v = v
	close(f.done)
}

// store caches a verdict and returns it, turned into "revoked" when a revocation that arrived
// while the call was in flight covers it.
func (c *credCache) store(username string, v verdict) verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if v.valid() && c.revokedLocked(username, v.participant) {
		v = verdict{result: resultRevoked}
	}
	var until time.Time
	switch v.result {
	case resultValid:
		until = v.expires
	case resultUnavailable:
		until = now.Add(c.unavailTTL)
	default:
		until = now.Add(c.negativeTTL)
	}
	if len(c.entries) >= c.maxEntries {
		c.sweepLocked(now)
	}
	// When full of live entries, refusals are not remembered; confirmed credentials always are,
	// since they are what keeps calls working while credsvc is unreachable.
	if len(c.entries) < c.maxEntries || v.valid() {
		c.entries[username] = cacheEntry{v: v, until: until}
	}
	return v
}

func (c *credCache) revokedLocked(username, participant string) bool {
	if _, ok := c.revUser[username]; ok {
		return true
	}
	_, ok := c.revPart[participant]
	return ok && participant != ""
}

// revoke applies one revocation: its username or participant is refused from now on.
func (c *credCache) revoke(username, participant string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if username != "" {
		c.revUser[username] = expires
	}
	if participant != "" {
		c.revPart[participant] = expires
	}
	c.dropLocked(username, participant)
}

// replaceRevocations applies a complete snapshot of the revocations in force.
func (c *credCache) replaceRevocations(users, parts map[string]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revUser, c.revPart = users, parts
	for u, e := range c.entries {
		if e.v.valid() && c.revokedLocked(u, e.v.participant) {
			delete(c.entries, u)
		}
	}
}

func (c *credCache) dropLocked(username, participant string) {
	if username != "" {
		delete(c.entries, username)
	}
	if participant == "" {
		return
	}
	for u, e := range c.entries {
		if e.v.participant == participant {
			delete(c.entries, u)
		}
	}
}

// isRevoked reports whether a username or participant is revoked.
func (c *credCache) isRevoked(username, participant string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revokedLocked(username, participant)
}

// sweep forgets entries and revocations that no longer matter.
func (c *credCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
}

func (c *credCache) sweepLocked(now time.Time) {
	for u, e := range c.entries {
		if !now.Before(e.until) {
			delete(c.entries, u)
		}
	}
	for _, m := range []map[string]time.Time{c.revUser, c.revPart} {
		for k, exp := range m {
			if !exp.IsZero() && now.After(exp) {
				delete(m, k)
			}
		}
	}
}

// size is the number of cached usernames.
func (c *credCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Limits of credsvc's username format (docs/credentials.md).
const (
	maxUsernameLen    = 513 // STUN's limit for USERNAME
	maxParticipantLen = 128
	keyIDLen          = 8
)

// wellFormed reports whether username has credsvc's format, `<unix expiry>:<participant>:<key
// id>` (participant: 1-128 bytes of UTF-8 without spaces or control characters, and may hold
// colons; key id: 8 lowercase hex digits), and returns its expiry. It mirrors credsvc's own
// MALFORMED check, so that nothing credsvc would call malformed costs an RPC.
func wellFormed(username string) (time.Time, bool) {
	if len(username) > maxUsernameLen || !utf8.ValidString(username) {
		return time.Time{}, false
	}
	expiry, ok := usernameExpiry(username)
	if !ok || username[0] == '+' {
		return time.Time{}, false
	}
	first := strings.IndexByte(username, ':')
	last := strings.LastIndexByte(username, ':')
	if last <= first+1 {
		return time.Time{}, false
	}
	participant, kid := username[first+1:last], username[last+1:]
	if len(kid) != keyIDLen || len(participant) > maxParticipantLen {
		return time.Time{}, false
	}
	for i := range len(kid) {
		if b := kid[i]; !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f') {
			return time.Time{}, false
		}
	}
	for _, r := range participant {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return time.Time{}, false
		}
	}
	return expiry, true
}

// usernameExpiry parses the `<unix expiry>:` prefix of a coturn REST username.
func usernameExpiry(username string) (time.Time, bool) {
	head, rest, ok := strings.Cut(username, ":")
	if !ok || rest == "" || head == "" || len(head) > 12 {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt(head, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}
