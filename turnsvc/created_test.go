package turnsvc

import (
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestAllocationCreatedAfterParticipantRevocation: a participant revocation that arrives
// between pion's AuthHandler and OnAllocationCreated drops the username's cache entry, so the
// new allocation's participant is unknown. It must be closed as revoked, not kept with no
// participant (which no later revocation of that participant would match).
func TestAllocationCreatedAfterParticipantRevocation(t *testing.T) {
	t.Parallel()
	newService := func() *Service {
		return &Service{
			log:   slog.New(slog.DiscardHandler),
			lns:   &listeners{},
			reg:   newRegistry(newStats(), 4, 4, 4),
			creds: newCredCache(nil),
		}
	}
	client := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3478}
	expires := time.Now().Add(time.Hour)
	username := "9999999999:alice:abcdef01"

	t.Run("revoked in between", func(t *testing.T) {
		s := newService()
		s.creds.store(username, verdict{result: resultValid, key: []byte("key"), participant: "alice", expires: expires})
		s.creds.revoke("", "alice", expires) // drops the entry, as the feed does
		a := openRelay(t, s.reg)
		s.allocationCreated(client, server, "UDP", username, "tuturu", a.relay, 0)
		if p := a.reason.Load(); p == nil || *p != reasonRevoked {
			t.Errorf("allocation not closed as revoked (reason %v)", p)
		}
		if n := s.reg.count(); n != 0 {
			t.Errorf("%d allocations live after the revocation", n)
		}
	})

	t.Run("still valid", func(t *testing.T) {
		s := newService()
		s.creds.store(username, verdict{result: resultValid, key: []byte("key"), participant: "alice", expires: expires})
		a := openRelay(t, s.reg)
		s.allocationCreated(client, server, "UDP", username, "tuturu", a.relay, 0)
		if p := a.reason.Load(); p != nil {
			t.Errorf("valid allocation closed: %s", *p)
		}
		if n := s.reg.count(); n != 1 {
			t.Errorf("%d allocations live, want 1", n)
		}
	})
}
