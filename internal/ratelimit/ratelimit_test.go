package ratelimit

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func TestBucket(t *testing.T) {
	l := Limit{Rate: 2, Burst: 3}
	var b Bucket
	for i := range 3 {
		if ok, _ := b.Take(t0, l, 1); !ok {
			t.Fatalf("take %d of a fresh bucket's burst refused", i+1)
		}
	}
	if ok, wait := b.Take(t0, l, 1); ok || wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: ok=%v wait=%v, want refused for 500ms", ok, wait)
	}
	if ok, _ := b.Take(t0.Add(250*time.Millisecond), l, 1); ok {
		t.Fatal("half a token taken as a whole one")
	}
	if ok, _ := b.Take(t0.Add(500*time.Millisecond), l, 1); !ok {
		t.Fatal("no token after the announced wait")
	}
	// An earlier time (callers that read the clock before a lock) refills nothing.
	if ok, _ := b.Take(t0, l, 1); ok {
		t.Fatal("a time in the past refilled the bucket")
	}
	// Refill stops at the burst.
	for i := range 3 {
		if ok, _ := b.Take(t0.Add(time.Hour), l, 1); !ok {
			t.Fatalf("take %d after an hour refused", i+1)
		}
	}
	if ok, _ := b.Take(t0.Add(time.Hour), l, 1); ok {
		t.Fatal("refilled beyond the burst")
	}
}

func TestBucketTakesMany(t *testing.T) {
	l := Limit{Rate: 1000, Burst: 1500} // bytes
	var b Bucket
	if ok, _ := b.Take(t0, l, 1200); !ok {
		t.Fatal("1200 of 1500 refused")
	}
	ok, wait := b.Take(t0, l, 1200)
	if ok || wait != 900*time.Millisecond {
		t.Fatalf("1200 more: ok=%v wait=%v, want refused for 900ms", ok, wait)
	}
	if ok, _ := b.Take(t0, l, 300); !ok {
		t.Fatal("a refused take spent tokens")
	}
	if ok, wait := (&Bucket{}).Take(t0, Limit{Rate: 0, Burst: 1}, 2); ok || wait != math.MaxInt64 {
		t.Fatalf("rate 0 beyond the burst: ok=%v wait=%v, want refused for ever", ok, wait)
	}
}

func TestKeyedTake(t *testing.T) {
	k := NewKeyed[string, struct{}](Config{Limit: Limit{Rate: 1, Burst: 2}, SweepEvery: time.Minute})
	for i := range 2 {
		if ok, _ := k.Take("a", t0); !ok {
			t.Fatalf("take %d within the burst refused", i+1)
		}
	}
	if ok, wait := k.Take("a", t0); ok || wait != time.Second {
		t.Fatalf("beyond the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := k.Take("b", t0); !ok {
		t.Fatal("another key refused")
	}
	if ok, _ := k.Take("a", t0.Add(time.Second)); !ok {
		t.Fatal("no token after a second")
	}
}

// TestKeyedForgetsIdleKeys: a sweep forgets keys whose bucket refilled and whose hold is past,
// keeps the others, and runs at most every SweepEvery.
func TestKeyedForgetsIdleKeys(t *testing.T) {
	k := NewKeyed[string, int](Config{Limit: Limit{Rate: 1, Burst: 10}, SweepEvery: time.Minute})
	k.Take("idle", t0)
	k.Do("held", t0, func(e *Entry[int]) { e.Hold = t0.Add(5 * time.Minute) })
	// "drained" is emptied at 50 s and again at 55 s: at 61 s it holds 6 of 10.
	for range 10 {
		k.Take("drained", t0.Add(50*time.Second))
	}
	k.Take("probe", t0.Add(55*time.Second)) // no sweep: less than a minute since the first
	if n := k.Len(); n != 4 {
		t.Fatalf("%d keys before a sweep is due, want 4", n)
	}
	for range 5 {
		k.Take("drained", t0.Add(55*time.Second))
	}
	k.Take("trigger", t0.Add(61*time.Second)) // sweeps: "idle" and "probe" are full again
	k.mu.Lock()
	_, idle := k.keys["idle"]
	_, held := k.keys["held"]
	_, drained := k.keys["drained"]
	k.mu.Unlock()
	if idle || !held || !drained {
		t.Fatalf("after a sweep: idle kept=%v, held kept=%v, drained kept=%v; want false, true, true", idle, held, drained)
	}
	// Forgetting changes nothing: the held key's value survived, a forgotten key starts full.
	k.Do("held", t0.Add(61*time.Second), func(e *Entry[int]) { e.Value++ })
	var v int
	k.Do("held", t0.Add(61*time.Second), func(e *Entry[int]) { v = e.Value })
	if v != 1 {
		t.Errorf("held key's value = %d, want 1", v)
	}
	// Once its hold is past and its bucket full, the held key goes at the next sweep.
	k.Take("trigger", t0.Add(10*time.Minute))
	if n := k.Len(); n != 1 {
		t.Errorf("%d keys after everything went quiet, want only the one just taken from", n)
	}
}

// TestKeyedMaxKeys: a set full of busy keys does not track new ones and allows them; once the
// busy keys are idle, a sweep makes room again.
func TestKeyedMaxKeys(t *testing.T) {
	k := NewKeyed[netip.Prefix, struct{}](Config{Limit: Limit{Rate: 1, Burst: 3}, SweepEvery: time.Second, MaxKeys: 100})
	for i := range 1000 {
		key := ClientKey(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		if ok, _ := k.Take(key, t0); !ok {
			t.Fatalf("new key %v refused", key)
		}
	}
	if n := k.Len(); n != 100 {
		t.Fatalf("%d keys tracked, want the bound of 100", n)
	}
	untracked := ClientKey(netip.MustParseAddr("198.51.100.1"))
	for range 10 {
		if ok, _ := k.Take(untracked, t0); !ok {
			t.Fatal("an untracked key was limited")
		}
	}
	if k.Do(untracked, t0, func(*Entry[struct{}]) { t.Error("Do called f for an untracked key") }) {
		t.Error("Do reported an untracked key as tracked")
	}
	later := t0.Add(time.Minute)
	for range 3 {
		k.Take(untracked, later)
	}
	if ok, _ := k.Take(untracked, later); ok {
		t.Error("key not limited after the sweep made room")
	}
}

// TestKeyedConcurrent: many goroutines taking from one key at one instant get exactly the burst.
func TestKeyedConcurrent(t *testing.T) {
	k := NewKeyed[string, struct{}](Config{Limit: Limit{Rate: 1, Burst: 50}, SweepEvery: time.Minute})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := k.Take("k", t0); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 50 {
		t.Fatalf("%d takes allowed at one instant, want the burst of 50", n)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1/32",
		"::ffff:192.0.2.1":     "192.0.2.1/32",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"::1":                  "::/64",
	} {
		if got := ClientKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("ClientKey(%s) = %v, want %s", in, got, want)
		}
	}
	if ClientKey(netip.Addr{}).IsValid() {
		t.Error("an invalid address has a valid key")
	}
}

func BenchmarkBucketTake(b *testing.B) {
	l := Limit{Rate: 1e6, Burst: 1e6}
	var bk Bucket
	now := t0
	for b.Loop() {
		now = now.Add(time.Microsecond)
		bk.Take(now, l, 1)
	}
}

// BenchmarkKeyedTake: one busy key, and keys spread over a large set (map lookups, sweeps).
func BenchmarkKeyedTake(b *testing.B) {
	b.Run("one key", func(b *testing.B) {
		k := NewKeyed[netip.Prefix, struct{}](Config{Limit: Limit{Rate: 10, Burst: 30}, SweepEvery: time.Second, MaxKeys: 16384})
		key := ClientKey(netip.MustParseAddr("192.0.2.1"))
		b.ReportAllocs()
		now := t0
		for b.Loop() {
			now = now.Add(time.Microsecond)
			k.Take(key, now)
		}
	})
	b.Run("16384 keys", func(b *testing.B) {
		k := NewKeyed[netip.Prefix, struct{}](Config{Limit: Limit{Rate: 10, Burst: 30}, SweepEvery: time.Second, MaxKeys: 16384})
		keys := make([]netip.Prefix, 16384)
		for i := range keys {
			keys[i] = ClientKey(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
		}
		b.ReportAllocs()
		now := t0
		i := 0
		for b.Loop() {
			now = now.Add(time.Microsecond)
			k.Take(keys[i%len(keys)], now)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		k := NewKeyed[netip.Prefix, struct{}](Config{Limit: Limit{Rate: 10, Burst: 30}, SweepEvery: time.Second, MaxKeys: 16384})
		key := ClientKey(netip.MustParseAddr("192.0.2.1"))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k.Take(key, time.Now())
			}
		})
	})
}
