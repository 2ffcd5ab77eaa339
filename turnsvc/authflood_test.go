package turnsvc

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/tuturu/tuturu/internal/ratelimit"
	"github.com/tuturu/tuturu/internal/testnet"
)

// TestAuthFloodKeepsRelaysFlowing: a live allocation relays a steady stream through turnsvc's
// only UDP socket while an attacker on another address sends Allocates with fresh, well-formed
// usernames (and garbage integrity: the attacker needs no password, since the AuthHandler runs
// before the integrity check) and credsvc is slow. Every packet of the live relay is still
// delivered, the attacker is throttled, and once the flood stops a fresh legitimate client
// allocates. Run with a slow credsvc from one attacker address and as if the sources were
// spoofed (the per-address limit lifted: the read loop's budget answers), and with a fast
// credsvc from one address (the per-address limit answers). It is the one test here not marked
// parallel: Go runs it alone before the parallel ones, so its flood takes no CPU from their
// waits and theirs none from its delivery count.
func TestAuthFloodKeepsRelaysFlowing(t *testing.T) {
	for _, c := range []struct {
		name    string
		delay   time.Duration
		spoofed bool
	}{
		{"slow credsvc", 2 * time.Second, false},
		{"slow credsvc, spoofed sources", 2 * time.Second, true},
		{"fast credsvc", 0, false},
	} {
		spoofed := c.spoofed
		t.Run(c.name, func(t *testing.T) {
			cred := newTestCredsvc()
			url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
			cfg := testConfig(t, url)
			cfg.UDPSockets = 1                       // the live relay and the attacker share a read loop
			cfg.AuthTimeout = 250 * time.Millisecond // the production default
			s, _ := startTurn(t, cfg)
			if spoofed {
				s.ipLimit.udp.keys.SetLimit(ratelimit.Limit{Rate: 1e9, Burst: 1e9})
			}

			u, p := cred.issue("live", time.Hour)
			relay, err := turnClient(t, "udp", s, u, p).Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			peer := testnet.UDPEchoPeer(t)
			if err := testnet.RelayRoundTrip(relay, peer.LocalAddr(), "warm", 3*time.Second); err != nil {
				t.Fatal(err)
			}

			// credsvc turns slow: every lookup would hold the read loop for TURN_AUTH_TIMEOUT.
			cred.delay.Store(int64(c.delay))
			callsBefore := cred.calls.Load()

			stream := startStream(t, relay, peer.LocalAddr())
			const attempts = 400
			floodStart := time.Now()
			flood(t, s, net.IPv4(127, 0, 0, 3), attempts, 5*time.Millisecond)
			sent := stream.stop()

			// Delivery, not timing: without budgets the 400 lookups would hold the loop for
			// 400 × 250 ms and most of the stream would still be queued long after this wait.
			got := stream.waitAll(sent, 5*time.Second)
			if got != sent {
				t.Errorf("live relay: %d of %d packets delivered during the flood", got, sent)
			}
			_, auth := s.st.snapshot()
			throttled := auth[resultThrottled]
			calls := cred.calls.Load() - callsBefore
			// Every call was made between the flood's start and now: the window the per-address
			// bucket can have refilled in, however long a loaded machine took to send the flood.
			window := time.Since(floodStart)
			t.Logf("flood of %d Allocates: %d throttled, %d Validate calls, live relay %d/%d packets", attempts, throttled, calls, got, sent)
			if throttled < attempts/2 {
				t.Errorf("%d of %d flood Allocates throttled, want most", throttled, attempts)
			}
			if st := getStats(t, s); st.GetAuthResults()[resultThrottled] != throttled {
				t.Errorf("GetStats auth_results[throttled] = %d, want %d", st.GetAuthResults()[resultThrottled], throttled)
			}
			if calls >= attempts/4 {
				t.Errorf("%d Validate calls for %d flood Allocates: lookups not bounded", calls, attempts)
			}
			// The burst, the rate over the window, and a little slack (a call started as the
			// clock is read).
			if limit := float64(lookupBurstPerIP) + lookupsPerIP*window.Seconds() + 2; !spoofed && float64(calls) > limit {
				t.Errorf("%d Validate calls from one address in %v, over its limit of %.0f", calls, window.Round(time.Millisecond), limit)
			}

			// The flood stops; credsvc recovers. A fresh legitimate client allocates once the
			// loop's budget has refilled (its share of time: at most a few seconds after the
			// flood); each attempt is a new client with a never-seen username.
			cred.delay.Store(0)
			deadline := time.Now().Add(10 * time.Second)
			for i := 0; ; i++ {
				u, p := cred.issue(fmt.Sprintf("fresh-%d", i), time.Hour)
				fresh, err := turnClient(t, "udp", s, u, p).Allocate()
				if err == nil {
					if err := testnet.RelayRoundTrip(fresh, peer.LocalAddr(), "fresh", 3*time.Second); err != nil {
						t.Fatal(err)
					}
					t.Logf("fresh client allocated after the flood at attempt %d", i+1)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no fresh client allocated within 10 s of the flood: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// flood sends n Allocate requests with fresh usernames from src, one every interval, after
// taking a nonce from turnsvc's 401, and drains the answers.
func flood(t *testing.T, s *Service, src net.IP, n int, interval time.Duration) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: src})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := s.TURNAddr()
	requestedUDP := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	first, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(first.Raw, server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	rn, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no 401 for the unauthenticated Allocate: %v", err)
	}
	res := &stun.Message{Raw: append([]byte(nil), buf[:rn]...)}
	var nonce stun.Nonce
	if err := res.Decode(); err != nil {
		t.Fatal(err)
	}
	if err := nonce.GetFrom(res); err != nil {
		t.Fatalf("401 without a nonce: %v", err)
	}
	go func() { // answers are not read by the attacker; drain them until the socket closes
		b := make([]byte, 1500)
		_ = conn.SetReadDeadline(time.Time{})
		for {
			if _, _, err := conn.ReadFromUDP(b); err != nil {
				return
			}
		}
	}()
	expiry := time.Now().Add(time.Hour).Unix()
	for i := range n {
		username := fmt.Sprintf("%d:attacker-%d:%s", expiry, i, testKeyID)
		m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP,
			stun.NewUsername(username), stun.NewRealm(testRealm), nonce,
			stun.NewLongTermIntegrity(username, testRealm, "not the password"), stun.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDP(m.Raw, server); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
	}
}

// stream sends numbered datagrams through a relay to an echo peer every 10 ms and records
// which came back.
type stream struct {
	relay net.PacketConn
	peer  net.Addr
	stopc chan struct{}
	done  chan int // the number of datagrams sent

	mu   sync.Mutex
	seen map[uint32]bool
}

func startStream(t *testing.T, relay net.PacketConn, peer net.Addr) *stream {
	t.Helper()
	st := &stream{relay: relay, peer: peer, stopc: make(chan struct{}), done: make(chan int, 1), seen: map[uint32]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	readers.Go(func() {
		b := make([]byte, 64)
		for ctx.Err() == nil {
			_ = relay.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, _, err := relay.ReadFrom(b)
			if err != nil || n != 8 || string(b[:4]) != "seq:" {
				continue
			}
			st.mu.Lock()
			st.seen[binary.BigEndian.Uint32(b[4:8])] = true
			st.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancel()
		readers.Wait()
		_ = relay.SetReadDeadline(time.Time{})
	})
	go func() {
		var seq uint32
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		msg := []byte("seq:0000")
		for {
			select {
			case <-st.stopc:
				st.done <- int(seq)
				return
			case <-tick.C:
				binary.BigEndian.PutUint32(msg[4:], seq)
				if _, err := relay.WriteTo(msg, peer); err == nil {
					seq++
				}
			}
		}
	}()
	return st
}

func (st *stream) stop() int {
	close(st.stopc)
	return <-st.done
}

// waitAll waits up to within for all sent datagrams to come back and returns how many did.
func (st *stream) waitAll(sent int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		st.mu.Lock()
		got := len(st.seen)
		st.mu.Unlock()
		if got >= sent || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSpoofedUDPKeepsTCPLookups: Allocates over UDP with fresh usernames from a victim's
// address (as a spoofer could send them) drain that address's UDP lookup bucket; a TCP client
// on the same address, which its handshake proved, still gets its credential looked up and
// allocates.
func TestSpoofedUDPKeepsTCPLookups(t *testing.T) {
	t.Parallel()
	cred := newTestCredsvc()
	url, _ := startCredsvc(t, cred, "internal-token-for-tests-0123456789")
	s, _ := startTurn(t, testConfig(t, url))
	// No refill while the test runs: a drained bucket stays drained.
	for _, l := range []*ipLimiter{s.ipLimit.udp, s.ipLimit.conn} {
		l.keys.SetLimit(ratelimit.Limit{Rate: 1e-6, Burst: lookupBurstPerIP})
	}
	victim := net.IPv4(127, 0, 0, 1) // the address the TURN clients below use
	const attempts = 2 * lookupBurstPerIP
	flood(t, s, victim, attempts, 5*time.Millisecond)
	eventually(t, 5*time.Second, "the flood drained the UDP bucket", func() bool {
		_, auth := s.st.snapshot()
		return auth[resultThrottled] >= attempts-lookupBurstPerIP
	})

	u, p := cred.issue("udp-victim", time.Hour)
	if _, err := turnClient(t, "udp", s, u, p).Allocate(); err == nil {
		t.Fatal("a fresh UDP username from the drained address allocated: the bucket was not drained")
	}
	calls := cred.calls.Load()
	u, p = cred.issue("tcp-victim", time.Hour)
	relay, err := turnClient(t, "tcp", s, u, p).Allocate()
	if err != nil {
		t.Fatalf("TCP Allocate from the address whose UDP bucket is drained: %v", err)
	}
	if cred.calls.Load() == calls {
		t.Error("the TCP client's username was not looked up")
	}
	if err := testnet.RelayRoundTrip(relay, testnet.UDPEchoPeer(t).LocalAddr(), "over tcp", 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
