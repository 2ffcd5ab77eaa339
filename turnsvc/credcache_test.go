package turnsvc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fetchFunc builds a credsvc stand-in as a plain function: the cache logic is pure and is tested
// here without a network; the service tests use a real Connect server.
func validIn(d time.Duration, participant string) func(context.Context, string, string) verdict {
	return func(context.Context, string, string) verdict {
		return verdict{result: resultValid, key: []byte("k"), participant: participant, expires: time.Now().Add(d)}
	}
}

func user(ttl time.Duration, id string) string {
	return fmt.Sprintf("%d:%s:%s", time.Now().Add(ttl).Unix(), id, testKeyID)
}

func TestCredCacheHitMissAndLocalChecks(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	c := newCredCache(func(ctx context.Context, u, r string) verdict {
		calls.Add(1)
		return validIn(time.Hour, "p1")(ctx, u, r)
	})
	u := user(time.Hour, "p1")
	if _, hit := c.lookup(u); hit {
		t.Fatal("hit before any fetch")
	}
	if v := c.resolve(u, "r", time.Second); !v.valid() || v.participant != "p1" {
		t.Fatalf("resolve = %+v", v)
	}
	if v, hit := c.lookup(u); !hit || !v.valid() {
		t.Fatalf("lookup after resolve = %+v, %v", v, hit)
	}
	// malformed and expired usernames never reach credsvc
	exp := time.Now().Add(time.Hour).Unix()
	for _, bad := range []string{"nocolon", ":x", "abc:x", "-5:x", user(-time.Minute, "old"),
		fmt.Sprintf("%d:p", exp),                    // coturn's plain <expiry>:<id>, no key id
		fmt.Sprintf("%d::%s", exp, testKeyID),       // empty participant
		fmt.Sprintf("%d:p:0A1B2C3D", exp),           // key id not lowercase
		fmt.Sprintf("%d:p:0a1b2c3", exp),            // key id too short
		fmt.Sprintf("+%d:p:%s", exp, testKeyID),     // sign
		fmt.Sprintf("%d:a b:%s", exp, testKeyID),    // space
		fmt.Sprintf("%d:a\x00b:%s", exp, testKeyID), // control character
		fmt.Sprintf("%d:\xff:%s", exp, testKeyID),   // not UTF-8
		user(time.Hour, strings.Repeat("x", 129)),   // participant too long
		user(time.Hour, strings.Repeat("x:", 300)),  // username too long
	} {
		if v, refused := c.refuseLocally(bad); !refused || v.valid() {
			t.Errorf("refuseLocally(%q) = %v, %v: left to credsvc", bad, v.result, refused)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls to credsvc, want 1", calls.Load())
	}
	if n := c.size(); n != 1 {
		t.Errorf("%d cached entries, want 1: local refusals are not remembered", n)
	}
	// a participant with colons is well-formed (credsvc allows them)
	if _, ok := wellFormed(user(time.Hour, "a:b:c")); !ok {
		t.Error("participant with colons refused")
	}
}

func TestCredCacheExpiryOfPositiveEntry(t *testing.T) {
	t.Parallel()
	c := newCredCache(validIn(time.Hour, "p"))
	now := time.Now()
	c.now = func() time.Time { return now }
	u := user(time.Hour, "p")
	c.store(u, verdict{result: resultValid, key: []byte("k"), participant: "p", expires: now.Add(time.Minute)})
	now = now.Add(2 * time.Minute)
	if v, hit := c.lookup(u); !hit || v.result != resultExpired {
		t.Errorf("lookup past expiry = %+v, %v; want expired", v, hit)
	}
}

func TestCredCacheNegativeTTL(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	c := newCredCache(func(context.Context, string, string) verdict {
		calls.Add(1)
		return verdict{result: resultUnknownSecret}
	})
	now := time.Now()
	c.now = func() time.Time { return now }
	u := user(time.Hour, "p")
	c.resolve(u, "r", time.Second)
	if v, hit := c.lookup(u); !hit || v.result != resultUnknownSecret {
		t.Fatalf("negative entry not cached: %+v %v", v, hit)
	}
	now = now.Add(c.negativeTTL + time.Second)
	if _, hit := c.lookup(u); hit {
		t.Error("negative entry outlived its TTL")
	}
}

// heldValidate is a Validate that counts its calls and answers valid once release is closed.
func heldValidate(release <-chan struct{}, calls *atomic.Int64) func(ctx context.Context, u, r string) verdict {
	return func(ctx context.Context, u, r string) verdict {
		calls.Add(1)
		<-release
		return validIn(time.Hour, "p")(ctx, u, r)
	}
}

func TestCredCacheSingleFlightAndBoundedWait(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var calls atomic.Int64
	c := newCredCache(heldValidate(release, &calls))
	u := user(time.Hour, "p")
	start := time.Now()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if v := c.resolve(u, "r", 50*time.Millisecond); v.result != resultUnavailable {
				t.Errorf("resolve during a slow call = %+v, want unavailable", v)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("callers waited %v, far beyond the 50ms bound", d)
	}
	close(release)
	eventually(t, 2*time.Second, "late answer cached", func() bool {
		v, hit := c.lookup(u)
		return hit && v.valid()
	})
	if calls.Load() != 1 {
		t.Errorf("%d concurrent calls for one username, want 1", calls.Load())
	}
}

func TestCredCacheRevocations(t *testing.T) {
	t.Parallel()
	c := newCredCache(validIn(time.Hour, "p1"))
	u1, u2 := user(time.Hour, "p1"), user(time.Hour, "p1-second")
	c.resolve(u1, "r", time.Second)
	c.store(u2, verdict{result: resultValid, key: []byte("k"), participant: "p2", expires: time.Now().Add(time.Hour)})
	c.revoke("", "p1", time.Now().Add(time.Hour))
	if _, hit := c.lookup(u1); hit {
		t.Error("entry of a revoked participant still cached")
	}
	if _, hit := c.lookup(u2); !hit {
		t.Error("entry of another participant dropped")
	}
	// a Validate answer that lands after the revocation is stored as revoked
	if v := c.store(u1, verdict{result: resultValid, key: []byte("k"), participant: "p1", expires: time.Now().Add(time.Hour)}); v.result != resultRevoked {
		t.Errorf("late VALID for a revoked participant = %+v", v)
	}
	// a snapshot replaces the set: p1 is no longer revoked, u2 is
	c.replaceRevocations(map[string]time.Time{u2: time.Now().Add(time.Hour)}, map[string]time.Time{})
	if c.isRevoked("", "p1") || !c.isRevoked(u2, "") {
		t.Error("snapshot not applied")
	}
	if _, hit := c.lookup(u2); hit {
		t.Error("entry revoked by a snapshot still cached")
	}
	// revocations are forgotten after they expire
	c.revoke("old", "", time.Now().Add(-time.Second))
	c.sweep()
	if c.isRevoked("old", "") {
		t.Error("expired revocation kept")
	}
}

func TestCredCacheBound(t *testing.T) {
	t.Parallel()
	c := newCredCache(func(context.Context, string, string) verdict { return verdict{result: resultRevoked} })
	c.maxEntries = 10
	for i := range 50 {
		c.resolve(user(time.Hour, fmt.Sprint("x", i)), "r", time.Second)
	}
	if n := c.size(); n > 10 {
		t.Errorf("cache grew to %d entries over a bound of 10", n)
	}
	// confirmed credentials are always kept
	keep := user(time.Hour, "keep")
	c.store(keep, verdict{result: resultValid, key: []byte("k"), expires: time.Now().Add(time.Hour)})
	if _, hit := c.lookup(keep); !hit {
		t.Error("valid entry dropped when the cache is full")
	}
}

// TestCredCacheFlightCap: at most maxFlights Validate calls are in flight; beyond, a new
// username is throttled at once, while a caller of a username already in flight shares it.
func TestCredCacheFlightCap(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var calls atomic.Int64
	c := newCredCache(heldValidate(release, &calls))
	c.maxFlights = 2
	// Names are made once: user() embeds the current second, and a second boundary crossed
	// between two calls would otherwise make them different usernames.
	p0, p1, p2 := user(time.Hour, "p0"), user(time.Hour, "p1"), user(time.Hour, "p2")
	for i, u := range []string{p0, p1} {
		if v := c.resolve(u, "r", 10*time.Millisecond); v.result != resultUnavailable {
			t.Fatalf("resolve %d = %+v, want unavailable (in flight)", i, v)
		}
	}
	if v := c.resolve(p2, "r", time.Second); v.result != resultThrottled {
		t.Errorf("third username = %+v, want throttled", v)
	}
	if v := c.resolve(p0, "r", 10*time.Millisecond); v.result != resultUnavailable {
		t.Errorf("username in flight = %+v, want unavailable (shared flight)", v)
	}
	close(release)
	eventually(t, 2*time.Second, "flights done", func() bool {
		v, hit := c.lookup(p1)
		return hit && v.valid()
	})
	if v := c.resolve(p2, "r", time.Second); !v.valid() {
		t.Errorf("after the flights ended = %+v, want valid", v)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3", calls.Load())
	}
}
