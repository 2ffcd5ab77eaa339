// Package ratelimit holds the token buckets the services share: a single Bucket, Keyed (a bucket
// per key that forgets quiet keys) and ClientKey, the rule that says which clients share a key.
//
// Every call takes the current time as an argument, so that callers read the clock once and
// tests need no sleeps.
package ratelimit

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// Limit is the shape of a bucket: it refills at Rate tokens per second and holds at most Burst.
type Limit struct {
	Rate  float64
	Burst float64
}

// Bucket is a token bucket. The zero value is full. Not safe for concurrent use.
type Bucket struct {
	tokens float64
	last   time.Time // last refill; zero: never used, so full
}

// Take refills the bucket for the time since its last use, then takes n tokens if it holds that
// many. When it does not it takes nothing and returns how long until it would (at l.Rate; the
// longest Duration when l.Rate is not positive).
// A now earlier than the last use refills nothing.
func (b *Bucket) Take(now time.Time, l Limit, n float64) (bool, time.Duration) {
	b.refill(now, l)
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	if l.Rate <= 0 {
		return false, math.MaxInt64 // never refills
	}
	return false, time.Duration((n - b.tokens) / l.Rate * float64(time.Second))
}

func (b *Bucket) refill(now time.Time, l Limit) {
	if b.last.IsZero() {
		b.tokens, b.last = l.Burst, now
		return
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(l.Burst, b.tokens+dt.Seconds()*l.Rate)
		b.last = now
	}
}

// full reports whether the bucket would be full at now: a fresh bucket would behave the same.
func (b *Bucket) full(now time.Time, l Limit) bool {
	if b.last.IsZero() {
		return true
	}
	return b.tokens+now.Sub(b.last).Seconds()*l.Rate >= l.Burst
}

// Config shapes a Keyed set.
type Config struct {
	Limit
	// SweepEvery is how often, at most, a call walks every key to forget the idle ones (bucket
	// full again and no Hold ahead). A sweep costs a walk of the whole set under its lock.
	SweepEvery time.Duration
	// MaxKeys, when positive, bounds the keys tracked, against a flood of invented keys. A new
	// key that finds the set full (after a sweep, if one is due) is not tracked: Take allows it
	// and Do does not call its function.
	MaxKeys int
}

// Keyed is a token bucket per key, all of one Limit, each with a value V of the caller's (use
// struct{} when there is none). Keys that are idle are forgotten, so the set holds only keys
// seen recently: forgetting an idle key changes nothing, since a new key starts full. Safe for
// concurrent use.
type Keyed[K comparable, V any] struct {
	cfg Config

	mu        sync.Mutex
	keys      map[K]*Entry[V]
	lastSweep time.Time
}

// Entry is one key's state in a Keyed set, handed to the function given to Do.
type Entry[V any] struct {
	// Value is the caller's state for the key; zero for a new key.
	Value V
	// Hold keeps the key from being forgotten until then, whatever its bucket holds (a block, a
	// backoff the caller must remember).
	Hold time.Time

	bucket Bucket
	limit  *Limit
}

// Take takes one token from the entry's bucket; see Bucket.Take.
func (e *Entry[V]) Take(now time.Time) (bool, time.Duration) {
	return e.bucket.Take(now, *e.limit, 1)
}

// NewKeyed returns an empty set.
func NewKeyed[K comparable, V any](c Config) *Keyed[K, V] {
	return &Keyed[K, V]{cfg: c, keys: map[K]*Entry[V]{}}
}

// Take takes one token from key's bucket. Refused, it returns how long until a token is there.
// A key the set cannot track (MaxKeys) is allowed.
func (k *Keyed[K, V]) Take(key K, now time.Time) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.entry(key, now)
	if e == nil {
		return true, 0
	}
	return e.Take(now)
}

// Do calls f with key's entry under the set's lock, creating the entry when key is new. f must
// be quick and must not call the set. Do returns false, without calling f, when key is new and
// the set is full (MaxKeys).
func (k *Keyed[K, V]) Do(key K, now time.Time, f func(*Entry[V])) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.entry(key, now)
	if e == nil {
		return false
	}
	f(e)
	return true
}

// SetLimit gives every key, present and future, the limit l; tokens already held stay (up to
// the new burst at the next take).
func (k *Keyed[K, V]) SetLimit(l Limit) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cfg.Limit = l
}

// Len is the number of keys tracked.
func (k *Keyed[K, V]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys)
}

// entry returns key's entry, sweeping first when a sweep is due, and creating it when there is
// room; nil when there is none.
func (k *Keyed[K, V]) entry(key K, now time.Time) *Entry[V] {
	if now.Sub(k.lastSweep) >= k.cfg.SweepEvery {
		k.sweep(now)
	}
	if e, ok := k.keys[key]; ok {
		return e
	}
	if k.cfg.MaxKeys > 0 && len(k.keys) >= k.cfg.MaxKeys {
		return nil
	}
	e := &Entry[V]{limit: &k.cfg.Limit}
	k.keys[key] = e
	return e
}

// sweep forgets the keys whose bucket is full again and whose Hold is past.
func (k *Keyed[K, V]) sweep(now time.Time) {
	k.lastSweep = now
	for key, e := range k.keys {
		if !now.Before(e.Hold) && e.bucket.full(now, k.cfg.Limit) {
			delete(k.keys, key)
		}
	}
}

// ClientKey is the key per-client limits count a client address under: an IPv4 address alone
// (an IPv4-mapped IPv6 address counts as IPv4), an IPv6 address by its /64, since one subscriber
// usually holds a whole /64 and could otherwise rotate addresses inside it to escape a limit.
// Zones are dropped. The result is invalid when ip is.
func ClientKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64) // invalid ip: invalid prefix
	return p
}
